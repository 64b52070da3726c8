"""Non-speech training rows: audio with no words paired with an empty target, so the model learns "EOS at frame 0".

B: batch size, S: audio samples, F: feature bins, T: feature frames.

An aligner that never saw audio without speech has no alignment to read there, and its prediction network runs on
as a language model: silence, noise or a tone comes back as an invented sentence. ``NonSpeechRows`` replaces a
share of each training batch's rows by generated non-speech (digital silence, coloured noise, tones; see
``GENERATORS``) or clips of the user's own noise/music manifest, with empty targets. Draws come from a generator
seeded by (seed, step, rank): a rerun or a resumed run sees the same rows, and every DDP rank different ones.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch

from nemo_aligner_plugin.config import NonSpeechConfig

__all__ = [
    "GENERATORS",
    "NonSpeechRows",
    "NonSpeechSource",
    "generate",
    "inference_features_for_silent_rows",
    "replace_rows",
    "silent_rows",
]


def _scaled(signal: torch.Tensor, level_dbfs: float) -> torch.Tensor:
    """``signal`` at RMS ``level_dbfs`` (dB re. full scale), clipped to [-1, 1]."""
    rms = signal.pow(2).mean().sqrt().clamp(min=1e-12)
    return (signal * (10.0 ** (level_dbfs / 20.0) / rms)).clamp(-1.0, 1.0)


def _coloured(exponent: float) -> Callable[..., torch.Tensor]:
    """Noise whose power spectral density goes as f**exponent (white 0, pink -1, brown -2, blue 1, violet 2)."""

    def make(num: int, sample_rate: int, g: torch.Generator) -> torch.Tensor:
        spectrum = torch.fft.rfft(torch.randn(num, generator=g, dtype=torch.float64))
        freqs = torch.fft.rfftfreq(num, d=1.0 / sample_rate, dtype=torch.float64)
        gain = torch.zeros_like(freqs)
        gain[1:] = freqs[1:].pow(exponent / 2)  # no DC: an offset is not a colour
        return torch.fft.irfft(spectrum * gain, n=num).float()

    return make


def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=g))


def _tone(num: int, sample_rate: int, g: torch.Generator) -> torch.Tensor:
    """One to three steady sines (80 Hz - 4 kHz, log-uniform): a dial tone, a beep, a test signal."""
    t = torch.arange(num, dtype=torch.float64) / sample_rate
    out = torch.zeros(num, dtype=torch.float64)
    for _ in range(int(torch.randint(1, 4, (), generator=g))):
        freq = math.exp(_uniform(g, math.log(80.0), math.log(4000.0)))
        out += torch.sin(2 * math.pi * freq * t + _uniform(g, 0, 2 * math.pi)) * _uniform(g, 0.3, 1.0)
    return out.float()


def _hum(num: int, sample_rate: int, g: torch.Generator) -> torch.Tensor:
    """Mains hum: 50 or 60 Hz and its first harmonics, falling off."""
    base = 50.0 if float(torch.rand((), generator=g)) < 0.5 else 60.0
    t = torch.arange(num, dtype=torch.float64) / sample_rate
    harmonics = int(torch.randint(3, 9, (), generator=g))
    out = sum(torch.sin(2 * math.pi * base * k * t + _uniform(g, 0, 2 * math.pi)) / k for k in range(1, harmonics + 1))
    return out.float()


def _warble(num: int, sample_rate: int, g: torch.Generator) -> torch.Tensor:
    """A tone whose pitch swings up and down (0.5-8 Hz, 3-30 %) around 200 Hz - 3 kHz: alarms, sirens, warble tones."""
    carrier = math.exp(_uniform(g, math.log(200.0), math.log(3000.0)))
    rate, depth, phase = _uniform(g, 0.5, 8.0), _uniform(g, 0.03, 0.3), _uniform(g, 0, 2 * math.pi)
    t = torch.arange(num, dtype=torch.float64) / sample_rate
    swing = carrier * depth / (2 * math.pi * rate) * (math.cos(phase) - torch.cos(2 * math.pi * rate * t + phase))
    return torch.sin(2 * math.pi * (carrier * t + swing)).float()  # phase: the integral of the swinging frequency


def _chirp(num: int, sample_rate: int, g: torch.Generator) -> torch.Tensor:
    """Repeated logarithmic sweeps (0.5-3 s each) between two frequencies in 100 Hz - 5 kHz: sirens, test sweeps."""
    period = max(1, int(_uniform(g, 0.5, 3.0) * sample_rate))
    low, high = sorted(math.exp(_uniform(g, math.log(100.0), math.log(5000.0))) for _ in range(2))
    high = max(high, low * 1.5)
    t = (torch.arange(num, dtype=torch.float64) % period) / sample_rate
    duration = period / sample_rate
    rate = math.log(high / low) / duration
    return torch.sin(2 * math.pi * low * (torch.exp(rate * t) - 1) / rate).float()


def _bursts(num: int, sample_rate: int, g: torch.Generator) -> torch.Tensor:
    """White noise switched on (50-500 ms) and off (100 ms - 1 s) at random: knocks, rustle, clicks."""
    out, pos, on = torch.zeros(num), 0, bool(torch.rand((), generator=g) < 0.5)
    while pos < num:
        span = int((_uniform(g, 0.05, 0.5) if on else _uniform(g, 0.1, 1.0)) * sample_rate)
        span = max(1, span)
        if on:
            out[pos : pos + span] = torch.randn(min(span, num - pos), generator=g)
        pos, on = pos + span, not on
    return out


# kind -> (samples, sample rate, generator) -> signal of any scale; ``generate`` sets the level.
GENERATORS: dict[str, Callable[..., torch.Tensor]] = {
    "white": _coloured(0.0),
    "pink": _coloured(-1.0),
    "brown": _coloured(-2.0),
    "blue": _coloured(1.0),
    "violet": _coloured(2.0),
    "tone": _tone,
    "hum": _hum,
    "warble": _warble,
    "chirp": _chirp,
    "bursts": _bursts,
}
KINDS = ("silence", *GENERATORS)


def generate(kind: str, num_samples: int, level_dbfs: float, sample_rate: int, g: torch.Generator) -> torch.Tensor:
    """(num_samples,) float32 non-speech of ``kind`` at RMS ``level_dbfs``; ``silence`` is digital zeros."""
    if kind == "silence" or num_samples == 0:
        return torch.zeros(num_samples)
    if kind not in GENERATORS:
        raise ValueError(f"non-speech kind {kind!r}: expected one of {list(KINDS)}")
    return _scaled(GENERATORS[kind](num_samples, sample_rate, g), level_dbfs)


class NonSpeechSource:
    """Draws one non-speech signal: a generated kind, or a random stretch of a file of the user's manifest."""

    def __init__(self, cfg: NonSpeechConfig, sample_rate: int, cache_files: int = 64):
        self.cfg, self.sample_rate = cfg, sample_rate
        self.files: list[str] = []
        if cfg.manifest_filepath:
            from nemo_aligner_plugin.manifests import read_manifest

            path = Path(cfg.manifest_filepath)
            if not path.is_file():
                raise FileNotFoundError(f"model.nonspeech.manifest_filepath={cfg.manifest_filepath}: no such file")
            # relative paths are read against the manifest's folder, as NeMo's loaders read them
            self.files = [str(path.parent / e["audio_filepath"]) for e in read_manifest(path)]
            if not self.files:
                raise ValueError(f"model.nonspeech.manifest_filepath={cfg.manifest_filepath}: the manifest is empty")
            missing = [f for f in self.files if not Path(f).is_file()]
            if missing:  # found now, not hours into training at the first draw
                raise FileNotFoundError(
                    f"model.nonspeech.manifest_filepath={cfg.manifest_filepath}: {len(missing)} of {len(self.files)} "
                    f"audio files do not exist, e.g. {missing[:3]}"
                )
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._cache_files = cache_files

    def _file_audio(self, path: str) -> torch.Tensor:
        if path not in self._cache:
            from nemo_aligner_plugin.audio import load_audio

            try:
                self._cache[path] = load_audio(path, self.sample_rate).float()
            except Exception as err:
                raise ValueError(f"model.nonspeech.manifest_filepath: cannot read {path}: {err}") from err
            if len(self._cache) > self._cache_files:
                self._cache.popitem(last=False)
        self._cache.move_to_end(path)
        return self._cache[path]

    def draw(self, num_samples: int, g: torch.Generator) -> torch.Tensor:
        """(<= num_samples,) samples; a manifest file shorter than that gives all it has."""
        if self.files and float(torch.rand((), generator=g)) < self.cfg.manifest_prob:
            audio = self._file_audio(self.files[int(torch.randint(len(self.files), (), generator=g))])
            start = int(torch.randint(max(1, audio.numel() - num_samples + 1), (), generator=g))
            return audio[start : start + num_samples]
        kinds = list(self.cfg.kinds)
        kind = kinds[int(torch.randint(len(kinds), (), generator=g))]
        low, high = self.cfg.level_dbfs
        return generate(kind, num_samples, _uniform(g, low, high), self.sample_rate, g)


def replace_rows(
    audio: torch.Tensor,
    audio_lens: torch.Tensor,
    tokens: torch.Tensor,
    token_lens: torch.Tensor,
    rows: list[int],
    signals: list[torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows ``rows`` of the batch become ``signals`` with empty targets; (B, S) grows if a signal is longer."""
    width = max([audio.size(1), *(s.numel() for s in signals)])
    audio = torch.nn.functional.pad(audio, (0, width - audio.size(1))) if width > audio.size(1) else audio.clone()
    audio_lens, tokens, token_lens = audio_lens.clone(), tokens.clone(), token_lens.clone()
    for row, signal in zip(rows, signals, strict=True):
        audio[row] = 0
        audio[row, : signal.numel()] = signal.to(audio)
        audio_lens[row] = signal.numel()
        tokens[row] = 0
        token_lens[row] = 0
    return audio, audio_lens, tokens, token_lens


class NonSpeechRows:
    """``model.nonspeech``: a share ``fraction`` of each training batch's rows replaced by non-speech, empty target.

    The count per batch is ``fraction * B`` rounded up or down at random (its mean is exact for any batch size).
    """

    def __init__(self, cfg: NonSpeechConfig, sample_rate: int):
        self.cfg, self.sample_rate = cfg, sample_rate
        self.source: NonSpeechSource | None = None  # built for training only: inference needs no noise manifest
        self.min_samples = int(cfg.min_seconds * sample_rate)
        self.max_samples = None if cfg.max_seconds is None else int(cfg.max_seconds * sample_rate)

    def prepare(self) -> None:
        """Read (and check) the non-speech manifest, if any; the model calls it when training starts."""
        if self.source is None and self.cfg.fraction > 0:
            self.source = NonSpeechSource(self.cfg, self.sample_rate)

    def generator(self, step: int, rank: int) -> torch.Generator:
        """The draws of one (step, rank): independent of anything else that draws random numbers."""
        return torch.Generator().manual_seed((self.cfg.seed * 1_000_003 + step * 7_919 + rank * 104_729) % 2**63)

    def __call__(
        self,
        audio: torch.Tensor,
        audio_lens: torch.Tensor,
        tokens: torch.Tensor,
        token_lens: torch.Tensor,
        step: int,
        rank: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, S), (B,), (B, U), (B,) -> the same batch with some rows non-speech (B unchanged)."""
        if self.cfg.fraction == 0 or step < self.cfg.start_step:
            return audio, audio_lens, tokens, token_lens
        self.prepare()
        g = self.generator(step, rank)
        batch = audio.size(0)
        expected = self.cfg.fraction * batch  # rounded up or down at random: its mean is exact
        count = min(math.floor(expected) + int(float(torch.rand((), generator=g)) < expected % 1), batch)
        if count == 0:
            return audio, audio_lens, tokens, token_lens
        rows = sorted(torch.randperm(batch, generator=g)[:count].tolist())
        longest = self.max_samples if self.max_samples is not None else int(audio_lens.max())
        low = min(self.min_samples, longest)
        signals = [self.source.draw(int(torch.randint(low, longest + 1, (), generator=g)), g) for _ in rows]
        return replace_rows(audio, audio_lens, tokens, token_lens, rows, signals)


def silent_rows(signal: torch.Tensor, signal_len: torch.Tensor) -> torch.Tensor:
    """(B,) bool: rows of (B, S) audio whose samples are all zero (and not empty). Ask before the preprocessor:
    NeMo's dither is added to the input tensor in place."""
    if signal.numel() == 0:
        return torch.zeros_like(signal_len, dtype=torch.bool)
    return (signal.abs().amax(dim=1) == 0) & (signal_len > 0)


def inference_features_for_silent_rows(
    preprocessor: torch.nn.Module, silent: torch.Tensor, signal_len: torch.Tensor, features: torch.Tensor
) -> torch.Tensor:
    """Training-mode features (B, F, T) with each ``silent`` row (see ``silent_rows``) replaced by the features
    inference gives digital silence of its length.

    NeMo dithers only in training: there, digital silence becomes normalized dither noise, while at inference it
    becomes constant features. A model that learns "silence -> EOS" on the first must also have seen the second.
    """
    if not preprocessor.training or not bool(silent.any()):
        return features
    from nemo_aligner_plugin.eval_mode import eval_mode

    lengths = signal_len[silent]
    with eval_mode(preprocessor):
        zeros = torch.zeros(lengths.numel(), int(lengths.max()), device=features.device)
        quiet, _ = preprocessor(input_signal=zeros, length=lengths)
    features = features.clone()
    features[silent] = 0.0
    width = min(quiet.size(2), features.size(2))
    features[silent, :, :width] = quiet[..., :width].to(features)
    return features
