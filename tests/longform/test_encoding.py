"""Chunked encoding: windowed subsampling == one shot, one chunk == model.forward, each boundary's cuts, chunks
encoded alone, trimmed pauses, reverse-audio models, and the split search on a real tiny model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from rigged import make_rigged_model, tiny_model_and_two_pauses

from conftest import SAMPLE_RATE, tiny_cfg
from nemo_aligner_plugin import AlignerEncoderModel
from nemo_aligner_plugin.longform import (
    LongformConfig,
    decode_chunked,
    decode_chunked_batch,
    encode_chunked,
    pre_encode,
)


@pytest.fixture(scope="module")
def rigged_model(tokenizer_dir) -> AlignerEncoderModel:
    return make_rigged_model(tokenizer_dir)


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
        windowed, windowed_lens = pre_encode(model.encoder, features, feature_lens, window_feat_frames=100)
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
@pytest.mark.parametrize("reverse", [False, True])
def test_every_pause_boundary_cuts_at_each_pause_where_pause_cuts_once(tokenizer_dir, reverse):
    """Speech 1.2 s, silence 0.6 s, speech 1.5 s, silence 0.5 s, speech 1.2 s (5 s = 125 frames), 4 s chunks:
    ``every_pause`` cuts where speech resumes, at 1.8 s and 3.8 s; ``pause`` only once, at 3.8 s."""
    model, audio = tiny_model_and_two_pauses(tokenizer_dir, reverse, last_seconds=1.2)
    every = encode_chunked(model, LongformConfig(chunk_seconds=4.0, boundary="every_pause"), input_signal=audio)
    assert every.num_chunks.tolist() == [3]
    assert every.encoder_out_lens.tolist() in ([45, 50, 30], [45, 50, 31], [44, 51, 30], [44, 50, 31])
    pause = encode_chunked(model, LongformConfig(chunk_seconds=4.0, boundary="pause"), input_signal=audio)
    assert pause.num_chunks.tolist() == [2] and abs(pause.encoder_out_lens.tolist()[0] - 95) <= 1


@pytest.mark.unit
@pytest.mark.parametrize("reverse", [False, True])
def test_chunk_features_encode_each_chunk_audio_as_an_utterance_of_its_own(tokenizer_dir, reverse):
    """The same cuts as without chunk_features; chunk k == the model's encoder on that stretch of audio alone."""
    model, audio = tiny_model_and_two_pauses(tokenizer_dir, reverse, last_seconds=1.23)
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
    model, audio = tiny_model_and_two_pauses(tokenizer_dir, reverse, last_seconds=1.2)
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
@pytest.mark.parametrize("reverse", [False, True])
def test_split_margin_only_adds_cuts_and_each_chunk_is_still_its_audio_alone(tokenizer_dir, reverse):
    """On a tiny random model: a huge margin changes nothing; margin 0 keeps every every_pause cut, adds cuts
    at least 0.8 s from each chunk end, and each chunk is still the encoder on its audio alone."""
    model, audio = tiny_model_and_two_pauses(tokenizer_dir, reverse, last_seconds=2.5)
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
    model, audio = tiny_model_and_two_pauses(tokenizer_dir, reverse, last_seconds=6.0)
    cfg = LongformConfig(chunk_seconds=4.0, boundary="every_pause", chunk_features=True, mode="reset_only")
    plain = encode_chunked(model, cfg, input_signal=audio)
    searched = encode_chunked(model, dataclasses.replace(cfg, split_margin=1e9), input_signal=audio)
    lens = searched.encoder_out_lens.tolist()
    assert len(lens) >= 4 and max(lens) <= 100 and sum(lens) == sum(plain.encoder_out_lens.tolist())
    assert searched.chunk_offsets.tolist()[:3] == plain.chunk_offsets.tolist()[:3]  # the two pause cuts
