"""Torch-free audio front end: NeMo's log-mel features at inference, a resampler and the audio reader.

B: batch size, S: audio samples, F: mel features, K: FFT bins (n_fft // 2 + 1), T: feature frames.

``LogMel`` reproduces ``FilterbankFeatures.forward`` in eval mode (pre-emphasis, centred STFT with zero padding,
power spectrum, mel filterbank, log, per-utterance normalization, masking and ``pad_to``) from the settings and
buffers ``feature_export.feature_spec`` takes from the model, so the encoder sees what it saw in PyTorch. Everything
after the float32 samples is computed in float64: the difference to NeMo is then its own float32 rounding (no FFT
library reproduces another's float32 rounding), measured in tests/onnx/test_features.py.
``resample`` stands in for librosa's soxr resampling used by NeMo's ``AudioSegment``. Imports numpy and soundfile only.
"""

from __future__ import annotations

import math
import os

import numpy as np
import soundfile

__all__ = ["LogMel", "resample", "read_audio"]

_FRAME_BLOCK = 4096  # frames per STFT block: bounds memory on long audio (4096 x n_fft float64 = 16 MiB at 512)
_NORMALIZE_TYPES = (None, "per_feature", "all_features")
_STD_GUARD = 1e-5  # NeMo's CONSTANT, added to every standard deviation before dividing


class LogMel:
    """``logmel(signals)``: a list of 1-D float32 signals at the model's rate -> features (B, F, T), lengths (B,).

    The batch comes out exactly as NeMo's preprocessor gives it for the zero-padded batch with per-row lengths.
    Rows are independent there (pre-emphasis masks each row past its length and the centred STFT pads with zeros),
    so each row is computed alone and placed into a (B, F, T) array filled with ``pad_value``.
    """

    def __init__(self, settings: dict, arrays: dict[str, np.ndarray]):
        if settings.get("frame_splicing", 1) != 1 or settings.get("exact_pad", False):
            raise ValueError("features.frame_splicing != 1 and features.exact_pad are not supported by LogMel")
        if settings["normalize"] not in _NORMALIZE_TYPES:
            raise ValueError(f"features.normalize={settings['normalize']!r}: expected one of {_NORMALIZE_TYPES}")
        if settings["log_zero_guard_type"] not in ("add", "clamp"):
            raise ValueError(f"features.log_zero_guard_type={settings['log_zero_guard_type']!r}: expected add or clamp")
        self.settings = dict(settings)
        self.n_fft, self.hop_length = int(settings["n_fft"]), int(settings["hop_length"])
        window = np.asarray(arrays["window"], dtype=np.float64).reshape(-1)
        if window.size != settings["win_length"] or window.size > self.n_fft:
            raise ValueError(f"features window has {window.size} samples, settings say {settings['win_length']}")
        left = (self.n_fft - window.size) // 2  # torch.stft centres a shorter window inside n_fft
        self.window = np.pad(window, (left, self.n_fft - window.size - left))
        self.filterbank = np.asarray(arrays["filterbank"], dtype=np.float64).reshape(-1, self.n_fft // 2 + 1)  # (F, K)

    @property
    def features(self) -> int:
        return self.filterbank.shape[0]

    def lengths(self, num_samples: np.ndarray) -> np.ndarray:
        """Valid frames per row (``get_seq_len``): one fewer than the centred STFT gives; 0 for empty audio."""
        num_samples = np.asarray(num_samples, dtype=np.int64)
        frames = (num_samples + self.n_fft // 2 * 2 - self.n_fft) // self.hop_length
        return np.where(num_samples == 0, 0, frames)

    def __call__(self, signals: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """signals: B arrays (S_b,) -> features (B, F, T) float32 and lengths (B,) int64."""
        shapes = [np.shape(s) for s in signals]
        if any(len(shape) != 1 for shape in shapes):
            raise ValueError(f"LogMel takes 1-D signals (mono, at the model's rate); got shapes {shapes}")
        num_samples = np.array([shape[0] for shape in shapes], dtype=np.int64)
        lengths = self.lengths(num_samples)
        max_samples = max(int(num_samples.max(initial=0)), 1)  # an all-empty batch is padded to one sample
        frames = 1 + (max_samples + self.n_fft // 2 * 2 - self.n_fft) // self.hop_length
        if self.settings["pad_to"] > 0:
            frames = -(-frames // self.settings["pad_to"]) * self.settings["pad_to"]
        out = np.full((len(signals), self.features, frames), self.settings["pad_value"], dtype=np.float32)
        for row, (signal, length) in enumerate(zip(signals, lengths, strict=True)):
            samples = np.asarray(signal, dtype=np.float32).astype(np.float64)  # NeMo's input is float32
            out[row, :, :length] = self._row(samples, int(length))
        return out, lengths

    def _row(self, signal: np.ndarray, length: int) -> np.ndarray:
        """(S,) float64 -> normalized features (F, length) float32 of one utterance."""
        if length == 0:
            return np.zeros((self.features, 0), dtype=np.float32)
        preemph = self.settings["preemph"]
        if preemph is not None:
            signal = np.concatenate([signal[:1], signal[1:] - preemph * signal[:-1]])
        half = self.n_fft // 2
        needed = (length - 1) * self.hop_length + self.n_fft
        padded = np.zeros(max(needed, signal.size + 2 * half))
        padded[half : half + signal.size] = signal
        windows = np.lib.stride_tricks.sliding_window_view(padded, self.n_fft)[:: self.hop_length][:length]
        mel = np.empty((self.features, length))
        for start in range(0, length, _FRAME_BLOCK):
            spectrum = np.fft.rfft(windows[start : start + _FRAME_BLOCK] * self.window, axis=-1)  # (frames, K)
            power = spectrum.real**2 + spectrum.imag**2
            if self.settings["mag_power"] != 2.0:
                power = np.sqrt(power) ** self.settings["mag_power"]
            mel[:, start : start + _FRAME_BLOCK] = self.filterbank @ power.T
        if self.settings["log"]:
            guard = float(self.settings["log_zero_guard_value"])
            mel = np.log(mel + guard if self.settings["log_zero_guard_type"] == "add" else np.maximum(mel, guard))
        return _normalize(mel, self.settings["normalize"]).astype(np.float32)


def _normalize(mel: np.ndarray, normalize: str | None) -> np.ndarray:
    """(F, T) -> (F, T) as ``normalize_batch``: unbiased std, NaN std (one frame) as 0, plus 1e-5."""
    if normalize is None:
        return mel
    if normalize == "per_feature":
        mean = mel.mean(axis=1, keepdims=True)
        std = np.sqrt(((mel - mean) ** 2).sum(axis=1, keepdims=True) / (mel.shape[1] - 1)) if mel.shape[1] > 1 else 0.0
        return (mel - mean) / (std + _STD_GUARD)
    with np.errstate(invalid="ignore", divide="ignore"):  # one frame: NeMo's torch.std is NaN and so is the row
        return (mel - mel.mean()) / (mel.std(ddof=1) + _STD_GUARD)


def resample(samples: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """(S,) at ``orig_sr`` -> (ceil(S * target_sr / orig_sr),) float32 at ``target_sr``, by a Kaiser-windowed sinc.

    Band-limited to 95% of the lower Nyquist frequency with 32 zero crossings each side (stopband ~ -80 dB), close to
    librosa's default soxr 'HQ' that NeMo's ``AudioSegment`` uses; the output length is librosa's (float ratio).
    """
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    if orig_sr == target_sr:
        return x.astype(np.float32)
    gcd = math.gcd(int(orig_sr), int(target_sr))
    up, down = int(target_sr) // gcd, int(orig_sr) // gcd
    n_out = int(np.ceil(x.size * (float(target_sr) / orig_sr)))
    cutoff = 0.9575 * min(1.0, up / down)  # of the input Nyquist frequency
    half_width = math.ceil(80 / cutoff)  # input samples each side of the output instant
    offsets = np.arange(-half_width + 1, half_width + 1)  # input index - floor(output instant)
    tau = np.arange(up)[:, None] / up - offsets[None, :]  # (phases, taps): output instant - input index
    taps = cutoff * np.sinc(cutoff * tau) * np.i0(11.0 * np.sqrt(np.clip(1 - (tau / half_width) ** 2, 0, None)))
    taps /= np.i0(11.0)
    padded = np.concatenate([np.zeros(half_width), x, np.zeros(max(0, half_width + n_out * down // up + 2 - x.size))])
    windows = np.lib.stride_tricks.sliding_window_view(padded, offsets.size)  # row j + 1 starts at x[j - K + 1]
    out = np.empty(n_out, dtype=np.float64)
    block = max(1, 2**20 // offsets.size)
    for first in range(min(up, n_out)):  # outputs first, first + up, ... share a phase; their inputs step by down
        phase, base = (first * down) % up, (first * down) // up
        count = len(range(first, n_out, up))
        for start in range(0, count, block):
            rows = windows[base + 1 + start * down :: down][: min(block, count - start)]
            out[first + start * up :: up][: rows.shape[0]] = rows @ taps[phase]
    return out.astype(np.float32)


def read_audio(path: str, sample_rate: int) -> np.ndarray:
    """An audio file -> (S,) float32 at ``sample_rate``: channels averaged, then resampled, as NeMo's loader does."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        samples, rate = soundfile.read(path, dtype="float32", always_2d=True)  # (S, channels)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as err:
        raise ValueError(f"cannot read audio file {path}: {err}") from err
    return resample(samples.mean(axis=1), rate, sample_rate)
