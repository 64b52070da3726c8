"""Long-form chunked inference: exactness of encoding, chunk-start semantics of decoding, transcription.

N: chunks, C: frames per chunk, D: encoder dim, V1: vocabulary + EOS.

Decoding semantics are checked on a tiny random model whose joint is rigged so that EOS fires exactly at
frames we mark (encoder dim 0 set to 1), and against a hand-written step-by-step greedy decoder.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf

from conftest import CONFIGS, SAMPLE_RATE, synth_tones, tiny_cfg
from nemo_aligner_plugin import AlignerEncoderModel
from nemo_aligner_plugin.decoding.beam import BeamConfig, beam_search
from nemo_aligner_plugin.decoding.greedy import DecoderState
from nemo_aligner_plugin.longform import (
    ChunkedEncoding,
    LongformConfig,
    chunk_cuts,
    decode_chunked,
    decode_chunked_batch,
    encode_chunked,
    load_audio,
    longform_config,
    pause_cuts,
    pre_encode,
    routable_audio,
    speech_ends,
    split_candidates,
    split_search,
    transcribe_longform,
    transcribe_routed,
)
from nemo_aligner_plugin.modules.joint import joint_step

CHUNK = 12  # frames per chunk in the decoding tests
# (chunk lengths, frames within each chunk where EOS is forced): EOS mid-chunk, at a chunk's first frame
# (the chunk emits nothing), never (the chunk runs out of frames), and a short last chunk.
UTTERANCES = [
    ([12, 12, 12, 7], [[8], [0], [], [5]]),
    ([12, 5], [[3], []]),
    ([12, 12, 12], [[0], [10], [6]]),
]


@pytest.fixture(scope="module")
def rigged_model(tokenizer_dir) -> AlignerEncoderModel:
    return make_rigged_model(tokenizer_dir)


def make_rigged_model(tokenizer_dir) -> AlignerEncoderModel:
    """Random tiny model; joint hidden unit 0 copies encoder dim 0 and votes for EOS only, and nothing else does."""
    torch.manual_seed(0)
    model = AlignerEncoderModel(tiny_cfg(tokenizer_dir).model).eval()
    with torch.no_grad():
        enc, pred, out = model.joint.enc, model.joint.pred, model.joint.joint_net[-1]
        enc.weight[0].zero_()
        enc.weight[0, 0] = 1.0
        enc.bias[0] = 0.0
        pred.weight[0].zero_()
        pred.bias[0] = 0.0
        pred.weight.mul_(10.0)  # make the prediction-network state matter for the token choice
        out.weight[:, 0] = 0.0
        out.weight[model.eos_id].zero_()
        out.weight[model.eos_id, 0] = 1000.0
        out.bias[model.eos_id] = -50.0
    return model


def rigged_chunks(lengths: list[int], eos_frames: list[list[int]], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random chunks (N, C, D) with dim 0 = 0, except 1 at the frames where EOS must fire."""
    gen = torch.Generator().manual_seed(seed)
    chunks = torch.randn(len(lengths), CHUNK, 64, generator=gen)
    chunks[:, :, 0] = 0.0
    for n, (length, marks) in enumerate(zip(lengths, eos_frames, strict=True)):
        chunks[n, length:] = 0.0
        chunks[n, marks, 0] = 1.0
    return chunks, torch.tensor(lengths)


def reference_decode(model, chunks, lens, mode: str, prime_tokens: int = 0) -> tuple[list[int], list[int], float]:
    """Step-by-step greedy, one frame and one token at a time, with the chunk-start rule written out.

    Returns tokens, their global frames and the summed log-probabilities (EOS included).
    """
    decoder, joint = model.decoder, model.joint
    tokens, frames, offset, carried, score = [], [], 0, None, 0.0
    with torch.no_grad():
        for n in range(chunks.size(0)):
            history = tokens[len(tokens) - prime_tokens :] if prime_tokens else []
            if mode == "carry_state" and carried is not None:
                g, state = carried
            elif mode == "prime" and history:
                g, state = decoder.predict(torch.tensor([history]), state=None, add_sos=True)
            else:
                g, state = decoder.predict(None, state=None, add_sos=False, batch_size=1)
            for i in range(int(lens[n])):
                logits = joint_step(joint, joint.project_encoder(chunks[n, i : i + 1]), g[:, -1])
                token = int(logits.argmax(-1))
                score += float(logits.log_softmax(-1)[0, token])
                if token == model.eos_id:
                    break
                tokens.append(token)
                frames.append(offset + i)
                g, state = decoder.predict(torch.tensor([[token]]), state=state, add_sos=False)
            carried = (g, state)
            offset += int(lens[n])
    return tokens, frames, score


def forced_frames(lengths: list[int], eos_frames: list[list[int]]) -> list[int]:
    """Global frames that emit a token: each chunk from its first frame up to its first EOS mark or its end."""
    frames, offset = [], 0
    for length, marks in zip(lengths, eos_frames, strict=True):
        frames += range(offset, offset + min(marks, default=length))
        offset += length
    return frames


@pytest.mark.unit
@pytest.mark.parametrize("utterance", [0, 2])  # 2 starts with a chunk that emits nothing
@pytest.mark.parametrize("mode, prime_tokens", [("reset_only", 0), ("prime", 3), ("prime", 1), ("carry_state", 0)])
def test_decode_chunked_matches_step_by_step_reference(rigged_model, utterance, mode, prime_tokens):
    lengths, marks = UTTERANCES[utterance]
    chunks, lens = rigged_chunks(lengths, marks, seed=1)
    cfg = LongformConfig(mode=mode, prime_tokens=prime_tokens)
    hyp = decode_chunked(rigged_model, chunks, lens, cfg)
    tokens, frames, score = reference_decode(rigged_model, chunks, lens, mode, prime_tokens)
    assert hyp.y_sequence.tolist() == tokens
    assert hyp.score == pytest.approx(score, abs=1e-3)  # also catches state errors that do not flip an argmax
    assert hyp.timestamp.tolist() == frames == forced_frames(lengths, marks)  # global: chunk offset + frame
    assert hyp.length == sum(lengths)


@pytest.mark.unit
def test_reset_only_decodes_each_chunk_like_a_fresh_utterance(rigged_model):
    lengths, marks = UTTERANCES[0]
    chunks, lens = rigged_chunks(lengths, marks, seed=1)
    hyp = decode_chunked(rigged_model, chunks, lens, LongformConfig(mode="reset_only"))
    separate = [decode_chunked(rigged_model, chunks[n : n + 1], lens[n : n + 1], LongformConfig()) for n in range(4)]
    assert hyp.y_sequence.tolist() == sum((h.y_sequence.tolist() for h in separate), [])


@pytest.mark.unit
def test_carry_state_is_one_continuous_decoder_state(rigged_model):
    """Carrying the state equals priming with the whole history; both differ from reset and short priming."""
    lengths, marks = UTTERANCES[0]
    chunks, lens = rigged_chunks(lengths, marks, seed=1)
    decode = {
        name: decode_chunked(rigged_model, chunks, lens, cfg).y_sequence.tolist()
        for name, cfg in {
            "carry": LongformConfig(mode="carry_state"),
            "prime_all": LongformConfig(mode="prime", prime_tokens=1000),
            "prime_3": LongformConfig(mode="prime", prime_tokens=3),
            "reset": LongformConfig(mode="reset_only"),
        }.items()
    }
    assert decode["carry"] == decode["prime_all"]
    # The rigged data are sensitive to the chunk-start rule (otherwise the tests above would prove little).
    assert len({tuple(v) for v in (decode["carry"], decode["prime_3"], decode["reset"])}) == 3


def with_beam(model: AlignerEncoderModel, **beam) -> AlignerEncoderModel:
    """Switch the model to beam search with the config's ``decoding.beam`` plus ``beam``."""
    cfg = OmegaConf.to_container(model.cfg.decoding)
    model.change_decoding_strategy({**cfg, "strategy": "beam", "beam": {**cfg["beam"], **beam}}, verbose=False)
    return model


@pytest.mark.unit
@pytest.mark.parametrize("mode", ["reset_only", "prime", "carry_state"])
def test_beam_of_width_one_without_debiasing_decodes_chunks_like_greedy(rigged_model, tokenizer_dir, mode):
    beam_model = with_beam(make_rigged_model(tokenizer_dir), beam_size=1, debias=0.0)
    cfg = LongformConfig(mode=mode, prime_tokens=3)
    for utterance in range(len(UTTERANCES)):
        chunks, lens = rigged_chunks(*UTTERANCES[utterance], seed=1)
        greedy, beam = decode_chunked(rigged_model, chunks, lens, cfg), decode_chunked(beam_model, chunks, lens, cfg)
        assert beam.y_sequence.tolist() == greedy.y_sequence.tolist()
        assert beam.timestamp.tolist() == greedy.timestamp.tolist()
        assert beam.score == pytest.approx(greedy.score, abs=1e-4)


@pytest.mark.unit
def test_beam_chunks_continue_from_the_best_hypothesis_of_the_chunk_before(rigged_model, tokenizer_dir):
    """prime mode with beam search: each chunk is a plain beam search started from the primed state, by hand."""
    beam_model = with_beam(make_rigged_model(tokenizer_dir), beam_size=4, debias=2.0)
    beam_cfg = BeamConfig(beam_size=4, debias=2.0)
    decoder, joint, eos = beam_model.decoder, beam_model.joint, beam_model.eos_id
    differs = False
    for lengths, marks in UTTERANCES:
        chunks, lens = rigged_chunks(lengths, marks, seed=3)
        hyp = decode_chunked(beam_model, chunks, lens, LongformConfig(mode="prime", prime_tokens=3))
        tokens, frames, score, offset = [], [], 0.0, 0
        with torch.no_grad():
            for n in range(chunks.size(0)):
                history = tokens[-3:]
                state = None
                if history:  # SOS + all but the last fed; the last is pending
                    _, lstm = decoder.predict(torch.tensor([history[:-1]]), state=None, add_sos=True)
                    state = DecoderState(lstm=lstm, last_tokens=torch.tensor(history[-1:]))
                best = beam_search(decoder, joint, chunks[n : n + 1], lens[n : n + 1], eos, beam_cfg, state)[0].best()
                count = int(best.lengths[0])
                tokens += best.tokens[0, :count].tolist()
                frames += [offset + i for i in range(count)]
                score += float(best.scores[0])
                offset += int(lens[n])
        assert hyp.y_sequence.tolist() == tokens
        assert hyp.timestamp.tolist() == frames
        assert hyp.score == pytest.approx(score, abs=1e-4)
        greedy = decode_chunked(rigged_model, chunks, lens, LongformConfig(mode="prime", prime_tokens=3))
        differs |= greedy.y_sequence.tolist() != tokens
    assert differs  # the beam path is taken: on these data it finds other tokens than greedy


@pytest.mark.unit
@pytest.mark.parametrize("mode", ["reset_only", "prime", "carry_state"])
def test_batched_across_utterances_equals_one_at_a_time(rigged_model, mode):
    """Utterances with 4, 2 and 3 chunks: rows drop out and mix fresh and primed/carried starts."""
    cfg = LongformConfig(mode=mode, prime_tokens=4)
    parts = [rigged_chunks(lengths, marks, seed=10 + i) for i, (lengths, marks) in enumerate(UTTERANCES)]
    batch = ChunkedEncoding(
        encoder_out=torch.cat([c for c, _ in parts]),
        encoder_out_lens=torch.cat([n for _, n in parts]),
        num_chunks=torch.tensor([c.size(0) for c, _ in parts]),
    )
    batched = decode_chunked_batch(rigged_model, batch, cfg)
    for hyp, (chunks, lens) in zip(batched, parts, strict=True):
        single = decode_chunked(rigged_model, chunks, lens, cfg)
        assert hyp.y_sequence.tolist() == single.y_sequence.tolist()
        assert hyp.timestamp.tolist() == single.timestamp.tolist()
        assert hyp.score == pytest.approx(single.score, abs=1e-4)


@pytest.mark.unit
@pytest.mark.parametrize("config_name", ["aligner_conformer_bpe", "aligner_fastconformer_bpe"])
def test_windowed_subsampling_equals_one_shot(tokenizer_dir, config_name):
    """x4 striding and x8 dw_striding: overlapping windows give the one-shot conv subsampling, lengths included."""
    torch.manual_seed(0)
    model = AlignerEncoderModel(tiny_cfg(tokenizer_dir, config_name).model).eval()
    audio = 0.1 * torch.randn(2, 9 * SAMPLE_RATE)
    lens = torch.tensor([9 * SAMPLE_RATE, 5 * SAMPLE_RATE + 123])
    with torch.no_grad():
        features, feature_lens = model.preprocessor(input_signal=audio, length=lens)
        whole, whole_lens = pre_encode(model.encoder, features, feature_lens)
        windowed, windowed_lens = pre_encode(model.encoder, features, feature_lens, window_frames=100)
    assert torch.equal(windowed_lens, whole_lens)
    torch.testing.assert_close(windowed, whole, rtol=0, atol=1e-5)


@pytest.mark.unit
def test_encode_chunked_runs_the_conformer_per_chunk(rigged_model):
    model = rigged_model
    audio = 0.1 * torch.randn(2, 7 * SAMPLE_RATE, generator=torch.Generator().manual_seed(0))
    lens = torch.tensor([7 * SAMPLE_RATE, 3 * SAMPLE_RATE])
    with torch.no_grad():
        plain, plain_lens = model(input_signal=audio[1:, : lens[1]], input_signal_length=lens[1:])
    one = encode_chunked(model, LongformConfig(chunk_seconds=4.0), input_signal=audio[1:, : lens[1]])
    assert one.num_chunks.tolist() == [1] and one.encoder_out_lens.tolist() == plain_lens.tolist()
    assert torch.equal(one.encoder_out[0], plain[0, :, : plain_lens[0]].T)  # fits one chunk: exactly model.forward

    cfg = LongformConfig(chunk_seconds=2.0, chunk_batch_size=3)
    enc = encode_chunked(model, cfg, input_signal=audio, input_signal_length=lens)
    assert enc.num_chunks.tolist() == [4, 2]  # 175 frames -> 50+50+50+25; 75 -> 50+25
    assert enc.encoder_out_lens.tolist() == [50, 50, 50, 25, 50, 25]
    with torch.no_grad():  # chunk 2 of utterance 0 by hand: its 50 subsampled frames alone through the layers
        features, feature_lens = model.preprocessor(input_signal=audio, length=lens)
        frames, _ = pre_encode(model.encoder, features, feature_lens)
        by_hand, _ = model.encoder(audio_signal=frames[:1, 100:150], length=torch.tensor([50]), bypass_pre_encode=True)
    torch.testing.assert_close(enc.encoder_out[2], by_hand[0].T, rtol=0, atol=1e-5)
    one_by_one = encode_chunked(model, LongformConfig(chunk_seconds=2.0, chunk_batch_size=1), input_signal=audio,
                                input_signal_length=lens)  # fmt: skip
    torch.testing.assert_close(one_by_one.encoder_out, enc.encoder_out, rtol=0, atol=1e-5)


@pytest.mark.unit
def test_chunk_cuts_end_at_the_end_of_the_quietest_stretch():
    loud = [1.0] * 30
    loud[12:17] = [-1.0] * 5  # a pause at frames 12-16: the next chunk should start at 17, where speech resumes
    loud[25] = -1.0  # one quiet frame (a stop closure) is not a pause at width 3
    assert chunk_cuts(loud, size=20, search=10, width=3) == [17, 30]
    assert chunk_cuts(loud, size=20, search=1, width=3) == [20, 30]  # search 1: the fixed cut
    assert chunk_cuts([1.0] * 45, size=20, search=10, width=3) == [20, 40, 45]  # no pause: the latest cut
    assert chunk_cuts(loud, size=40, search=10, width=3) == [30]  # fits one chunk
    assert chunk_cuts([], size=20, search=10) == []
    rng = np.random.default_rng(0)
    for _ in range(50):  # any loudness: chunks partition the frames and none is longer than size or empty
        total, size = int(rng.integers(1, 200)), int(rng.integers(1, 40))
        cuts = chunk_cuts(rng.standard_normal(total).tolist(), size, int(rng.integers(1, size + 1)), 5)
        lengths = np.diff([0] + cuts)
        assert cuts[-1] == total and lengths.min() >= 1 and lengths.max() <= size


@pytest.mark.unit
def test_pause_cuts_cut_every_pause_at_the_feature_frame_where_speech_resumes():
    loud = np.ones(400)  # feature frames, 4 per encoder frame
    loud[120:153] = -1.0  # a pause; speech resumes at feature frame 153, in encoder frame 38
    loud[140] = 0.9  # a click inside it: one loud frame is not speech
    loud[280:310] = -1.0  # a pause ending in a soft onset: -0.7 is below the onset level (-1 + 0.2 x 2), -0.4 above
    loud[310:312] = [-0.7, -0.4]  # so speech resumes at feature frame 311, in encoder frame 77
    loud[392:400] = -1.0  # trailing silence: a chunk would be shorter than min_length, so no cut
    assert pause_cuts(loud.tolist(), 4, size=60, search=20, width=5, min_length=10) == [38, 77, 100]
    # lead: the frame holding the feature frame that many before the onset (153 - 2 = 151, 311 - 4 = 307)
    assert pause_cuts(loud.tolist(), 4, size=60, search=20, width=5, min_length=10, lead=2) == [37, 77, 100]
    assert pause_cuts(loud.tolist(), 4, size=60, search=20, width=5, min_length=10, lead=4) == [37, 76, 100]
    # a stretch longer than size is cut further as chunk_cuts cuts it (no pause inside: at size)
    assert pause_cuts(loud.tolist(), 4, size=30, search=20, width=5, min_length=10) == [30, 38, 68, 77, 100]
    # a pause that would leave a chunk shorter than min_length is not cut (here the 23 frames after the second)
    assert pause_cuts(loud.tolist(), 4, size=70, search=20, width=5, min_length=30) == [38, 100]
    # no pause: the same cuts as chunk_cuts
    flat = [1.0] * 180
    assert pause_cuts(flat, 4, size=20, search=10, width=3, min_length=5) == chunk_cuts([1.0] * 45, 20, 10, 3)
    assert pause_cuts([], 4, size=20, search=10, width=3, min_length=5) == []
    rng = np.random.default_rng(0)
    for _ in range(50):  # any loudness: chunks partition the frames and none is longer than size or empty
        total, size = int(rng.integers(1, 200)), int(rng.integers(1, 40))
        values = rng.standard_normal(4 * total).tolist()
        cuts = pause_cuts(values, 4, size, int(rng.integers(1, size + 1)), 5, int(rng.integers(1, 10)))
        lengths = np.diff([0] + cuts)
        assert cuts[-1] == total and lengths.min() >= 1 and lengths.max() <= size


@pytest.mark.unit
def test_speech_ends_drop_each_chunks_trailing_pause_up_to_a_margin_after_speech():
    loud = np.ones(400)  # feature frames, 4 per encoder frame; the loudness of the pause_cuts test above
    loud[120:153] = -1.0
    loud[140] = 0.9  # a click inside the pause is not speech
    loud[280:310] = -1.0
    loud[310:312] = [-0.7, -0.4]
    loud[392:400] = -1.0
    cuts = pause_cuts(loud.tolist(), 4, size=60, search=20, width=5, min_length=10)
    assert cuts == [38, 77, 100]
    # speech ends after feature frames 119, 279 and 391; 5 frames of margin, rounded up to an encoder frame
    assert speech_ends(loud.tolist(), 4, cuts, width=5, margin=5) == [32, 72, 100]
    assert speech_ends(loud.tolist(), 4, cuts, width=5, margin=0) == [30, 70, 98]
    assert speech_ends(loud.tolist(), 4, cuts, width=5, margin=100) == cuts  # never past the cut
    # a cut inside speech keeps it; a cut inside the pause drops what of the pause the chunk holds
    assert speech_ends(loud.tolist(), 4, [20, 35, 100], width=5, margin=5) == [20, 32, 100]
    quiet = np.ones(800)
    quiet[402:600] = -1.0  # the chunk [100, 150) = feature frames 400-599 holds speech at 400-401 only
    assert speech_ends(quiet.tolist(), 4, [100, 150, 200], width=5, margin=5) == [100, 102, 200]
    quiet[400:600] = -1.0  # no speech in it at all: kept whole, nothing is dropped on a guess
    assert speech_ends(quiet.tolist(), 4, [100, 150, 200], width=5, margin=5) == [100, 150, 200]


def _tiny_model_and_two_pauses(tokenizer_dir, reverse: bool, last_seconds: float):
    """A random tiny model and noise 'speech' 1.2 s, silence 0.6 s, speech 1.5 s, silence 0.5 s, speech (B=1, S)."""
    torch.manual_seed(0)
    model = AlignerEncoderModel(tiny_cfg(tokenizer_dir, model={"reverse_audio": reverse}).model).eval()
    rng = np.random.default_rng(0)
    speech = lambda seconds: 0.3 * rng.standard_normal(int(seconds * SAMPLE_RATE))  # noqa: E731
    silence = lambda seconds: 1e-4 * rng.standard_normal(int(seconds * SAMPLE_RATE))  # noqa: E731
    audio = np.concatenate([speech(1.2), silence(0.6), speech(1.5), silence(0.5), speech(last_seconds)])
    return model, torch.from_numpy(audio.astype(np.float32))[None]


@pytest.mark.unit
@pytest.mark.parametrize("reverse", [False, True])
def test_every_pause_boundary_cuts_at_each_pause_where_pause_cuts_once(tokenizer_dir, reverse):
    """Speech 1.2 s, silence 0.6 s, speech 1.5 s, silence 0.5 s, speech 1.2 s (5 s = 125 frames), 4 s chunks:
    ``every_pause`` cuts where speech resumes, at 1.8 s and 3.8 s; ``pause`` only once, at 3.8 s."""
    model, audio = _tiny_model_and_two_pauses(tokenizer_dir, reverse, last_seconds=1.2)
    every = encode_chunked(model, LongformConfig(chunk_seconds=4.0, boundary="every_pause"), input_signal=audio)
    assert every.num_chunks.tolist() == [3]
    assert every.encoder_out_lens.tolist() in ([45, 50, 30], [45, 50, 31], [44, 51, 30], [44, 50, 31])
    pause = encode_chunked(model, LongformConfig(chunk_seconds=4.0, boundary="pause"), input_signal=audio)
    assert pause.num_chunks.tolist() == [2] and abs(pause.encoder_out_lens.tolist()[0] - 95) <= 1


@pytest.mark.unit
@pytest.mark.parametrize("reverse", [False, True])
def test_chunk_features_encode_each_chunk_audio_as_an_utterance_of_its_own(tokenizer_dir, reverse):
    """The same cuts as without chunk_features; chunk k == the model's encoder on that stretch of audio alone."""
    model, audio = _tiny_model_and_two_pauses(tokenizer_dir, reverse, last_seconds=1.23)
    cfg = LongformConfig(chunk_seconds=4.0, boundary="every_pause", chunk_batch_size=2)
    whole = encode_chunked(model, cfg, input_signal=audio)
    own = encode_chunked(model, dataclasses.replace(cfg, chunk_features=True), input_signal=audio)
    assert own.num_chunks.tolist() == whole.num_chunks.tolist() == [3]
    assert own.encoder_out_lens.tolist() == whole.encoder_out_lens.tolist()
    assert not torch.allclose(own.encoder_out, whole.encoder_out, atol=1e-3)  # other features: other outputs
    signal = audio.flip(1) if reverse else audio  # what the model's frames run over
    step = 160 * model.encoder.subsampling_factor
    lens = own.encoder_out_lens.tolist()
    starts = np.cumsum([0] + lens[:-1])
    if reverse:  # chunks come in audio time order; their frames are counted from the end of the reversed signal
        starts = sum(lens) - np.cumsum(lens)
    with torch.no_grad():
        for k, (start, n) in enumerate(zip(starts.tolist(), lens, strict=True)):
            piece = signal[:, start * step : min((start + n) * step, signal.size(1))]
            features, feature_lens = model.preprocessor(input_signal=piece, length=torch.tensor([piece.size(1)]))
            expected, _ = model.encoder(audio_signal=features, length=feature_lens)
            torch.testing.assert_close(own.encoder_out[k, :n], expected[0, :, :n].T, rtol=0, atol=1e-5)
    features, feature_lens = model.preprocessor(input_signal=audio, length=torch.tensor([audio.size(1)]))
    with pytest.raises(ValueError, match="chunk_features"):
        encode_chunked(model, dataclasses.replace(cfg, chunk_features=True), processed_signal=features)


@pytest.mark.unit
@pytest.mark.parametrize("reverse", [False, True])
def test_trim_pauses_drops_each_chunks_trailing_pause_and_keeps_global_frames(tokenizer_dir, reverse):
    """Speech 1.2 s, silence 0.6 s, speech 1.5 s, silence 0.5 s, speech: the first two chunks lose their
    silence (all but the margin), the last has none; chunk k == the encoder on its kept audio alone, and
    decoded frames stay global frames of the whole audio."""
    model, audio = _tiny_model_and_two_pauses(tokenizer_dir, reverse, last_seconds=1.2)
    cfg = LongformConfig(chunk_seconds=4.0, boundary="every_pause", chunk_features=True)
    whole = encode_chunked(model, cfg, input_signal=audio)
    trimmed = encode_chunked(model, dataclasses.replace(cfg, trim_pauses=True), input_signal=audio)
    full, kept = whole.encoder_out_lens.tolist(), trimmed.encoder_out_lens.tolist()
    assert trimmed.num_chunks.tolist() == [3]
    # 1.2 s and 1.5 s of speech = 30 and 37.5 frames, + 0.05 s margin; the 32 ms window blurs a frame
    assert abs(kept[0] - 32) <= 1 and abs(kept[1] - 40) <= 1 and kept[2] == full[2]
    assert trimmed.chunk_offsets.tolist() == [0, full[0], full[0] + full[1]]
    assert trimmed.frame_lens.tolist() == [sum(full)]
    signal = audio.flip(1) if reverse else audio
    step = 160 * model.encoder.subsampling_factor
    total = sum(full)
    with torch.no_grad():
        for k, (offset, n) in enumerate(zip(trimmed.chunk_offsets.tolist(), kept, strict=True)):
            start = total - offset - n if reverse else offset  # the kept audio: the start of the chunk in time
            piece = signal[:, start * step : min((start + n) * step, signal.size(1))]
            features, feature_lens = model.preprocessor(input_signal=piece, length=torch.tensor([piece.size(1)]))
            expected, _ = model.encoder(audio_signal=features, length=feature_lens)
            torch.testing.assert_close(trimmed.encoder_out[k, :n], expected[0, :, :n].T, rtol=0, atol=1e-5)
    hyp = decode_chunked_batch(model, trimmed, LongformConfig(mode="reset_only"))[0]
    assert hyp.length == total
    own = [  # each chunk decoded alone, its frames shifted by the chunk's global offset
        (frame + offset)
        for k, offset in enumerate(trimmed.chunk_offsets.tolist())
        for frame in decode_chunked(
            model, trimmed.encoder_out[k : k + 1, : kept[k]], trimmed.encoder_out_lens[k : k + 1], LongformConfig()
        ).timestamp.tolist()
    ]
    assert hyp.timestamp.tolist() == own


@pytest.mark.unit
@pytest.mark.parametrize("reverse", [False, True])
def test_pause_boundary_starts_the_second_chunk_where_speech_resumes(tokenizer_dir, reverse):
    """Speech 2.4 s, silence 0.8 s, speech: with 4 s chunks the cut moves from 4 s to the end of the silence.

    A reverse-audio model gets the same chunks of audio time, each reversed: cut from the end of its frames.
    """
    torch.manual_seed(0)
    model = AlignerEncoderModel(tiny_cfg(tokenizer_dir, model={"reverse_audio": reverse}).model).eval()
    rng = np.random.default_rng(0)
    speech = lambda seconds: 0.3 * rng.standard_normal(int(seconds * SAMPLE_RATE))  # noqa: E731
    audio = np.concatenate([speech(2.4), 1e-4 * rng.standard_normal(int(0.8 * SAMPLE_RATE)), speech(3.0)])
    audio = torch.from_numpy(audio.astype(np.float32))[None]  # 6.2 s = 155 frames
    cfg = LongformConfig(chunk_seconds=4.0, boundary="pause", pause_search_seconds=2.0)
    enc = encode_chunked(model, cfg, input_signal=audio)
    assert enc.num_chunks.tolist() == [2]
    first = enc.encoder_out_lens.tolist()[0]
    assert abs(first - 80) <= 1  # speech resumes at 3.2 s = frame 80 (the 32 ms window blurs it by a frame)
    fixed = encode_chunked(model, LongformConfig(chunk_seconds=4.0), input_signal=audio)
    assert fixed.encoder_out_lens.tolist() == [100, 55]
    with torch.no_grad():  # the second chunk is the Conformer on the frames after the cut, by hand
        signal = audio.flip(1) if reverse else audio
        features, feature_lens = model.preprocessor(input_signal=signal, length=torch.tensor([audio.size(1)]))
        frames, frame_lens = pre_encode(model.encoder, features, feature_lens)
        total = int(frame_lens[0])
        start, stop = (0, total - first) if reverse else (first, total)
        second, _ = model.encoder(
            audio_signal=frames[:, start:stop], length=torch.tensor([stop - start]), bypass_pre_encode=True
        )
    torch.testing.assert_close(enc.encoder_out[1, : stop - start], second[0].T, rtol=0, atol=1e-5)


@pytest.mark.unit
def test_pause_boundary_transcribes_one_chunk_audio_like_fixed(trained_nemo, tone_manifest):
    model = AlignerEncoderModel.restore_from(str(trained_nemo)).eval()
    files = [json.loads(line)["audio_filepath"] for line in tone_manifest.read_text().splitlines()]
    fixed = transcribe_longform(model, files, LongformConfig(chunk_seconds=15.0))
    pause = transcribe_longform(model, files, LongformConfig(chunk_seconds=15.0, boundary="pause"))
    assert [h.text for h in pause] == [h.text for h in fixed]


@pytest.mark.unit
@pytest.mark.parametrize("strategy", ["greedy_batch", "beam"])
@pytest.mark.parametrize("chunk_features", [False, True])
def test_audio_within_one_chunk_transcribes_exactly_like_plain_decoding(
    trained_nemo, tone_manifest, strategy, chunk_features
):
    model = AlignerEncoderModel.restore_from(str(trained_nemo)).eval()
    if strategy == "beam":
        with_beam(model, beam_size=4)
    items = [json.loads(line) for line in tone_manifest.read_text().splitlines()]
    files = [i["audio_filepath"] for i in items]
    plain = model.transcribe(files, batch_size=1, return_hypotheses=True, verbose=False)
    cfg = LongformConfig(chunk_seconds=15.0, chunk_batch_size=1, chunk_features=chunk_features)
    chunked = transcribe_longform(model, files, cfg)
    assert [h.text for h in chunked] == [h.text for h in plain] == [i["text"] for i in items]
    for c, p in zip(chunked, plain, strict=True):
        assert c.y_sequence.tolist() == p.y_sequence.tolist()
        assert c.timestamp.tolist() == p.timestamp.tolist()
        assert c.score == pytest.approx(p.score, abs=1e-5)
        assert c.length == p.length


@pytest.mark.unit
def test_load_audio_resamples_files_to_the_model_rate(tmp_path):
    audio = synth_tones("abc", np.random.default_rng(0))
    path = tmp_path / "8k.wav"
    sf.write(path, audio[::2], SAMPLE_RATE // 2)
    loaded = load_audio(str(path), SAMPLE_RATE)
    assert abs(loaded.numel() - audio.size) <= 2 and loaded.dtype == torch.float32
    assert torch.equal(load_audio(audio, SAMPLE_RATE), torch.from_numpy(audio))


@pytest.mark.unit
def test_routing_sends_only_audio_longer_than_a_chunk_to_longform(rigged_model):
    short, long = np.zeros(SAMPLE_RATE, dtype=np.float32), np.zeros(3 * SAMPLE_RATE, dtype=np.float32)
    seen = []

    def plain(items):
        seen.append(len(items))
        return [f"plain{i}" for i in range(len(items))]

    out = transcribe_routed(rigged_model, [long, short, short], LongformConfig(chunk_seconds=2.0), plain)
    assert seen == [2] and out[1:] == ["plain0", "plain1"]
    assert out[0].length == 75  # 3 s at 25 frames per second, decoded by transcribe_longform


@pytest.mark.unit
@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"mode": "carry"}, "mode"),
        ({"chunk_seconds": 0.0}, "chunk_seconds"),
        ({"prime_tokens": -1}, "prime_tokens"),
        ({"pre_encode_seconds": 0.0}, "pre_encode_seconds"),
        ({"boundary": "silence"}, "boundary"),
        ({"pause_search_seconds": -1.0}, "pause_search_seconds"),
        ({"pause_search_seconds": 0.0}, "pause_search_seconds"),
        ({"onset_lead_seconds": -0.01}, "onset_lead_seconds"),
        ({"onset_lead_seconds": 0.5}, "onset_lead_seconds"),
        ({"split_margin": -1.0}, "split_margin"),
        ({"split_min_seconds": 1.0}, "split_min_seconds"),
        ({"split_candidates": 0}, "split_candidates"),
    ],
)
def test_config_rejects_bad_values(kwargs, named):
    with pytest.raises(ValueError, match=named):
        LongformConfig(**kwargs)


@pytest.mark.unit
def test_model_config_section_and_routable_inputs():
    assert longform_config(None) is None and longform_config({"enabled": False, "chunk_seconds": 5.0}) is None
    assert longform_config({"enabled": True, "chunk_seconds": 5.0, "mode": "reset_only"}) == LongformConfig(
        chunk_seconds=5.0, mode="reset_only"
    )
    audio = np.zeros(10, dtype=np.float32)
    assert routable_audio("a.wav") == ["a.wav"]
    routed = routable_audio((audio, "b.flac"))
    assert routed[0] is audio and routed[1] == "b.flac"
    for plain_only in ("test_manifest.json", [np.zeros((2, 10))], [], iter(["a.wav"])):
        assert routable_audio(plain_only) is None


@pytest.mark.unit
@pytest.mark.parametrize(
    "config", sorted(p.name for p in CONFIGS.glob("aligner*.yaml")) + ["finetune_from_conformer.yaml"]
)
def test_every_config_longform_section_is_a_valid_longform_config(config):
    section = OmegaConf.to_container(OmegaConf.load(CONFIGS / config).model.longform)
    assert set(section) - {"enabled"} == {
        f.name for f in dataclasses.fields(LongformConfig)
    }  # every option in the YAML
    assert isinstance(longform_config({**section, "enabled": True}), LongformConfig)


@pytest.mark.unit
@pytest.mark.skipif(
    not hasattr(__import__("nemo_aligner_plugin.model").model, "transcribe_routed"),
    reason="model.transcribe() long-form routing not integrated yet (see docs/longform.md)",
)
def test_model_transcribe_routes_long_audio_when_configured(trained_nemo, tone_manifest):
    from omegaconf import open_dict

    model = AlignerEncoderModel.restore_from(str(trained_nemo)).eval()
    files = [json.loads(line)["audio_filepath"] for line in tone_manifest.read_text().splitlines()][:2]
    long = np.concatenate([sf.read(f, dtype="float32")[0] for f in files])  # ~3.3 s: two chunks of 2 s
    short = sf.read(files[0], dtype="float32")[0]
    expected_plain = model.transcribe([short], batch_size=1, verbose=False)[0].text
    with open_dict(model.cfg):
        model.cfg.longform = {"enabled": True, "chunk_seconds": 2.0, "mode": "reset_only"}
    hyps = model.transcribe([long, short], batch_size=1, verbose=False)
    (expected_long,) = transcribe_longform(model, [long], LongformConfig(chunk_seconds=2.0, mode="reset_only"))
    assert [h.text for h in hyps] == [expected_long.text, expected_plain]
    assert hyps[0].timestamp.tolist() == expected_long.timestamp.tolist()


@pytest.mark.unit
def test_reverse_audio_model_gets_chunks_in_time_order_each_reversed(tokenizer_dir):
    """reverse_audio: frames run backwards, so chunks are cut from the end; one chunk is still model.forward."""
    torch.manual_seed(0)
    model = AlignerEncoderModel(tiny_cfg(tokenizer_dir, model={"reverse_audio": True}).model).eval()
    audio = 0.1 * torch.randn(1, 7 * SAMPLE_RATE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain, plain_lens = model(input_signal=audio, input_signal_length=torch.tensor([audio.size(1)]))
    one = encode_chunked(model, LongformConfig(chunk_seconds=8.0), input_signal=audio)
    assert torch.equal(one.encoder_out[0], plain[0, :, : plain_lens[0]].T)

    enc = encode_chunked(model, LongformConfig(chunk_seconds=2.0), input_signal=audio)
    assert enc.encoder_out_lens.tolist() == [50, 50, 50, 25]  # audio time 0-2 s, 2-4 s, 4-6 s, 6-7 s
    with torch.no_grad():
        features, feature_lens = model.preprocessor(input_signal=audio.flip(1), length=torch.tensor([audio.size(1)]))
        frames, _ = pre_encode(model.encoder, features, feature_lens)  # 175 frames of reversed audio
        first, _ = model.encoder(audio_signal=frames[:, 125:175], length=torch.tensor([50]), bypass_pre_encode=True)
    torch.testing.assert_close(enc.encoder_out[0], first[0].T, rtol=0, atol=1e-5)


@pytest.mark.unit
def test_nonar_model_decodes_chunks_independently(tokenizer_dir):
    from nemo_aligner_plugin.decoding.nonar import nonar_greedy

    torch.manual_seed(0)
    model = AlignerEncoderModel(tiny_cfg(tokenizer_dir, model={"aligner_type": "nonar"}).model).eval()
    with torch.no_grad():
        model.nonar_head.proj.bias[model.eos_id] = -3.0  # a few tokens per chunk before EOS
    chunks, lens = rigged_chunks(*UTTERANCES[0], seed=3)
    hyp = decode_chunked(model, chunks, lens, LongformConfig(mode="prime"))
    expected, _ = nonar_greedy(None, model.nonar_head, chunks, lens, model.eos_id)
    assert hyp.y_sequence.tolist() == [t for n in range(4) for t in expected.tokens[n, : expected.lengths[n]].tolist()]
    offsets = [0, 12, 24, 36]
    assert hyp.timestamp.tolist() == [offsets[n] + i for n in range(4) for i in range(int(expected.lengths[n]))]
    assert hyp.score == pytest.approx(float(expected.scores.sum()), abs=1e-4)
    audio = (0.1 * np.random.default_rng(0).standard_normal(SAMPLE_RATE)).astype(np.float32)
    with torch.no_grad():  # (model.transcribe() of a nonar model fails inside NeMo: it freezes model.decoder)
        encoded, encoded_len = model(
            input_signal=torch.from_numpy(audio)[None], input_signal_length=torch.tensor([audio.size])
        )
    (plain,) = model.decoding.rnnt_decoder_predictions_tensor(encoded, encoded_len, return_hypotheses=True)
    (chunked,) = transcribe_longform(model, [audio], LongformConfig(chunk_seconds=2.0))
    assert chunked.y_sequence.tolist() == plain.y_sequence.tolist() and chunked.text == plain.text


@pytest.mark.unit
def test_split_candidates_are_the_quietest_dips_away_from_the_chunk_ends():
    """Encoder-frame loudness 1.0 with dips at frames 5, 30, 50 (depth 0.2, 0.5, 0.0) and 70 (0.1); chunk
    [0, 80) with 10 frames kept clear at each end: the dips at 50, 30 then 70... but 5 and 70+ are too close
    to an end. Only local minima count: the flat loud stretches give none."""
    loud = np.ones(100)
    for frame, level in ((5, 0.2), (30, 0.5), (50, 0.0), (72, 0.1)):
        loud[frame] = level
    assert split_candidates(loud, 0, 80, side=10, count=5) == [50, 30]  # 5 and 72 lie within 10 of an end
    assert split_candidates(loud, 0, 100, side=10, count=5) == [50, 72, 30]
    assert split_candidates(loud, 0, 100, side=10, count=1) == [50]
    assert split_candidates(loud, 40, 60, side=11, count=5) == []  # too short to hold two halves


class _FakeFrames:
    """A stand-in model for ``split_search``: 10 ms features x4 = 40 ms encoder frames."""

    encoder = type("Encoder", (), {"subsampling_factor": 4})()
    cfg = OmegaConf.create({"preprocessor": {"window_stride": 0.01}})


@pytest.mark.unit
@pytest.mark.parametrize("reverse", [False, True])
def test_split_search_cuts_at_the_joins_the_scores_favour_and_nowhere_else(monkeypatch, reverse):
    """8 s (200 frames) without a pause and quiet dips at frames 8, 60, 100 and 150. The scorer penalizes a
    piece 10 nats per 'sentence join' (frames 8, 60, 150) strictly inside it: the search cuts at 60 and 150
    (recursively, the second inside the first's half) but not at 100 (no gain) nor at 8 (within 0.8 s of the
    start), and stays whole when the margin exceeds the gain or the chunk is shorter than split_min_seconds."""
    import nemo_aligner_plugin.longform as longform

    total, joins = 200, (8, 60, 150)
    feature_loudness = np.ones(total * 4)
    for frame in (8, 60, 100, 150):
        feature_loudness[frame * 4 : frame * 4 + 4] = 0.0
    scored: list[tuple[int, int]] = []

    def encode(spans):  # each piece -> (n, 1) frames holding its first frame in audio time
        out = []
        for _, start, n in spans:
            first = total - start - n if reverse else start
            scored.append((first, first + n))
            out.append(torch.full((n, 1), float(first)))
        return out

    def scores(model, chunks, lens):
        firsts = chunks[:, 0, 0].long().tolist()
        return [
            -10.0 * sum(a < j < a + n for j in joins) - 0.01 * n for a, n in zip(firsts, lens.tolist(), strict=True)
        ]

    monkeypatch.setattr(longform, "_chunk_scores", scores)

    def search(cfg: LongformConfig) -> list[list[int]]:
        return split_search(_FakeFrames(), cfg, [[total]], [feature_loudness.tolist()], [total], reverse, encode)

    assert search(LongformConfig(split_margin=1.0, split_min_seconds=2.0)) == [[60, 150, 200]]
    assert (0, 200) in scored and (0, 100) in scored and (60, 150) in scored  # the whole, a candidate, a half's
    assert search(LongformConfig(split_margin=25.0)) == [[total]]  # a gain of 10 < 25
    assert search(LongformConfig(split_margin=1.0, split_min_seconds=8.5)) == [[total]]  # 8 s < 8.5 s
    # one candidate per chunk, the earliest of equally quiet dips: 60 in the whole (8 is too close to the start),
    # then 100 in [60, 200), which gains nothing
    assert search(LongformConfig(split_margin=1.0, split_candidates=1)) == [[60, 200]]
    # force=(size, search, width): a piece longer than 100 frames is always cut, at a dip, whatever the margin
    forced = split_search(
        _FakeFrames(),
        LongformConfig(split_margin=25.0),
        [[total]],
        [feature_loudness.tolist()],
        [total],
        reverse,
        encode,
        force=(100, 62, 5),
    )[0]
    assert set(forced[:-1]) <= {60, 100, 150} and max(np.diff([0] + forced)) <= 100
    flat = np.ones(total * 4).tolist()  # no dip at all: cut as chunk_cuts would
    flat_cuts = split_search(
        _FakeFrames(), LongformConfig(split_margin=25.0), [[total]], [flat], [total], reverse, encode, (100, 62, 5)
    )
    assert flat_cuts == [chunk_cuts(np.ones(total).tolist(), 100, 62, 5)]


@pytest.mark.unit
@pytest.mark.parametrize("strategy", ["greedy_batch", "beam"])
def test_chunk_scores_batched_equal_each_chunk_decoded_alone(rigged_model, tokenizer_dir, strategy):
    """The split search compares scores of pieces decoded in padded batches: padding must not change them."""
    from nemo_aligner_plugin.longform import _chunk_scores

    model = with_beam(rigged_model, beam_size=3, debias=2.0) if strategy == "beam" else rigged_model
    chunks, lens = rigged_chunks(*UTTERANCES[0], seed=5)
    batched = _chunk_scores(model, chunks, lens)
    alone = [_chunk_scores(model, chunks[n : n + 1, : lens[n]], lens[n : n + 1])[0] for n in range(len(lens))]
    assert batched == pytest.approx(alone, abs=1e-5)
    assert len(set(round(v, 4) for v in batched)) > 1  # real, differing scores


@pytest.mark.unit
@pytest.mark.parametrize("reverse", [False, True])
def test_split_margin_only_adds_cuts_and_each_chunk_is_still_its_audio_alone(tokenizer_dir, reverse):
    """On a tiny random model: a huge margin changes nothing; margin 0 keeps every every_pause cut, adds cuts
    at least 0.8 s from each chunk end, and each chunk is still the encoder on its audio alone."""
    model, audio = _tiny_model_and_two_pauses(tokenizer_dir, reverse, last_seconds=2.5)
    cfg = LongformConfig(chunk_seconds=4.0, boundary="every_pause", chunk_features=True, mode="reset_only")
    plain = encode_chunked(model, cfg, input_signal=audio)
    huge = encode_chunked(model, dataclasses.replace(cfg, split_margin=1e9), input_signal=audio)
    assert huge.chunk_offsets.tolist() == plain.chunk_offsets.tolist()
    torch.testing.assert_close(huge.encoder_out, plain.encoder_out, rtol=0, atol=1e-6)
    split = encode_chunked(model, dataclasses.replace(cfg, split_margin=0.0, split_min_seconds=1.6), input_signal=audio)
    offsets, lens = split.chunk_offsets.tolist(), split.encoder_out_lens.tolist()
    assert set(plain.chunk_offsets.tolist()) <= set(offsets) and sum(lens) == sum(plain.encoder_out_lens.tolist())
    added = sorted(set(offsets) - set(plain.chunk_offsets.tolist()))
    assert all(n >= 20 for n, o in zip(lens, offsets, strict=True) if o in added or o + n in added)
    signal = audio.flip(1) if reverse else audio
    step = 160 * model.encoder.subsampling_factor
    total = sum(lens)
    with torch.no_grad():
        for k, (offset, n) in enumerate(zip(offsets, lens, strict=True)):
            start = total - offset - n if reverse else offset
            piece = signal[:, start * step : min((start + n) * step, signal.size(1))]
            features, feature_lens = model.preprocessor(input_signal=piece, length=torch.tensor([piece.size(1)]))
            expected, _ = model.encoder(audio_signal=features, length=feature_lens)
            torch.testing.assert_close(split.encoder_out[k, :n], expected[0, :, :n].T, rtol=0, atol=1e-5)


@pytest.mark.unit
@pytest.mark.parametrize("reverse", [False, True])
def test_split_search_also_places_the_cuts_of_stretches_longer_than_a_chunk(tokenizer_dir, reverse):
    """every_pause with the search: a 6 s stretch without a pause (4 s chunks) is cut by the model's scores even
    when no margin is ever met; every chunk fits, the pause cuts stay, and the frames still add up."""
    model, audio = _tiny_model_and_two_pauses(tokenizer_dir, reverse, last_seconds=6.0)
    cfg = LongformConfig(chunk_seconds=4.0, boundary="every_pause", chunk_features=True, mode="reset_only")
    plain = encode_chunked(model, cfg, input_signal=audio)
    searched = encode_chunked(model, dataclasses.replace(cfg, split_margin=1e9), input_signal=audio)
    lens = searched.encoder_out_lens.tolist()
    assert len(lens) >= 4 and max(lens) <= 100 and sum(lens) == sum(plain.encoder_out_lens.tolist())
    assert searched.chunk_offsets.tolist()[:3] == plain.chunk_offsets.tolist()[:3]  # the two pause cuts
