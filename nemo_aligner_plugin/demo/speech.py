"""Speech for the demo corpus: espeak-ng voices, synthesis, silence trimming and resampling to 16 kHz.

Samples: 16 kHz mono; ``x`` float32 in [-1, 1]. Durations do not depend on which resampler is installed.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
import random
import re
import subprocess
import tempfile
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "SAMPLE_RATE",
    "Utterance",
    "available_voices",
    "split_voices",
    "get_resampler",
    "trim_silence",
    "synthesize",
]

SAMPLE_RATE = 16000

ACCENTS = ["en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc"]
# fmt: off
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
            "klatt3", "Andy", "Annie", "belinda", "david", "edward", "john", "linda", "max", "paul",
            "robert", "steph", "travis", "victor"]
# fmt: on


def available_voices(espeak: str = "espeak-ng") -> list[str]:
    """``accent+variant`` voices that this espeak-ng install really has.

    espeak-ng silently falls back to the default voice for unknown variants, so we check the
    data directory ourselves rather than trusting the name.
    """
    ver = subprocess.run([espeak, "--version"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"Data at:\s*(\S+)", ver)
    vdir = Path(m.group(1)) / "voices" / "!v" if m else None
    variants = [v for v in VARIANTS if vdir is None or (vdir / v).exists()]
    listing = subprocess.run([espeak, "--voices=en"], check=False, capture_output=True, text=True).stdout
    langs = {line.split()[1] for line in listing.splitlines()[1:] if len(line.split()) > 1}
    accents = [a for a in ACCENTS if a in langs] or ["en"]
    return [f"{a}+{v}" for a in accents for v in variants]


def split_voices(rng: random.Random, voices: Sequence[str], test_fraction: float = 0.15) -> tuple[list[str], list[str]]:
    """Hold out whole accent+variant combos for test so test speakers are unseen in training."""
    shuffled = list(voices)
    rng.shuffle(shuffled)
    n_test = max(1, round(test_fraction * len(shuffled)))
    return sorted(shuffled[n_test:]), sorted(shuffled[:n_test])


@functools.lru_cache(maxsize=1)
def get_resampler() -> tuple[str, Callable[[np.ndarray, int, int], np.ndarray]]:
    """Pick torchaudio, else scipy, else numpy linear interpolation (whatever is installed).

    torchaudio is probed with find_spec first so a torch-only install doesn't pay torch's import.
    """
    if importlib.util.find_spec("torchaudio") is not None:
        try:
            import torch
            import torchaudio.functional as taf

            def _ta(x: np.ndarray, sr: int, tgt: int) -> np.ndarray:
                return taf.resample(torch.from_numpy(x), sr, tgt).numpy()

            return "torchaudio", _ta
        except Exception as e:  # noqa: BLE001 - a broken torchaudio install just means "use scipy"
            print(f"torchaudio unusable ({e}); falling back", flush=True)
    if importlib.util.find_spec("scipy") is not None:
        from scipy.signal import resample_poly

        def _sp(x: np.ndarray, sr: int, tgt: int) -> np.ndarray:
            g = math.gcd(sr, tgt)
            return resample_poly(x, tgt // g, sr // g).astype(np.float32)

        return "scipy", _sp

    def _np(x: np.ndarray, sr: int, tgt: int) -> np.ndarray:
        n_out = -(-len(x) * tgt // sr)
        return np.interp(np.arange(n_out) * (sr / tgt), np.arange(len(x)), x).astype(np.float32)

    return "numpy", _np


def trim_silence(x: np.ndarray, sr: int, top_db: float = 40.0, margin_s: float = 0.05) -> np.ndarray:
    """Cut leading/trailing silence (espeak pads both ends) but keep a small natural margin."""
    frame = max(1, int(0.01 * sr))
    n = len(x) // frame
    if n == 0:
        return x
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    voiced = np.nonzero(rms > rms.max() * 10 ** (-top_db / 20))[0]
    if len(voiced) == 0:
        return x
    margin = int(margin_s * sr)
    return x[max(0, voiced[0] * frame - margin) : min(len(x), (voiced[-1] + 1) * frame + margin)]


@dataclass
class Utterance:
    split: str
    index: int
    text: str  # manifest transcript
    spoken: str  # what espeak reads (test_long: "Sentence one. Sentence two."; see ``spoken_sentences``)
    voice: str
    rate: int
    pitch: int
    snr_db: float
    noise_seed: int
    audio_filepath: str = ""
    duration: float = 0.0


def synthesize(utt: Utterance, wav_path: Path, espeak: str = "espeak-ng") -> float:
    """espeak-ng -> trim -> 16 kHz -> white noise at ``snr_db`` -> 16-bit WAV. Returns seconds.

    Trimming happens before resampling and output length is ceil(n*16000/sr) for every backend,
    so durations do not depend on which resampler is installed.
    """
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw.wav")
        cmd = [espeak, "-v", utt.voice, "-s", str(utt.rate), "-p", str(utt.pitch), "-w", raw, utt.spoken]
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if proc.returncode != 0 or not os.path.exists(raw):
            raise RuntimeError(f"espeak-ng failed for {utt.voice!r}: {proc.stderr.strip()}")
        with wave.open(raw, "rb") as w:
            sr, ch = w.getframerate(), w.getnchannels()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    x = pcm.astype(np.float32).reshape(-1, ch).mean(axis=1) / 32768.0
    x = trim_silence(x, sr)
    if sr != SAMPLE_RATE:
        x = get_resampler()[1](np.ascontiguousarray(x, dtype=np.float32), sr, SAMPLE_RATE)
    power = float(np.mean(x.astype(np.float64) ** 2)) if len(x) else 0.0
    noise = np.random.default_rng(utt.noise_seed).standard_normal(len(x))
    y = np.clip(x + noise * math.sqrt(power / 10 ** (utt.snr_db / 10)), -1.0, 1.0)
    wav_path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(wav_path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(np.round(y * 32767).astype("<i2").tobytes())
    return len(y) / SAMPLE_RATE
