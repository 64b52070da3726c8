"""Chunk-by-chunk decoding: chunk-start semantics against a step-by-step reference, beam == greedy at width one,
batched == one at a time, a strategy without a prediction network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rigged import (
    UTTERANCES,
    forced_frames,
    make_rigged_model,
    reference_decode,
    rigged_chunks,
    with_beam,
)

from conftest import SAMPLE_RATE, tiny_cfg
from nemo_aligner_plugin import AlignerEncoderModel
from nemo_aligner_plugin.decoding import BeamConfig, DecoderState, beam_search
from nemo_aligner_plugin.longform import (
    ChunkedEncoding,
    LongformConfig,
    chunk_scores,
    decode_chunked,
    decode_chunked_batch,
    transcribe_longform,
)


@pytest.fixture(scope="module")
def rigged_model(tokenizer_dir) -> AlignerEncoderModel:
    return make_rigged_model(tokenizer_dir)


@pytest.mark.unit
@pytest.mark.parametrize("utterance", [0, 2, 3])  # 2 starts with a chunk that emits nothing; 3 emits 2, then 1
@pytest.mark.parametrize(
    "mode, prime_tokens", [("reset_only", 0), ("prime", 3), ("prime", 1), ("prime", 5), ("carry_state", 0)]
)
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
    """Utterances with 4, 2, 3 and 3 chunks: rows drop out and mix fresh and primed/carried starts."""
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
@pytest.mark.parametrize("strategy", ["greedy_batch", "beam"])
def test_chunk_scores_batched_equal_each_chunk_decoded_alone(rigged_model, tokenizer_dir, strategy):
    """The split search compares scores of pieces decoded in padded batches: padding must not change them."""
    model = with_beam(rigged_model, beam_size=3, debias=2.0) if strategy == "beam" else rigged_model
    chunks, lens = rigged_chunks(*UTTERANCES[0], seed=5)
    batched = chunk_scores(model, chunks, lens)
    alone = [chunk_scores(model, chunks[n : n + 1, : lens[n]], lens[n : n + 1])[0] for n in range(len(lens))]
    assert batched == pytest.approx(alone, abs=1e-5)
    assert len(set(round(v, 4) for v in batched)) > 1  # real, differing scores


@pytest.mark.unit
def test_a_new_strategy_row_decodes_long_form_without_other_changes(tokenizer_dir, monkeypatch):
    """Long-form reads only the table: a strategy added as one row (here greedy under a new name) just works."""
    from nemo_aligner_plugin.decoding import STRATEGIES, GreedyBatchConfig, Strategy, greedy_batch

    monkeypatch.setitem(STRATEGIES, "greedy_copy", Strategy("greedy", GreedyBatchConfig, greedy_batch))
    model, renamed = make_rigged_model(tokenizer_dir), make_rigged_model(tokenizer_dir)
    renamed.change_decoding_strategy({"strategy": "greedy_copy"}, verbose=False)
    cfg = LongformConfig(mode="prime", prime_tokens=3)
    chunks, lens = rigged_chunks(*UTTERANCES[0], seed=1)
    expected, got = decode_chunked(model, chunks, lens, cfg), decode_chunked(renamed, chunks, lens, cfg)
    assert renamed.cfg.decoding.strategy == "greedy_copy"
    assert got.y_sequence.tolist() == expected.y_sequence.tolist() and got.score == pytest.approx(expected.score)
