"""Shared by tests/checks and tests/reliability: messy audio files, manifests on disk, child Python processes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from conftest import REPO, SAMPLE_RATE


def subprocess_env(extra: dict | None = None) -> dict:
    """The environment for a child Python: this checkout first on the path (a script's own folder is sys.path[0],
    so otherwise the installed package is imported, which may be another checkout), one thread, no hub."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **(extra or {})}


def output(proc: subprocess.CompletedProcess, chars: int = 4000) -> str:
    return f"exit {proc.returncode}\nSTDOUT:\n{proc.stdout[-chars:]}\nSTDERR:\n{proc.stderr[-chars:]}"


def write_manifest(path: Path, entries: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return path


def read_manifest(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="session")
def messy_audio(tmp_path_factory, tone_manifest) -> dict:
    """One tone utterance the ``trained_nemo`` model knows (``ref``, with its ``text``) in many messy forms."""
    out = tmp_path_factory.mktemp("messy")
    first = read_manifest(tone_manifest)[0]
    audio, rate = sf.read(first["audio_filepath"], dtype="float32")
    assert rate == SAMPLE_RATE
    files = {"text": first["text"], "ref": first["audio_filepath"], "samples": audio.size}

    def put(name: str, data, sample_rate: int = SAMPLE_RATE, subtype=None) -> None:
        files[name] = str(out / f"{name}.wav")
        sf.write(files[name], data, sample_rate, subtype=subtype)

    put("rate8k", resample_poly(audio, 1, 2).astype(np.float32), 8000)
    put("rate4k", resample_poly(audio, 1, 4).astype(np.float32), 4000)
    put("rate48k", resample_poly(audio, 3, 1).astype(np.float32), 48000)
    put("stereo", np.stack([audio, audio], axis=1))
    put("stereo_opposite", np.stack([audio, -audio], axis=1))  # averaging cancels it: silence
    put("zero_length", np.zeros(0, np.float32))
    put("silence", np.zeros(SAMPLE_RATE, np.float32))
    with_nan = audio.copy()
    with_nan[1000:1010] = np.nan
    put("nan", with_nan, subtype="FLOAT")
    with_inf = audio.copy()
    with_inf[500] = np.inf
    put("inf", with_inf, subtype="FLOAT")
    put("ten_minutes", np.zeros(600 * SAMPLE_RATE, np.int16), subtype="PCM_16")
    files["missing"] = str(out / "missing.wav")
    files["empty"] = str(out / "empty.wav")
    Path(files["empty"]).write_bytes(b"")
    files["corrupt"] = str(out / "corrupt.wav")  # a RIFF/WAVE header without its data chunk
    Path(files["corrupt"]).write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunk" + bytes(range(200)))
    put("truncated", audio)  # the header says 1.66 s; the data stops after 0.6 s
    os.truncate(files["truncated"], 44 + 2 * int(0.6 * SAMPLE_RATE))
    files["dir"] = str(out)
    return files
