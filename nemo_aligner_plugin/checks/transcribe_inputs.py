"""Checks on ``transcribe()`` inputs, run before NeMo reads anything: each names the file (or array) at fault.

Without them a missing or corrupt file fails inside a loader with no file name, a 10-minute file asks for one
multi-GB attention tensor, NaN/inf samples come back as a row of unknown tokens, and narrowband audio is
transcribed to an unrelated sentence without a word.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from nemo.utils import logging

from nemo_aligner_plugin.checks.audio import (
    MAX_SAMPLE_MAGNITUDE,
    audio_problem,
    lhotse_unreadable,
    resolve_audio_path,
    scan_samples,
)
from nemo_aligner_plugin.checks.manifest import listing, validate_manifest
from nemo_aligner_plugin.frames import encoder_frame_seconds

__all__ = [
    "AudioInputError",
    "AudioTooLongError",
    "NonFiniteAudioError",
    "check_audio_files",
    "check_finite_samples",
    "check_transcribe_duration",
    "check_transcribe_inputs",
    "transcribe_limit_seconds",
    "warn_low_sample_rate",
]

DEFAULT_LIMIT_SECONDS = 40.0  # one-pass limit when the config gives neither max_transcribe_seconds nor max_duration
CHECKS_CLI = "python -m nemo_aligner_plugin.checks <manifest> --audio"


class AudioInputError(ValueError):
    """``transcribe()`` inputs that cannot be read; the message names every such file."""


class NonFiniteAudioError(AudioInputError):
    """``transcribe()`` inputs with NaN/inf samples; the message names every such file and how many."""


class AudioTooLongError(ValueError):
    """``transcribe()`` inputs longer than the model can decode in one pass."""


def _raise_unreadable(bad: Sequence[str], total: int, hint: str = "") -> None:
    if bad:
        raise AudioInputError(
            f"transcribe(): {len(bad)} of {total} audio inputs cannot be read:\n"
            + listing(bad, len(bad), f"Fix or drop them ({CHECKS_CLI}{hint}).")
        )


def _infos(paths: Sequence[str]) -> list[Optional[Any]]:
    """soundfile info per path (None: a format libsndfile cannot read); ``AudioInputError`` for broken files."""
    infos, bad = [], []
    for path in paths:
        info, problem = audio_problem(path)
        if problem:
            bad.append(problem)
        infos.append(info)
    _raise_unreadable(bad, len(paths))
    return infos


def check_audio_files(paths: Sequence[str]) -> list[Optional[float]]:
    """Durations (s) of audio files; ``AudioInputError`` names every missing, empty or unreadable one."""
    return [info.duration if info is not None else None for info in _infos(paths)]


def check_finite_samples(paths: Sequence[str], arrays: Sequence[Any] = ()) -> None:
    """``NonFiniteAudioError`` naming every file (or array) with NaN/inf samples, and how many;
    ``AudioInputError`` for files whose header reads but whose samples do not (cut short, corrupt).

    An error, not a repair: NaN/inf samples mean a broken export or decoder upstream, and what the audio should
    be there is unknown; zeroing them would return a plausible transcript of a damaged signal without a word.
    Training refuses such files too. Whoever knows the audio can repair it and pass the array.
    """
    bad, unreadable = [], []
    for path in paths:
        if audio_problem(path)[0] is None:  # a format libsndfile cannot read: NeMo's loader decides
            continue
        scan = scan_samples(path)
        if scan.error:
            unreadable.append(scan.error)
        elif scan.nonfinite:
            bad.append(f"{path}: {scan.nonfinite} NaN/inf samples")
        elif scan.overflowing:
            bad.append(f"{path}: samples up to {scan.peak:.3g}, which overflow the features to inf (corrupt data)")
    _raise_unreadable(unreadable, len(paths) + len(arrays), " --samples")
    for i, array in enumerate(arrays):
        values = torch.as_tensor(array)
        finite = torch.isfinite(values) if values.is_floating_point() else torch.ones_like(values, dtype=torch.bool)
        nonfinite = int(values.numel() - finite.sum())
        peak = float(values[finite].abs().max()) if finite.any() else 0.0
        if nonfinite:
            bad.append(f"array {i} ({values.shape[-1]} samples): {nonfinite} NaN/inf samples")
        elif peak > MAX_SAMPLE_MAGNITUDE:
            bad.append(f"array {i} ({values.shape[-1]} samples): samples up to {peak:.3g}, which overflow to inf")
    if bad:
        raise NonFiniteAudioError(
            f"transcribe(): {len(bad)} of {len(paths) + len(arrays)} audio inputs have NaN/inf samples, which "
            "make the features NaN and the transcript a row of unknown tokens:\n"
            + listing(
                bad,
                len(bad),
                f"Re-export them ({CHECKS_CLI} --samples finds every such file), or repair the samples yourself "
                "(e.g. numpy.nan_to_num) and pass the arrays.",
            )
        )


def warn_low_sample_rate(paths: Sequence[str], model_rate: int) -> list[str]:
    """Warn once per call, naming each file recorded below ``model_rate``; returns the files' lines."""
    low = []
    for path in paths:
        info = audio_problem(path)[0]
        if info is not None and info.samplerate < model_rate:
            low.append(f"{path}: {info.samplerate} Hz, nothing above {info.samplerate // 2} Hz")
    if low:
        logging.warning(
            f"transcribe(): {len(low)} audio input(s) below the model's {model_rate} Hz:\n"
            + listing(
                low,
                len(low),
                f"They are resampled to {model_rate} Hz, but the band the model learned from above half their "
                "rate is empty: expect more errors, and at 4 kHz or below an unrelated transcript. Use audio "
                "recorded at the model's rate, or fine-tune on narrowband audio.",
            )
        )
    return low


def transcribe_limit_seconds(model: Any) -> float:
    """Longest audio ``transcribe()`` takes in one pass: ``cfg.max_transcribe_seconds``, or twice the training
    ``max_duration`` (the paper trains on utterances concatenated to ~2x length), or 40 s."""
    cfg = model.cfg
    if cfg.get("max_transcribe_seconds"):
        return float(cfg.max_transcribe_seconds)
    train_max = (cfg.get("train_ds") or {}).get("max_duration")
    return 2.0 * float(train_max) if train_max else DEFAULT_LIMIT_SECONDS


def _attention_bytes(model: Any, seconds: float) -> float:
    """Bytes of one (heads x T x T) float32 attention score tensor for ``seconds`` of audio."""
    cfg = model.cfg
    frames = seconds / encoder_frame_seconds(cfg)
    return 4.0 * int(cfg.encoder.get("n_heads", 8)) * frames * frames


def _size(num_bytes: float) -> str:
    return f"{num_bytes / 2**30:.1f} GiB" if num_bytes >= 0.1 * 2**30 else f"{num_bytes / 2**20:.0f} MiB"


def _longform_hint(model: Any, limit: float) -> str:
    """How to transcribe long audio, in Python and on the command line; or why long-form, though enabled, was
    not taken for this call."""
    enabled = (model.cfg.get("longform") or {}).get("enabled", False)
    if enabled not in (False, None, "false", "False"):
        return (
            f"Long-form is enabled (longform.enabled={enabled}), but this call takes the one-pass path: "
            "timestamps=True, channel_selector, augmentor, override_config and manifest or DataLoader inputs do "
            f"not go through long-form. Drop those options, pass the files as a list, or cut the audio into "
            f"segments of at most {limit:.0f} s."
        )
    return (
        "Transcribe it with long-form decoding (docs/longform.md), which chunks it:\n"
        '  Python: model.cfg.longform.enabled = True   (or "auto": only audio longer than the training '
        "utterances is chunked)\n"
        "  CLI:    python recipes/transcribe_aligner.py model_path=... dataset_manifest=... longform.enabled=true\n"
        f"or cut the audio into segments of at most {limit:.0f} s. To raise the limit, set "
        "model.cfg.max_transcribe_seconds."
    )


def check_transcribe_duration(
    model: Any, durations: Sequence[Optional[float]], limit: Optional[float] = None, names: Optional[Sequence] = None
) -> None:
    """``AudioTooLongError`` when any input is longer than ``limit`` seconds (``transcribe_limit_seconds``).

    An aligner emits at most one token per encoder frame and aligns up to about its training length; past it
    the transcript is cut short, and full-context attention memory grows with the square of the length.
    """
    limit = transcribe_limit_seconds(model) if limit is None else limit
    names = names if names is not None else [f"input {i}" for i in range(len(durations))]
    too_long = [
        f"{name}: {seconds:.1f} s (one attention score tensor: {_size(_attention_bytes(model, seconds))})"
        for name, seconds in zip(names, durations, strict=True)
        if seconds is not None and seconds > limit
    ]
    if too_long:
        raise AudioTooLongError(
            f"transcribe(): {len(too_long)} of {len(durations)} inputs are longer than {limit:.0f} s, the most "
            "this model decodes in one pass:\n"
            + listing(
                too_long,
                len(too_long),
                "An Aligner-Encoder aligns up to about its training length: longer audio gets a truncated "
                "transcript or runs out of memory. " + _longform_hint(model, limit),
            )
        )


def _manifest_audio(manifest: str) -> list[str]:
    """The audio paths of a manifest already validated (every line a JSON object with ``audio_filepath``)."""
    with open(manifest, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [resolve_audio_path(row["audio_filepath"], Path(manifest)) for row in rows]


def check_transcribe_inputs(model: Any, audio: Any, check_duration: bool = True, use_lhotse: bool = False) -> None:
    """Checks for ``transcribe(audio)`` before NeMo reads anything. File paths: missing, empty, unreadable,
    NaN/inf samples, with ``use_lhotse`` files Lhotse cannot read (errors), below the model's sample rate (a
    warning), too long; a manifest path: its lines, then the same for its audio (length not checked); 1-D arrays:
    NaN/inf, too long. DataLoaders pass unchecked.
    """
    items = [audio] if isinstance(audio, (str, os.PathLike, np.ndarray, torch.Tensor)) else audio
    if not isinstance(items, (list, tuple)) or not items:
        return
    if len(items) == 1 and isinstance(items[0], (str, os.PathLike)) and str(items[0]).endswith((".json", ".jsonl")):
        errors = [p for p in validate_manifest(items[0], ("audio_filepath",), audio=True) if p.severity == "error"]
        if errors:
            problems = listing(errors, len(errors), "")
            raise AudioInputError(f"transcribe(): manifest {items[0]} has problems:\n{problems}")
        paths, arrays, check_duration = _manifest_audio(str(items[0])), [], False
    else:
        paths = [str(i) for i in items if isinstance(i, (str, os.PathLike))]
        arrays = [i for i in items if isinstance(i, (np.ndarray, torch.Tensor))]
    durations = check_audio_files(paths)
    if use_lhotse:
        _raise_unreadable([why for why in map(lhotse_unreadable, paths) if why], len(paths) + len(arrays))
    check_finite_samples(paths, arrays)
    warn_low_sample_rate(paths, int(model.cfg.sample_rate))
    if not check_duration:
        return
    rate = float(model.cfg.sample_rate)
    check_transcribe_duration(
        model,
        durations + [a.shape[-1] / rate for a in arrays],
        names=paths + [f"array {i} ({a.shape[-1]} samples)" for i, a in enumerate(arrays)],
    )
