"""Messy audio through transcribe() and both training loaders (legacy manifest dataset and Lhotse).

Measured before the checks integration (tests/reliability/checks_integration.py):
- missing / empty / corrupt file: lhotse ``AudioLoadingError`` or soundfile ``LibsndfileError`` from inside the
  loader ("System error" for a missing file), in transcribe() and mid-epoch in training;
- stereo: legacy loader crashes in collation (``stack expects each tensor to be equal size``) or the type check;
  Lhotse averages channels only in batches that mix mono and stereo, a stereo-only batch comes out (B, C, T)
  and fails the model's input type check;
- 10-minute file in transcribe(): one 7.2 GB attention allocation even for the tiny test model
  (``DefaultCPUAllocator: can't allocate memory``) or an OOM kill; 2 minutes: a transcript silently cut short.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
import reliability_helpers
import soundfile as sf
import torch
from checks_integration import integrate
from omegaconf import OmegaConf
from reliability_helpers import HERE, output, subprocess_env, write_manifest

from conftest import REPO
from nemo_aligner_plugin import AlignerEncoderModel, checks

PATHS = pytest.mark.parametrize("use_lhotse", [True, False], ids=["lhotse", "legacy"])

messy_audio = reliability_helpers.messy_audio  # the fixture


@pytest.fixture(scope="module")
def model(trained_nemo):
    return AlignerEncoderModel.restore_from(str(trained_nemo)).eval()


@pytest.fixture
def integrated(monkeypatch):
    return integrate(monkeypatch)


def texts(model, audio, use_lhotse, **kwargs):
    with torch.inference_mode():
        return [h.text for h in model.transcribe(audio, batch_size=4, use_lhotse=use_lhotse, verbose=False, **kwargs)]


def loaded_signals(model, manifest, use_lhotse, **ds):
    """The (audio, lengths) batches the training loader yields for a manifest."""
    cfg = OmegaConf.create(
        {
            **OmegaConf.to_container(model.cfg.train_ds),
            "manifest_filepath": str(manifest),
            "use_lhotse": use_lhotse,
            "shuffle": False,
            "batch_size": 4,
            "min_duration": 0.0,
            **ds,
        }
    )
    model.setup_training_data(cfg)
    return [(batch[0], batch[1]) for batch in model._train_dl]


@pytest.mark.unit
@PATHS
def test_unreadable_files_named_before_reading(model, messy_audio, integrated, use_lhotse):
    m = messy_audio
    with pytest.raises(checks.AudioInputError) as err:
        texts(model, [m["ref"], m["missing"], m["empty"], m["corrupt"]], use_lhotse)
    message = str(err.value)
    assert message.startswith("transcribe(): 3 of 4 audio inputs cannot be read:")
    assert f"audio file not found: {m['missing']}" in message
    assert f"audio file is empty (0 bytes): {m['empty']}" in message
    assert f"cannot read audio file {m['corrupt']}" in message


@pytest.mark.unit
@PATHS
def test_zero_length_and_silent_audio(model, messy_audio, integrated, use_lhotse):
    out = texts(model, [messy_audio["zero_length"], messy_audio["silence"], messy_audio["ref"]], use_lhotse)
    assert out[0] == "" and out[2] == messy_audio["text"]
    assert len(model.tokenizer.text_to_ids(out[1])) <= 26  # at most one token per encoder frame (1 s = 26)


@pytest.mark.unit
@PATHS
def test_8k_and_48k_resampled_in_transcribe(model, messy_audio, integrated, use_lhotse, monkeypatch):
    seen = []
    forward = type(model)._transcribe_forward
    monkeypatch.setattr(
        type(model),
        "_transcribe_forward",
        lambda self, batch, trcfg: seen.append(batch[1].tolist()) or forward(self, batch, trcfg),
    )
    out = texts(model, [messy_audio["rate8k"], messy_audio["rate48k"]], use_lhotse)
    assert seen == [[messy_audio["samples"]] * 2]  # both at 16 kHz when they reach the model
    assert out[1] == messy_audio["text"]  # 48 kHz keeps the whole band; 8 kHz lacks everything above 4 kHz


@pytest.mark.unit
@PATHS
def test_8k_and_48k_resampled_in_training_loaders(model, messy_audio, tmp_path, use_lhotse):
    rows = [{"audio_filepath": messy_audio[k], "duration": 1.66, "text": "ab"} for k in ("rate8k", "rate48k")]
    [(audio, lengths)] = loaded_signals(model, write_manifest(tmp_path / "rates.json", rows), use_lhotse)
    reference = torch.from_numpy(sf.read(messy_audio["ref"], dtype="float32")[0])
    assert lengths.tolist() == [reference.numel()] * 2
    for signal, tolerance in zip(audio, (0.02, 0.005), strict=True):  # 8 kHz loses the band above 4 kHz
        assert (signal - reference).norm() / reference.norm() < tolerance


@pytest.mark.unit
@PATHS
def test_stereo_reaches_the_model_as_mono(model, messy_audio, tmp_path, integrated, use_lhotse):
    m = messy_audio
    assert texts(model, [m["stereo"]], use_lhotse) == [m["text"]]  # a stereo-only batch: averaged
    assert texts(model, [m["stereo_opposite"]], use_lhotse, channel_selector=0) == [m["text"]]
    rows = [{"audio_filepath": m[k], "duration": 1.66, "text": "ab"} for k in ("stereo", "stereo_opposite")]
    [(audio, _)] = loaded_signals(model, write_manifest(tmp_path / "stereo.json", rows), use_lhotse)
    reference = torch.from_numpy(sf.read(m["ref"], dtype="float32")[0])
    assert audio.shape == (2, reference.numel())
    assert torch.allclose(audio[0], reference, atol=1e-4) and audio[1].abs().max() < 1e-4  # (a - a) / 2


@pytest.mark.unit
def test_ten_minute_file_refused_with_a_hint(model, messy_audio, integrated):
    with pytest.raises(checks.AudioTooLongError) as err:
        texts(model, [messy_audio["ref"], messy_audio["ten_minutes"]], True)
    message = str(err.value)
    assert message.startswith("transcribe(): 1 of 2 inputs are longer than 40 s, the most this model decodes")
    assert f"{messy_audio['ten_minutes']}: 600.0 s (one attention score tensor: 3.4 GiB)" in message
    assert "model.cfg.longform.enabled=true" in message and "max_transcribe_seconds" in message
    with pytest.raises(checks.AudioTooLongError, match=r"array 0 \(9600000 samples\): 600.0 s"):
        texts(model, [np.zeros(600 * 16000, np.float32)], True)


@pytest.mark.unit
def test_transcribe_duration_limit_follows_the_config(model, messy_audio):
    assert checks.transcribe_limit_seconds(model) == 2 * model.cfg.train_ds.max_duration
    checks.check_transcribe_duration(model, [39.0, None], names=["a", "b"])  # None: unknown length, not checked
    with pytest.raises(checks.AudioTooLongError, match="longer than 30 s"):
        checks.check_transcribe_duration(model, [31.0], limit=30.0, names=["a"])
    checks.check_transcribe_inputs(model, [messy_audio["ten_minutes"]], check_duration=False)  # long-form takes it


@pytest.mark.unit
def test_transcribe_recipe_names_bad_lines_and_files(tmp_path, trained_nemo, messy_audio):
    """Before: a latin-1 line gave "'utf-8' codec can't decode byte 0xe9 in position 174" (no file or line), a
    missing or corrupt file a Lhotse AudioLoadingError traceback (exit 1), stereo a type-check traceback."""
    ok = {"audio_filepath": messy_audio["ref"], "duration": 1.66, "text": messy_audio["text"]}
    latin1 = tmp_path / "latin1.json"
    lines = [json.dumps(ok), json.dumps({**ok, "text": "caf\u00e9"}, ensure_ascii=False)]
    latin1.write_bytes("\n".join(lines).encode("latin-1") + b"\n")
    missing = write_manifest(tmp_path / "missing.json", [ok, {**ok, "audio_filepath": messy_audio["missing"]}])
    for manifest, expected in [
        (latin1, f"{latin1}:2: not UTF-8: byte 0xe9 at column"),
        (missing, f"audio file not found: {messy_audio['missing']}"),
    ]:
        proc = subprocess.run(
            [
                sys.executable,
                str(HERE / "transcribe_with_checks.py"),
                f"model_path={trained_nemo}",
                f"dataset_manifest={manifest}",
                f"output_filename={tmp_path / 'predictions.json'}",
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=subprocess_env(),
            timeout=300,
        )
        assert proc.returncode == 2 and expected in proc.stdout + proc.stderr, output(proc)
