"""A tiny aligner trained with ``model.nonspeech`` says nothing without speech and still reads the tones: plain
``transcribe()`` on silent files and arrays, the long-form routing, and every long-form path on a speechless chunk.

The rule shipped: the model's own EOS at frame 0 decides whether a chunk holds speech (no energy or VAD gate).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf, open_dict

from conftest import SAMPLE_RATE
from nemo_aligner_plugin.longform import LongformConfig, transcribe_longform
from nemo_aligner_plugin.nonspeech import generate

CHUNK_SECONDS = 2.0  # long-form chunks in these tests; every tone utterance is shorter (1.3-1.7 s)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)


def white(seconds: float, level_dbfs: float = -50.0, seed: int = 5) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    return generate("white", int(seconds * SAMPLE_RATE), level_dbfs, SAMPLE_RATE, g).numpy()


def quiet_room(seconds: float, seed: int = 0) -> np.ndarray:
    """The noise floor of the tone corpus (between words and utterances): RMS 0.003, about -50 dBFS."""
    rng = np.random.default_rng(seed)
    return (0.003 * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)


def tone_items(tone_manifest) -> list[dict]:
    return [json.loads(line) for line in tone_manifest.read_text().splitlines()]


def write(path, audio: np.ndarray) -> str:
    sf.write(path, audio, SAMPLE_RATE)
    return str(path)


def texts(hyps) -> list[str]:
    return [h.text for h in hyps]


def use_beam(model, beam_size: int = 4):
    cfg = OmegaConf.to_container(model.cfg.decoding)
    model.change_decoding_strategy({**cfg, "strategy": "beam", "beam": {**cfg["beam"], "beam_size": beam_size}})
    return model


def set_longform(model, **section) -> None:
    with open_dict(model.cfg):
        model.cfg.longform = {**OmegaConf.to_container(model.cfg.longform), **section}


@pytest.mark.unit
def test_trained_with_nonspeech_rows_it_still_reads_every_tone_utterance(quiet_model, tone_manifest):
    items = tone_items(tone_manifest)
    hyps = quiet_model.transcribe([i["audio_filepath"] for i in items], batch_size=4, verbose=False)
    assert texts(hyps) == [i["text"] for i in items]


@pytest.mark.unit
@pytest.mark.parametrize("strategy", ["greedy_batch", "beam"])
def test_silence_and_low_noise_give_an_empty_hypothesis_on_the_plain_path(quiet_model, tmp_path, strategy):
    if strategy == "beam":
        use_beam(quiet_model)
    files = [write(tmp_path / "silent.wav", silence(2.0)), write(tmp_path / "white.wav", white(1.5, -35.0, seed=6))]
    arrays = [silence(1.0), white(2.0, -50.0)]  # NeMo takes files or arrays in one call, not both
    for inputs in (files, arrays):  # 2 s of digital zeros: longer than any training row
        hyps = quiet_model.transcribe(inputs, batch_size=2, return_hypotheses=True, verbose=False)
        assert texts(hyps) == ["", ""]
        assert all(h.y_sequence.numel() == 0 and math.isfinite(h.score) for h in hyps)


@pytest.mark.unit
def test_an_all_silent_file_longer_than_training_is_routed_to_long_form_and_gives_no_text(
    quiet_model, tmp_path, monkeypatch
):
    import nemo_aligner_plugin.longform.routing as routing

    routed = []

    def spy(model, audio, *args, **kwargs):
        routed.extend(audio)
        return transcribe_longform(model, audio, *args, **kwargs)

    monkeypatch.setattr(routing, "transcribe_longform", spy)
    with open_dict(quiet_model.cfg):  # what training writes: the longest training utterance (auto routes above it)
        quiet_model.cfg.train_durations = {"max_seconds": 1.7}
    set_longform(quiet_model, enabled="auto", chunk_seconds=CHUNK_SECONDS)
    hyps = quiet_model.transcribe([write(tmp_path / "silent.wav", silence(7.0))], return_hypotheses=True, verbose=False)
    hyps += quiet_model.transcribe([silence(5.0)], return_hypotheses=True, verbose=False)
    # noise: each chunk its own utterance, as in training (without chunk_features, a chunk after the first starts
    # with the conv subsampling's context, which this tiny model never saw at a first frame: see docs/longform.md)
    set_longform(quiet_model, chunk_features=True)
    hyps += quiet_model.transcribe([write(tmp_path / "white.wav", white(6.0))], return_hypotheses=True, verbose=False)
    assert len(routed) == 3
    assert texts(hyps) == ["", "", ""]
    assert all(h.y_sequence.numel() == 0 for h in hyps)


@pytest.mark.unit
@pytest.mark.parametrize("mode", ["prime", "reset_only", "carry_state"])
@pytest.mark.parametrize("chunk_features", [False, True])
@pytest.mark.parametrize(
    "cuts",
    [
        {"boundary": "fixed"},
        {"boundary": "pause", "trim_pauses": True},
        {"boundary": "every_pause", "split_margin": 0.0, "split_min_seconds": 1.6},
    ],
    ids=["fixed", "pause-trim", "every_pause-split"],
)
def test_every_long_form_path_reads_nothing_from_audio_without_speech(quiet_model, mode, chunk_features, cuts):
    """Digital zeros (log of zero energy, flat loudness: no pause, no dip) and noise through each boundary, the split
    search, trim_pauses and each start-state mode: no error, finite scores, and no word from digital silence;
    noise gives none where each chunk is its own utterance (chunk_features), as in training."""
    cfg = LongformConfig(enabled=True, chunk_seconds=CHUNK_SECONDS, mode=mode, chunk_features=chunk_features, **cuts)
    hyps = transcribe_longform(quiet_model, [silence(6.0), silence(0.5), white(6.0)], cfg, verbose=False)
    assert all(math.isfinite(h.score) for h in hyps)
    assert texts(hyps)[:2] == ["", ""]
    if chunk_features:
        assert texts(hyps)[2] == ""


@pytest.mark.unit
@pytest.mark.parametrize(
    ("mode", "chunk_features", "gap"),
    [
        ("prime", False, "room"),
        ("prime", True, "room"),
        ("carry_state", False, "room"),
        ("carry_state", True, "room"),
        ("reset_only", True, "room"),
        ("prime", True, "zeros"),
    ],
)
def test_tones_around_a_long_silence_give_the_tones_words_and_none_for_the_silence(
    quiet_model, tone_manifest, tmp_path, mode, chunk_features, gap
):
    """Tones, 4 s without speech (two whole chunks), tones: the speechless chunks end at EOS at their first frame,
    also after a chunk that emitted words (prime feeds them back, carry_state keeps the state).
    Digital zeros inside a file are read as their own utterance only with chunk_features: a whole-file feature
    normalization makes them unlike any training row."""
    first, second = tone_items(tone_manifest)[:2]
    pad = lambda audio: np.concatenate([audio, quiet_room(CHUNK_SECONDS - audio.size / SAMPLE_RATE)])  # noqa: E731
    tones = [pad(sf.read(i["audio_filepath"], dtype="float32")[0]) for i in (first, second)]
    stretch = quiet_room(2 * CHUNK_SECONDS, seed=1) if gap == "room" else silence(2 * CHUNK_SECONDS)
    path = write(tmp_path / "tones_gap_tones.wav", np.concatenate([tones[0], stretch, tones[1]]))
    set_longform(quiet_model, enabled=True, chunk_seconds=CHUNK_SECONDS, mode=mode, chunk_features=chunk_features)
    (hyp,) = quiet_model.transcribe([path], return_hypotheses=True, verbose=False)
    assert hyp.text == f"{first['text']} {second['text']}"
    frames_per_chunk = round(CHUNK_SECONDS * 25)  # 10 ms hop x4: 25 encoder frames per second
    assert all(t < frames_per_chunk or t >= 3 * frames_per_chunk for t in hyp.timestamp.tolist())
