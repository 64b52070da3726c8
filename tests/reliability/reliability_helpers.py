"""Shared pieces of the reliability tests: messy audio files, and running the training recipe with faults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from conftest import REPO, SAMPLE_RATE, TINY_ARCH_OVERRIDES

HERE = Path(__file__).resolve().parent
# The recipe shrunk to a model that trains in seconds, deterministic (no dropout, dither, SpecAugment or
# concatenation), with a per-step lr schedule: conftest's tiny architecture plus zero prediction-network
# and joint dropout.
RECIPE_OVERRIDES = [
    *TINY_ARCH_OVERRIDES,
    "model.decoder.prednet.dropout=0.0",
    "model.joint.jointnet.dropout=0.0",
    "model.concat_utterances.fraction=0",
    "model.optim.lr=0.05",  # NoamAnnealing: peak 0.05 / sqrt(64 * 5) = 2.8e-3
    "model.optim.weight_decay=0.0",
    "model.optim.sched.warmup_steps=5",
    "model.optim.sched.min_lr=1e-5",
    "model.train_ds.batch_size=2",
    "model.train_ds.shuffle=false",
    "model.train_ds.num_workers=0",
    "model.validation_ds.num_workers=0",
    "model.test_ds.num_workers=0",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "trainer.log_every_n_steps=1",
    "trainer.check_val_every_n_epoch=1",
    "exp_manager.create_tensorboard_logger=false",
    "+seed=0",
]


def run_recipe(
    exp_dir: Path,
    manifest: Path,
    tokenizer_dir: Path,
    *overrides: str,
    env: dict | None = None,
    timeout: int = 600,
    prefix: list[str] | None = None,
) -> subprocess.CompletedProcess:
    """recipes/train_aligner.py through tests/reliability/fault_recipe.py (faults from ``env``); not checked."""
    command = [
        *(prefix or []),
        sys.executable,
        str(HERE / "fault_recipe.py"),
        "--config-path=../configs",
        "--config-name=aligner_conformer_bpe",
        f"model.train_ds.manifest_filepath={manifest}",
        f"model.validation_ds.manifest_filepath={manifest}",
        f"model.tokenizer.dir={tokenizer_dir}",
        f"exp_manager.exp_dir={exp_dir}",
        *RECIPE_OVERRIDES,
        *overrides,
    ]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=subprocess_env(env), timeout=timeout)


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
    put("rate48k", resample_poly(audio, 3, 1).astype(np.float32), 48000)
    put("stereo", np.stack([audio, audio], axis=1))
    put("stereo_opposite", np.stack([audio, -audio], axis=1))  # averaging cancels it: silence
    put("zero_length", np.zeros(0, np.float32))
    put("silence", np.zeros(SAMPLE_RATE, np.float32))
    with_nan = audio.copy()
    with_nan[1000:1010] = np.nan
    put("nan", with_nan, subtype="FLOAT")
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
