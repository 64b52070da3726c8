"""Transcription and routing: exact plain results for audio within one chunk, the config section, which audio
transcribe() sends through long-form (enabled true / false / auto) and the warnings where it cannot."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf
from rigged import make_rigged_model, with_beam

from conftest import CONFIGS, SAMPLE_RATE, synth_tones
from nemo_aligner_plugin import AlignerEncoderModel
from nemo_aligner_plugin.longform import (
    LongformConfig,
    load_audio,
    longform_config,
    routable_audio,
    transcribe_longform,
    transcribe_routed,
)


@pytest.fixture(scope="module")
def rigged_model(tokenizer_dir) -> AlignerEncoderModel:
    return make_rigged_model(tokenizer_dir)


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
        ({"enabled": "yes"}, "enabled"),
    ],
)
def test_config_rejects_bad_values(kwargs, named):
    with pytest.raises(ValueError, match=named):
        LongformConfig(**kwargs)


@pytest.mark.unit
def test_model_config_section_and_routable_inputs():
    assert longform_config(None) is None and longform_config({"enabled": False, "chunk_seconds": 5.0}) is None
    assert longform_config({"enabled": True, "chunk_seconds": 5.0, "mode": "reset_only"}) == LongformConfig(
        enabled=True, chunk_seconds=5.0, mode="reset_only"
    )
    assert longform_config({"chunk_seconds": 5.0}).enabled == "auto"  # the default
    assert longform_config({"enabled": "false"}) is None and longform_config({"enabled": "True"}).enabled is True
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
    assert set(section) == {f.name for f in dataclasses.fields(LongformConfig)}  # every option in the YAML
    assert isinstance(longform_config({**section, "enabled": True}), LongformConfig)


@pytest.mark.unit
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
    assert hyps[0].length == expected_long.length == 83  # plain decoding's text-only Hypothesis has length 0
