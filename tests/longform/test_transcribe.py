"""Transcription and routing: exact plain results for audio within one chunk, the config section, which audio
transcribe() sends through long-form (enabled true / false / auto) and the warnings where it cannot."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf, open_dict
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

    out = transcribe_routed(rigged_model, [long, short, short], LongformConfig(enabled=True, chunk_seconds=2.0), plain)
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


@pytest.mark.unit
@pytest.mark.parametrize(
    ("enabled", "train_durations", "routed"),
    [
        (True, None, [0]),  # longer than chunk_seconds (2 s)
        ("auto", {"max_seconds": 1.5}, [0, 1]),  # longer than the trained length: 3 s and 1.6 s
        ("auto", None, []),  # trained length = train_ds.max_duration (20 s)
        (False, {"max_seconds": 1.5}, []),
    ],
)
def test_routing_threshold_follows_enabled_and_the_trained_length(tokenizer_dir, enabled, train_durations, routed):
    model = make_rigged_model(tokenizer_dir)
    if train_durations is not None:
        with open_dict(model.cfg):
            model.cfg.train_durations = train_durations
    audio = [np.zeros(3 * SAMPLE_RATE, dtype=np.float32), np.zeros(int(1.6 * SAMPLE_RATE), dtype=np.float32)]
    out = transcribe_routed(
        model, audio, LongformConfig(enabled=enabled, chunk_seconds=2.0), lambda items: ["plain"] * len(items)
    )
    assert [i for i, hyp in enumerate(out) if hyp != "plain"] == routed


def joined_tones(manifest, out_path, order: list[int], slot_seconds: float) -> tuple[str, str, list[float]]:
    """Utterances of a tone manifest in one file, each padded with the corpus's noise to ``slot_seconds``: the path,
    the joined text and the durations of all the manifest's utterances (the training set of ``trained_nemo``)."""
    items = [json.loads(line) for line in manifest.read_text().splitlines()]
    rng = np.random.default_rng(0)
    slots = []
    for i in order:
        part = sf.read(items[i]["audio_filepath"], dtype="float32")[0]
        slots += [part, (0.003 * rng.standard_normal(int(slot_seconds * SAMPLE_RATE) - part.size)).astype(np.float32)]
    sf.write(out_path, np.concatenate(slots), SAMPLE_RATE)
    return str(out_path), " ".join(items[i]["text"] for i in order), [i["duration"] for i in items]


def word_errors(hypothesis: str, reference: str) -> int:
    """Word-level edit distance."""
    hyp, ref = hypothesis.split(), reference.split()
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


@pytest.mark.unit
def test_auto_reads_audio_longer_than_training_about_as_well_as_its_parts(trained_nemo, tone_manifest, tmp_path):
    """Four training utterances in 8 s (over 4x the longest, 1.78 s): default transcribe() settings (auto) send the
    file through long-form with the model's own settings, and it reads as well as its parts; read in one piece it
    does not."""
    model = AlignerEncoderModel.restore_from(str(trained_nemo)).eval()
    order = [0, 1, 4, 5]
    path, text, durations = joined_tones(tone_manifest, tmp_path / "joined.wav", order, slot_seconds=2.0)
    files = [json.loads(line)["audio_filepath"] for line in tone_manifest.read_text().splitlines()]
    parts = " ".join(h.text for h in model.transcribe([files[i] for i in order], verbose=False))
    with open_dict(model.cfg):
        model.cfg.train_durations = {
            "p50_seconds": float(np.median(durations)),
            "p95_seconds": max(durations),
            "p99_seconds": max(durations),
            "max_seconds": max(durations),
            "num_utterances": len(durations),
        }
        # the model's own long-form settings, tuned for its training utterances; "enabled" left at its default
        model.cfg.longform = {"chunk_seconds": 2.0, "chunk_features": True, "mode": "reset_only"}
    (auto,) = model.transcribe([path], verbose=False)
    assert auto.length == 200  # 8 s of encoder frames: routed through long-form
    assert word_errors(auto.text, text) <= word_errors(parts, text)
    with open_dict(model.cfg):
        model.cfg.longform.enabled = False
    (plain,) = model.transcribe([path], verbose=False)
    assert word_errors(plain.text, text) >= word_errors(auto.text, text) + 3  # in one piece it reads worse


@pytest.mark.unit
def test_transcribe_longform_without_cfg_uses_the_models_own_settings(trained_nemo, tone_manifest, capsys):
    model = AlignerEncoderModel.restore_from(str(trained_nemo)).eval()
    files = [json.loads(line)["audio_filepath"] for line in tone_manifest.read_text().splitlines()][:2]
    long = np.concatenate([sf.read(f, dtype="float32")[0] for f in files])
    with open_dict(model.cfg):
        model.cfg.longform = {"enabled": False, "chunk_seconds": 1.0, "mode": "reset_only"}
    capsys.readouterr()
    (own,) = transcribe_longform(model, [long], verbose=False)
    assert capsys.readouterr().err == ""  # verbose=False: no progress bar
    given, _ = transcribe_longform(model, [long, long], LongformConfig(chunk_seconds=1.0, mode="reset_only"))
    assert "Long-form" in capsys.readouterr().err  # verbose (the default): a progress bar
    (default,) = transcribe_longform(model, [long], LongformConfig(), verbose=False)
    assert own.y_sequence.tolist() == given.y_sequence.tolist() != default.y_sequence.tolist()


@pytest.mark.unit
def test_nbest_decoding_returns_a_list_per_utterance_on_both_paths(trained_nemo, tone_manifest):
    """return_best_hypothesis=false: every item is a list of Hypothesis, best first, as NeMo's RNN-T models return;
    a long-form item is the one-entry list of its best."""
    model = with_beam(AlignerEncoderModel.restore_from(str(trained_nemo)).eval(), return_best_hypothesis=False)
    files = [json.loads(line)["audio_filepath"] for line in tone_manifest.read_text().splitlines()][:2]
    long, short = np.concatenate([sf.read(f, dtype="float32")[0] for f in files]), sf.read(files[0], dtype="float32")[0]
    with open_dict(model.cfg):
        model.cfg.longform = {"enabled": True, "chunk_seconds": 2.0, "mode": "reset_only"}
    routed, plain = model.transcribe([long, short], batch_size=1, verbose=False)
    assert isinstance(routed, list) and len(routed) == 1 and routed[0].length == 83
    assert isinstance(plain, list) and len(plain) >= 1 and all(isinstance(h.text, str) for h in plain)


@pytest.mark.unit
def test_long_audio_that_cannot_take_long_form_warns_once(tokenizer_dir, tmp_path, monkeypatch):
    import nemo_aligner_plugin.longform.routing as routing

    model, fresh = make_rigged_model(tokenizer_dir), make_rigged_model(tokenizer_dir)
    with open_dict(fresh.cfg):
        fresh.cfg.longform = {"chunk_seconds": 2.0}  # enabled: the default, auto
    warnings: list[str] = []
    monkeypatch.setattr(routing.logging, "warning", warnings.append)
    with open_dict(model.cfg):
        model.cfg.train_durations = {"max_seconds": 2.0}
        model.cfg.longform = {"enabled": False}
    long, short = np.zeros(3 * SAMPLE_RATE, dtype=np.float32), np.zeros(SAMPLE_RATE, dtype=np.float32)
    assert routing.longform_items(model, [short]) is None and warnings == []
    assert routing.longform_items(model, [short, long]) is None and routing.longform_items(model, [long]) is None
    (message,) = warnings  # once per model
    assert "audio[1] is 3.0 s" in message and "2.0 s" in message and "train_durations.max_seconds" in message
    assert "model.cfg.longform.enabled = True" in message and "longform.enabled=true" in message

    with open_dict(model.cfg):
        model.cfg.longform.enabled = "auto"
    manifest = tmp_path / "long_manifest.json"
    manifest.write_text(json.dumps({"audio_filepath": "x.wav", "duration": 9.5, "text": "a"}) + "\n")
    assert routing.longform_items(model, str(manifest)) is None
    assert "x.wav is 9.5 s" in warnings[-1] and "manifests" in warnings[-1]
    assert routing.longform_items(model, [long], timestamps=True) is None and len(warnings) == 2  # once
    assert routing.longform_items(fresh, [long]) == [long]  # auto routes it
