"""checks/transcribe_inputs.py: messy audio through transcribe(), with both loaders (Lhotse and legacy).

Measured before the checks (83f1566 and earlier):
- missing / empty / corrupt file: lhotse ``AudioLoadingError`` or soundfile ``LibsndfileError`` from inside the
  loader ("System error" for a missing file), in transcribe() and mid-epoch in training;
- stereo: Lhotse averages channels only in batches that mix mono and stereo, a stereo-only batch comes out
  (B, C, T) and fails the model's input type check;
- 10-minute file in transcribe(): one 7.2 GB attention allocation even for the tiny test model
  (``DefaultCPUAllocator: can't allocate memory``) or an OOM kill; 2 minutes: a transcript silently cut short;
- 100 NaN samples, or one inf: no error, the transcript a row of unknown tokens (" ⁇  ⁇  ⁇ ...");
- a 4 kHz file: resampled and transcribed to an unrelated sentence, no warning.
"""

import json
import re
import subprocess
import sys
from contextlib import contextmanager

import fault_helpers
import numpy as np
import pytest
import torch
from fault_helpers import output, subprocess_env, write_manifest
from nemo.utils import logging
from omegaconf import open_dict

from conftest import REPO
from nemo_aligner_plugin import AlignerEncoderModel, checks

messy_audio = fault_helpers.messy_audio  # the fixture

PATHS = pytest.mark.parametrize("use_lhotse", [True, False], ids=["lhotse", "legacy"])


@pytest.fixture(scope="module")
def model(trained_nemo):
    return AlignerEncoderModel.restore_from(str(trained_nemo)).eval()


@contextmanager
def longform_set(model, enabled):
    """The model with ``longform.enabled`` set to ``enabled`` inside the block."""
    previous = model.cfg.get("longform")
    with open_dict(model.cfg):
        model.cfg.longform = {**(previous or {}), "enabled": enabled}
    try:
        yield model
    finally:
        with open_dict(model.cfg):
            model.cfg.longform = previous


@pytest.fixture
def longform_enabled(model):
    with longform_set(model, True):
        yield model


def texts(model, audio, use_lhotse, **kwargs):
    with torch.inference_mode():
        return [h.text for h in model.transcribe(audio, batch_size=4, use_lhotse=use_lhotse, verbose=False, **kwargs)]


@pytest.mark.unit
@PATHS
def test_unreadable_files_named_before_reading(model, messy_audio, use_lhotse):
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
def test_zero_length_and_silent_audio(model, messy_audio, use_lhotse):
    out = texts(model, [messy_audio["zero_length"], messy_audio["silence"], messy_audio["ref"]], use_lhotse)
    assert out[0] == "" and out[2] == messy_audio["text"]
    assert len(model.tokenizer.text_to_ids(out[1])) <= 26  # at most one token per encoder frame (1 s = 26)


@pytest.mark.unit
@PATHS
def test_8k_and_48k_resampled_in_transcribe(model, messy_audio, use_lhotse, monkeypatch):
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
def test_stereo_reaches_the_model_as_mono(model, messy_audio, use_lhotse):
    m = messy_audio
    assert texts(model, [m["stereo"]], use_lhotse) == [m["text"]]  # a stereo-only batch: averaged
    assert texts(model, [m["stereo_opposite"]], use_lhotse, channel_selector=0) == [m["text"]]


@pytest.mark.unit
def test_ten_minute_file_refused_with_a_hint(model, messy_audio):
    with longform_set(model, False), pytest.raises(checks.AudioTooLongError) as err:
        texts(model, [messy_audio["ref"], messy_audio["ten_minutes"]], True)
    message = str(err.value)
    assert message.startswith("transcribe(): 1 of 2 inputs are longer than 40 s, the most this model decodes")
    assert f"{messy_audio['ten_minutes']}: 600.0 s (one attention score tensor: 3.4 GiB)" in message
    assert "Python: model.cfg.longform.enabled = True" in message and '"auto"' in message
    assert "CLI:    python recipes/transcribe_aligner.py model_path=... dataset_manifest=... longform.enabled=true" in (
        message
    )
    assert "max_transcribe_seconds" in message
    with longform_set(model, False), pytest.raises(checks.AudioTooLongError, match=r"array 0 \(9600000 samples\)"):
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
                str(REPO / "recipes" / "transcribe_aligner.py"),
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


@pytest.mark.unit
@PATHS
def test_nonfinite_samples_refused_naming_each_file(model, messy_audio, use_lhotse):
    m = messy_audio
    with pytest.raises(checks.NonFiniteAudioError) as err:
        texts(model, [m["ref"], m["nan"], m["inf"]], use_lhotse)
    message = str(err.value)
    assert message.startswith("transcribe(): 2 of 3 audio inputs have NaN/inf samples, which make the features NaN")
    assert f"  {m['nan']}: 10 NaN/inf samples\n  {m['inf']}: 1 NaN/inf samples\n" in message
    assert "--samples finds every such file" in message
    array = np.zeros(16000, np.float32)
    array[[3, 7]] = [np.nan, -np.inf]
    with pytest.raises(checks.NonFiniteAudioError, match=r"array 0 \(16000 samples\): 2 NaN/inf samples"):
        texts(model, [array], use_lhotse)


@pytest.mark.unit
def test_nonfinite_samples_refused_on_the_long_form_path(longform_enabled, messy_audio, tmp_path):
    m = messy_audio
    with pytest.raises(checks.NonFiniteAudioError, match=f"{m['nan']}: 10 NaN/inf samples"):
        texts(longform_enabled, [m["nan"]], True)
    manifest = write_manifest(tmp_path / "nan.json", [{"audio_filepath": m["inf"], "duration": 1.66}])
    with pytest.raises(checks.NonFiniteAudioError, match=f"{m['inf']}: 1 NaN/inf samples"):
        texts(longform_enabled, str(manifest), True)  # a manifest: the plain path, checked the same


@pytest.mark.unit
def test_low_sample_rate_warned_naming_the_file(model, messy_audio, monkeypatch):
    warned = []
    monkeypatch.setattr(logging, "warning", lambda m, *a, **k: warned.append(m) if "transcribe()" in m else None)
    texts(model, [messy_audio["ref"], messy_audio["rate48k"]], True)
    assert warned == []  # at or above the model's rate: nothing lost
    texts(model, [messy_audio["rate8k"], messy_audio["rate4k"]], True)
    [message] = warned
    assert message.startswith("transcribe(): 2 audio input(s) below the model's 16000 Hz:\n")
    assert f"  {messy_audio['rate8k']}: 8000 Hz, nothing above 4000 Hz\n" in message
    assert f"  {messy_audio['rate4k']}: 4000 Hz, nothing above 2000 Hz\n" in message
    assert "expect more errors, and at 4 kHz or below an unrelated transcript" in message


@pytest.mark.unit
def test_too_long_hint_when_long_form_is_on_but_not_taken(longform_enabled, messy_audio):
    """Before: timestamps=True with long-form on refused long audio, telling the user to enable long-form."""
    with pytest.raises(checks.AudioTooLongError) as err:
        checks.check_transcribe_duration(longform_enabled, [45.0], names=["x.wav"])
    message = str(err.value)
    assert re.search(r"x.wav: 45.0 s \(one attention score tensor: \d+ MiB\)", message)  # not "0.0 GiB"
    assert "Long-form is enabled (longform.enabled=True), but this call takes the one-pass path" in message
    assert "timestamps=True" in message and "model.cfg.longform.enabled = True" not in message
