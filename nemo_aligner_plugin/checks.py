"""Input and run-time checks for large, messy corpora: clear errors that name the file, line and field.

Manifests and audio
- ``validate_manifest(path)``: every problem of a NeMo manifest as ``file:line: message``. Also a CLI:
  ``python -m nemo_aligner_plugin.checks train.json [--audio] [--samples] [--tokenizer DIR]`` (exit 1 on errors).
- ``check_dataset_manifests(model_cfg)``: the same for the ``*_ds`` manifests before training starts.
- ``check_transcribe_inputs(model, audio)``: missing/empty/unreadable files and too-long audio, before NeMo
  reads anything (``check_audio_files``, ``check_transcribe_duration``).
- ``mono_audio_config`` / ``downmix_lhotse_dataset``: multi-channel audio reaches the model as mono (B, T).

Training and checkpoints
- ``NonFiniteGuard``: drops an optimizer step whose loss or gradients are NaN/inf on any rank, and counts it.
- ``check_training_config(cfg)``: trainer/data settings that otherwise fail deep in torch, Lightning or NeMo.
- ``atomic_output(path)``: a ``.nemo`` is written to a temporary name and moved into place, so a kill or a full
  disk never leaves a half-written file behind; ``check_nemo_archive(path)`` names what is wrong with one.
- ``plugin_version_stamp(saved)``: the plugin version recorded in a model config, with a warning on a mismatch.
"""

from __future__ import annotations

import argparse
import errno
import glob
import gzip
import json
import math
import os
import sys
import tarfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import soundfile
import torch
from nemo.utils import logging
from omegaconf import DictConfig, open_dict

from nemo_aligner_plugin.ratelimit import RateLimitedWarning

__all__ = [
    "REQUIRED_FIELDS",
    "AudioInputError",
    "AudioTooLongError",
    "ManifestError",
    "ManifestReport",
    "NonFiniteGuard",
    "Problem",
    "atomic_output",
    "check_audio_files",
    "check_dataset_manifests",
    "check_nemo_archive",
    "check_training_config",
    "check_transcribe_duration",
    "check_transcribe_inputs",
    "downmix_lhotse_dataset",
    "inspect_manifest",
    "mono_audio_config",
    "plugin_version_stamp",
    "validate_manifest",
]

REQUIRED_FIELDS = ("audio_filepath", "duration", "text")
# Extensions libsndfile reads (what the checks can open); other formats are reported as not checked.
LIBSNDFILE_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".caf", ".w64"}
DURATION_TOLERANCE_S = 0.05  # manifest vs file duration: more than this (and 1 %) is reported
MAX_LISTED = 10  # problems quoted in an exception or log message


class ManifestError(ValueError):
    """A manifest has problems; the message lists them as ``file:line: message``."""


class AudioInputError(ValueError):
    """``transcribe()`` inputs that cannot be read; the message names every such file."""


class AudioTooLongError(ValueError):
    """``transcribe()`` inputs longer than the model can decode in one pass."""


@dataclass(frozen=True)
class Problem:
    path: str  # the manifest
    line: Optional[int]  # 1-based manifest line; None for the whole file
    message: str
    severity: str = "error"  # "error": the data cannot be used as is; "warning": it can, but check it

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {'warning: ' if self.severity == 'warning' else ''}{self.message}"


@dataclass
class ManifestReport:
    path: str
    lines: int = 0  # utterance lines read
    seconds: float = 0.0  # sum of the valid `duration` fields
    empty_texts: int = 0  # empty transcripts (valid: the target is just EOS)
    unknown_char_lines: int = 0  # lines with characters the tokenizer maps to <unk>
    problems: list[Problem] = field(default_factory=list)  # up to max_problems of them
    num_errors: int = 0  # all errors, including those past max_problems
    num_warnings: int = 0


def _listing(problems: Sequence[Any], total: int, hint: str) -> str:
    shown = "\n".join(f"  {p}" for p in problems[:MAX_LISTED])
    more = f"\n  ... and {total - MAX_LISTED} more" if total > MAX_LISTED else ""
    return f"{shown}{more}\n{hint}"


# ---------------------------------------------------------------------------------------------- audio files
def resolve_audio_path(audio_filepath: str, manifest: Path) -> str:
    """As NeMo does: a relative path is taken relative to the manifest's folder when the file is there."""
    if os.path.isabs(audio_filepath):
        return audio_filepath
    beside = manifest.parent / audio_filepath
    return str(beside) if beside.exists() else audio_filepath


def audio_problem(path: str) -> tuple[Optional[Any], Optional[str]]:
    """(soundfile info, None) for a readable file, (None, why not) otherwise; (None, None) if not checkable."""
    if not os.path.exists(path):
        return None, f"audio file not found: {path}"
    if os.path.isdir(path):
        return None, f"audio path is a directory: {path}"
    if os.path.getsize(path) == 0:
        return None, f"audio file is empty (0 bytes): {path}"
    try:
        info = soundfile.info(path)
    except Exception as err:  # libsndfile's message says what is wrong with the header
        if Path(path).suffix.lower() not in LIBSNDFILE_EXTENSIONS:
            return None, None
        return None, f"cannot read audio file {path}: {err} (corrupt or truncated header?)"
    return info, None


def _sample_problems(path: str) -> list[tuple[str, str]]:
    """Read the samples: NaN/inf (make the loss NaN) and all-zero audio. [(severity, message)]"""
    finite, peak = True, 0.0
    for block in soundfile.blocks(path, blocksize=1 << 20, dtype="float32", always_2d=True):
        finite = finite and bool(np.isfinite(block).all())
        peak = max(peak, float(np.nanmax(np.abs(block), initial=0.0)))
    out = []
    if not finite:
        out.append(("error", f"NaN/inf samples in {path}: they turn the loss into NaN; re-export the file"))
    if peak == 0.0:
        out.append(("warning", f"all samples are zero (silence): {path}"))
    return out


def _audio_line_problems(entry: dict, path: str, sample_rate: Optional[int], samples: bool) -> list[tuple[str, str]]:
    info, problem = audio_problem(path)
    if problem:
        return [("error", problem)]
    if info is None:
        return [("warning", f"not checked: libsndfile cannot read {Path(path).suffix} files ({path})")]
    if info.frames == 0:  # readable: transcribes to "", and training drops it (min_duration)
        return [("warning", f"audio file has no samples: {path}")]
    out = []
    duration, offset = entry.get("duration"), entry.get("offset") or 0.0
    if _is_number(duration) and _is_number(offset):
        tolerance = max(DURATION_TOLERANCE_S, 0.01 * info.duration)
        if offset + duration > info.duration + tolerance or (not offset and duration < info.duration - tolerance):
            span = f"offset {offset:.2f} s + duration {duration:.2f} s" if offset else f"duration {duration:.2f} s"
            out.append(
                (
                    "error",
                    f"{span} but {path} holds {info.duration:.2f} s: NeMo's legacy loader reads `duration` "
                    "seconds, Lhotse the whole file; fix the duration",
                )
            )
    if sample_rate and info.samplerate != sample_rate:
        lost = f"; it has nothing above {info.samplerate // 2} Hz" if info.samplerate < sample_rate else ""
        out.append(("warning", f"{info.samplerate} Hz audio, resampled to {sample_rate} Hz when loaded{lost}"))
    if info.channels > 1:
        out.append(("warning", f"{info.channels} channels: averaged to mono when loaded (channel_selector picks one)"))
    if samples:
        out.extend(_sample_problems(path))
    return out


# ---------------------------------------------------------------------------------------------- manifests
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _UnknownChars:
    """Characters a tokenizer maps to <unk>, found one character at a time and cached."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.unk_id = getattr(tokenizer, "unk_id", None)
        self.known: dict[str, bool] = {}

    def __call__(self, text: str) -> list[str]:
        if self.unk_id is None or self.unk_id < 0:
            return []
        unknown = []
        for ch in set(text) - set(self.known):
            self.known[ch] = ch.isspace() or self.unk_id not in self.tokenizer.text_to_ids(ch)
        for ch in sorted(set(text)):
            if not self.known[ch]:
                unknown.append(ch)
        return unknown


def _line_problems(entry: Any, required: Sequence[str]) -> list[str]:
    if not isinstance(entry, dict):
        return [f"a manifest line must be a JSON object, got {type(entry).__name__}"]
    missing = [name for name in required if name not in entry]
    out = [f"missing field{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)}"] if missing else []
    audio = entry.get("audio_filepath")
    if "audio_filepath" in entry and not (isinstance(audio, str) and audio):
        out.append(f"'audio_filepath' must be a non-empty string, got {audio!r}")
    if "duration" in entry:
        duration = entry["duration"]
        if not _is_number(duration):
            out.append(f"'duration' must be a number of seconds, got {duration!r}")
        elif duration <= 0:
            out.append(f"'duration' must be > 0, got {duration}")
    if "offset" in entry and not (_is_number(entry["offset"]) and entry["offset"] >= 0):
        out.append(f"'offset' must be a number >= 0, got {entry['offset']!r}")
    if "text" in entry and not isinstance(entry["text"], str):
        out.append(f"'text' must be a string, got {entry['text']!r}")
    return out


def inspect_manifest(
    path: str | os.PathLike,
    required: Sequence[str] = REQUIRED_FIELDS,
    *,
    audio: bool = False,
    samples: bool = False,
    sample_rate: Optional[int] = None,
    tokenizer: Any = None,
    max_problems: Optional[int] = None,
) -> ManifestReport:
    """Read a NeMo JSON-lines manifest and report every problem with its line number.

    ``audio``: also open each audio file's header (missing, empty, corrupt, duration mismatch, sample rate,
    channels); ``samples``: also read the samples (NaN/inf, all-zero). ``tokenizer``: report characters it
    maps to <unk>. ``max_problems`` bounds the stored list, not the counts.
    """
    path = Path(path)
    report = ManifestReport(str(path))
    unknown_chars = _UnknownChars(tokenizer) if tokenizer is not None else None

    def add(line: Optional[int], message: str, severity: str = "error") -> None:
        if severity == "error":
            report.num_errors += 1
        else:
            report.num_warnings += 1
        if max_problems is None or len(report.problems) < max_problems:
            report.problems.append(Problem(str(path), line, message, severity))

    try:
        handle = path.open("rb")
    except OSError as err:
        add(None, f"cannot open manifest: {err.strerror}")
        return report
    with handle:
        for lineno, raw in enumerate(handle, 1):
            if not raw.strip():
                add(lineno, "empty line: NeMo's Lhotse reader fails on it (the legacy reader skips it); delete it")
                continue
            report.lines += 1
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                add(lineno, f"not UTF-8: byte 0x{raw[err.start]:02x} at column {err.start + 1}; re-encode the file")
                continue
            try:
                entry = json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as err:
                add(lineno, f"not valid JSON: {err.msg} (column {err.colno})")
                continue
            line_problems = _line_problems(entry, required)
            for message in line_problems:
                add(lineno, message)
            if not isinstance(entry, dict):
                continue
            if _is_number(entry.get("duration")):
                report.seconds += entry["duration"]
            text = entry.get("text")
            if isinstance(text, str):
                if not text.strip():
                    report.empty_texts += 1
                elif unknown_chars is not None and (unknown := unknown_chars(text)):
                    report.unknown_char_lines += 1
                    add(lineno, f"characters the tokenizer maps to <unk>: {' '.join(map(repr, unknown))}", "warning")
            if audio and isinstance(entry.get("audio_filepath"), str) and entry["audio_filepath"]:
                resolved = resolve_audio_path(entry["audio_filepath"], path)
                for severity, message in _audio_line_problems(entry, resolved, sample_rate, samples):
                    add(lineno, message, severity)
    if report.lines == 0 and report.num_errors == 0:
        add(None, "manifest has no entries")
    return report


def validate_manifest(
    path: str | os.PathLike, required: Sequence[str] = REQUIRED_FIELDS, **options: Any
) -> list[Problem]:
    """The problems of a manifest, each printing as ``file:line: message`` (see ``inspect_manifest``)."""
    return inspect_manifest(path, required, **options).problems


def _manifest_paths(manifest_filepath: Any) -> list[str]:
    """Plain manifest files of a ``*_ds`` config (lists and comma-separated strings); sharded patterns skipped."""
    if manifest_filepath is None:
        return []
    items = [manifest_filepath] if isinstance(manifest_filepath, str) else list(manifest_filepath)
    paths = []
    for item in items:
        if not isinstance(item, str):  # nested lists: NeMo's weighted/bucketed inputs
            paths.extend(_manifest_paths(item))
            continue
        for part in item.split(","):
            part = part.strip()
            if part and "_OP_" not in part and "{" not in part and "://" not in part:
                paths.append(part)
    return paths


def check_dataset_manifests(
    model_cfg: DictConfig, keys: Sequence[str] = ("train_ds", "validation_ds", "test_ds"), tokenizer: Any = None
) -> list[Problem]:
    """Validate the plain manifests of ``model_cfg.<key>`` before training; raise ``ManifestError`` on errors.

    Run it on every rank (each one raises the same error; a rank-0-only check would leave the others waiting
    at the next collective). Returns the warnings (e.g. <unk> characters) after logging a summary of them.
    """
    errors, warnings, num_errors = [], [], 0
    for key in keys:
        ds = model_cfg.get(key)
        if not ds or ds.get("is_tarred") or ds.get("validate_manifest", True) is False:
            continue
        for manifest in _manifest_paths(ds.get("manifest_filepath")):
            if not os.path.isfile(manifest):
                errors.append(Problem(manifest, None, f"model.{key}.manifest_filepath: file not found"))
                num_errors += 1
                continue
            report = inspect_manifest(manifest, tokenizer=tokenizer, max_problems=1000)
            errors.extend(p for p in report.problems if p.severity == "error")
            num_errors += report.num_errors
            unknown = [p for p in report.problems if p.severity == "warning"]
            warnings.extend(unknown)
            if report.unknown_char_lines:
                logging.warning(
                    f"{manifest}: {report.unknown_char_lines} of {report.lines} transcripts have characters the "
                    "tokenizer maps to <unk> (the model learns to emit <unk> there), e.g.\n"
                    + _listing(unknown, report.unknown_char_lines, "Normalize the text or retrain the tokenizer.")
                )
    if errors:
        raise ManifestError(
            "Manifest problems (training would fail or silently train on wrong data):\n"
            + _listing(errors, num_errors, "Full list: python -m nemo_aligner_plugin.checks <manifest> --audio")
        )
    return warnings


# ---------------------------------------------------------------------------------------------- transcribe
def check_audio_files(paths: Sequence[str]) -> list[Optional[float]]:
    """Durations (s) of audio files; ``AudioInputError`` names every missing, empty or unreadable one."""
    durations, bad = [], []
    for path in paths:
        info, problem = audio_problem(path)
        if problem:
            bad.append(problem)
        durations.append(info.duration if info is not None else None)
    if bad:
        raise AudioInputError(
            f"transcribe(): {len(bad)} of {len(paths)} audio inputs cannot be read:\n"
            + _listing(bad, len(bad), "Fix or drop them (python -m nemo_aligner_plugin.checks <manifest> --audio).")
        )
    return durations


def transcribe_limit_seconds(model: Any) -> float:
    """Longest audio ``transcribe()`` takes in one pass: ``cfg.max_transcribe_seconds``, or twice the training
    ``max_duration`` (the paper trains on utterances concatenated to ~2x length), or 40 s."""
    cfg = model.cfg
    if cfg.get("max_transcribe_seconds"):
        return float(cfg.max_transcribe_seconds)
    train_max = (cfg.get("train_ds") or {}).get("max_duration")
    return 2.0 * float(train_max) if train_max else 40.0


def _attention_bytes(model: Any, seconds: float) -> float:
    """Bytes of one (heads x T x T) float32 attention score tensor for ``seconds`` of audio."""
    cfg = model.cfg
    frame_s = float(cfg.preprocessor.get("window_stride", 0.01)) * int(cfg.encoder.get("subsampling_factor", 4))
    frames = seconds / frame_s
    return 4.0 * int(cfg.encoder.get("n_heads", 8)) * frames * frames


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
        f"{name}: {seconds:.1f} s (one attention score tensor: {_attention_bytes(model, seconds) / 2**30:.1f} GiB)"
        for name, seconds in zip(names, durations, strict=True)
        if seconds is not None and seconds > limit
    ]
    if too_long:
        raise AudioTooLongError(
            f"transcribe(): {len(too_long)} of {len(durations)} inputs are longer than {limit:.0f} s, the most "
            "this model decodes in one pass:\n"
            + _listing(
                too_long,
                len(too_long),
                "An Aligner-Encoder aligns up to about its training length: longer audio gets a truncated "
                "transcript or runs out of memory. Use long-form decoding (model.cfg.longform.enabled=true, or "
                "nemo_aligner_plugin.longform.transcribe_longform; docs/longform.md), or cut the audio into "
                f"segments of at most {limit:.0f} s. To raise the limit, set model.cfg.max_transcribe_seconds.",
            )
        )


def check_transcribe_inputs(model: Any, audio: Any, check_duration: bool = True) -> None:
    """Checks for ``transcribe(audio)`` before NeMo reads anything: file paths (missing, empty, unreadable,
    too long), a manifest path (its lines and audio), 1-D arrays (too long). DataLoaders pass unchecked."""
    items = [audio] if isinstance(audio, (str, os.PathLike, np.ndarray, torch.Tensor)) else audio
    if not isinstance(items, (list, tuple)) or not items:
        return
    if len(items) == 1 and isinstance(items[0], (str, os.PathLike)) and str(items[0]).endswith((".json", ".jsonl")):
        errors = [p for p in validate_manifest(items[0], ("audio_filepath",), audio=True) if p.severity == "error"]
        if errors:
            listing = _listing(errors, len(errors), "")
            raise AudioInputError(f"transcribe(): manifest {items[0]} has problems:\n{listing}")
        return
    paths = [str(i) for i in items if isinstance(i, (str, os.PathLike))]
    durations = check_audio_files(paths) if paths else []
    if not check_duration:
        return
    rate = float(model.cfg.sample_rate)
    arrays = [i for i in items if isinstance(i, (np.ndarray, torch.Tensor))]
    check_transcribe_duration(
        model,
        durations + [a.shape[-1] / rate for a in arrays],
        names=paths + [f"array {i} ({a.shape[-1]} samples)" for i, a in enumerate(arrays)],
    )


# ---------------------------------------------------------------------------------------------- channels
def mono_audio_config(config: DictConfig) -> DictConfig:
    """Make a ``*_ds``/transcribe loader config yield mono (B, T) audio (edits ``config`` in place).

    NeMo's legacy datasets keep every channel unless ``channel_selector`` is set, and then collation or the
    model's input type check fails on (B, T, C): default it to ``'average'``. Lhotse's ``channel_selector``
    takes an int or the name of a cut field, so there ``'average'`` means "none": ``downmix_lhotse_dataset``
    averages instead.
    """
    selector = config.get("channel_selector")
    with open_dict(config):
        if config.get("use_lhotse"):
            if selector == "average":
                config.channel_selector = None
        elif selector is None:
            config.channel_selector = "average"
    return config


def downmix_lhotse_dataset(dataset: Any) -> Any:
    """Average multi-channel audio to mono in every Lhotse batch. Lhotse does it only for batches that mix mono
    and multi-channel cuts; a batch of multi-channel cuts alone comes out (B, C, T) and fails in the model."""
    load_audio = getattr(dataset, "load_audio", None)
    if load_audio is not None and hasattr(load_audio, "mono_downmix"):
        load_audio.mono_downmix = True
    return dataset


# ---------------------------------------------------------------------------------------------- training
class NonFiniteGuard:
    """Drops optimizer steps whose loss or gradients are NaN/inf, on every rank alike, and counts them.

    One optimizer step on a NaN gradient makes every weight NaN for good (gradient clipping does not help:
    the norm is NaN too). NaN/inf come from NaN samples in float audio files, a diverging batch, or fp16
    overflow. Call ``note_loss`` in ``training_step`` and ``skip_if_nonfinite`` in ``on_before_optimizer_step``:
    the step is dropped by setting every gradient to None, which torch optimizers skip entirely (no update, no
    moment or weight-decay change). Under DDP the decision is all-reduced, so every rank drops the same step.
    """

    def __init__(self, warn_interval_s: float = 60.0):
        self.num_skipped = 0  # optimizer steps dropped so far (logged as train_nonfinite_steps)
        self._loss_finite: Optional[torch.Tensor] = None  # losses of the micro-batches since the last step
        self._skip_warning = RateLimitedWarning(warn_interval_s)

    def note_loss(self, loss: torch.Tensor) -> None:
        finite = torch.isfinite(loss.detach()).all()  # stays on device: no host sync in training_step
        self._loss_finite = finite if self._loss_finite is None else self._loss_finite & finite

    def skip_if_nonfinite(self, parameters: Iterable[torch.nn.Parameter], optimizer: Any, step: int = -1) -> bool:
        """True (and the gradients dropped) when the noted loss or a gradient is not finite on any rank."""
        grads = [p.grad for p in parameters if p.grad is not None]
        ok = torch.ones((), dtype=torch.bool, device=grads[0].device if grads else "cpu")
        if grads:  # per tensor, not the total norm: a huge but finite gradient is clipping's job, not ours
            ok = torch.stack([torch.isfinite(g).all().to(ok.device) for g in grads]).all()
        if self._loss_finite is not None:
            ok = ok & self._loss_finite.to(ok.device)
        self._loss_finite = None
        flag = ok.float().reshape(1)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
        if flag.item() >= 1.0:
            return False
        optimizer.zero_grad(set_to_none=True)
        self.num_skipped += 1
        self._skip_warning.note(
            1,
            lambda since_last: (
                f"Skipped {since_last} optimizer step(s) with a NaN/inf loss or gradient "
                f"({self.num_skipped} in total, latest at step {step}); the weights were left unchanged. If it "
                "keeps happening: python -m nemo_aligner_plugin.checks <train manifest> --audio --samples finds "
                "NaN audio; otherwise lower the learning rate, or use bf16 instead of fp16."
            ),
        )
        return True


def _datasets_with_lhotse(model_cfg: DictConfig) -> list[str]:
    return [key for key in ("train_ds", "validation_ds", "test_ds") if (model_cfg.get(key) or {}).get("use_lhotse")]


def check_training_config(cfg: DictConfig) -> list[str]:
    """Fix (in place, with a warning) or refuse, naming the key, settings that fail deep in torch/Lightning/NeMo.

    - ``trainer.sync_batchnorm`` on CPU: torch's SyncBatchNorm needs GPUs ("SyncBatchNorm layers only work with
      GPU modules"). Set to false; each CPU process then normalizes over its own batch.
    - Lhotse data with ``trainer.use_distributed_sampler: true``: Lhotse shards by rank itself, and Lightning
      fails on its sampler. Set to false.
    - Lhotse data without ``batch_size``/``batch_duration``/``bucket_batch_size``/``batch_tokens``: ValueError.
    Returns the warnings.
    """
    warnings = []
    trainer = cfg.get("trainer") or {}
    accelerator = str(trainer.get("accelerator", "auto")).lower()
    on_cpu = accelerator == "cpu" or (accelerator in ("auto", "none") and not torch.cuda.is_available())
    with open_dict(cfg):
        if on_cpu and trainer.get("sync_batchnorm"):
            cfg.trainer.sync_batchnorm = False
            warnings.append(
                "trainer.sync_batchnorm=true needs GPUs (torch: 'SyncBatchNorm layers only work with GPU "
                "modules'); set to false for this CPU run: each process normalizes over its own batch."
            )
        lhotse = _datasets_with_lhotse(cfg.model)
        if lhotse and trainer.get("use_distributed_sampler", True):
            cfg.trainer.use_distributed_sampler = False
            warnings.append(
                f"model.{lhotse[0]}.use_lhotse=true needs trainer.use_distributed_sampler=false (Lhotse shards the "
                "data by rank itself); set to false."
            )
    for key in lhotse:
        ds = cfg.model[key]
        if ds.get("manifest_filepath") is None and ds.get("input_cfg") is None and ds.get("shar_path") is None:
            continue  # not used (e.g. validation_ds without data)
        if not any(ds.get(k) for k in ("batch_size", "batch_duration", "bucket_batch_size", "batch_tokens")):
            raise ValueError(
                f"model.{key}: use_lhotse=true needs a batch size: set model.{key}.batch_size (utterances per "
                f"batch) or model.{key}.batch_duration (seconds of audio per batch)."
            )
    for message in warnings:
        logging.warning(message)
    return warnings


# ---------------------------------------------------------------------------------------------- .nemo files
def _backups(path: str) -> list[str]:
    """NeMo's checkpoint callback renames the previous ``X.nemo`` to ``X-vN.nemo`` before writing a new one."""
    stem = path[: -len(".nemo")] if path.endswith(".nemo") else path
    return sorted(glob.glob(glob.escape(stem) + "-v*.nemo"), key=lambda p: os.stat(p).st_ctime)


def _keep_previous_visible(path: str) -> None:
    """If NeMo's checkpoint callback just renamed ``path`` to its backup ``X-vN.nemo`` (rename updates ctime),
    hard-link the backup back to ``path``: readers keep a loadable model there until the new one replaces it."""
    recent = [b for b in _backups(path) if time.time() - os.stat(b).st_ctime < 600]
    if recent and not os.path.exists(path):
        try:
            os.link(recent[-1], path)
        except OSError:
            pass  # no hard links on this file system: the previous model stays at its backup name


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path next to ``path``; when the block succeeds, move it over ``path`` in one step.

    A crash, a kill or a full disk therefore never leaves a half-written file at ``path``: readers see the old
    model or the new one. Acts on global rank 0 only, where NeMo writes; temporary files of earlier, killed
    writers are removed there.
    """
    from nemo.utils.get_rank import is_global_rank_zero

    if "://" in os.fspath(path):  # object storage (NeMo's multistorageclient): uploads are whole objects
        yield os.fspath(path)
        return
    path = os.path.abspath(os.path.expanduser(os.fspath(path)))
    tmp = f"{path}.partial-{os.getpid()}"
    if not is_global_rank_zero():  # NeMo writes .nemo files on global rank 0 only
        yield tmp
        return
    for stale in glob.glob(glob.escape(path) + ".partial-*"):
        os.remove(stale)
    _keep_previous_visible(path)
    try:
        yield tmp
    except OSError as err:
        if os.path.exists(tmp):
            os.remove(tmp)
        if err.errno != errno.ENOSPC:
            raise
        folder = os.path.dirname(path)
        stat = os.statvfs(folder) if os.path.isdir(folder) else None
        free = f"{stat.f_bavail * stat.f_frsize / 2**20:.0f} MiB free" if stat else "free space unknown"
        previous = path if os.path.exists(path) else (_backups(path) or ["none"])[-1]
        raise OSError(
            errno.ENOSPC,
            f"No space left on device while writing {path} ({free} on {folder}; the model is staged in the "
            f"system temp dir first). Nothing was half-written; the previous model is {previous}. Free space, "
            "then resume (exp_manager.resume_if_exists=true).",
        ) from err
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    if os.path.exists(tmp):
        os.replace(tmp, path)


def check_nemo_archive(path: str | os.PathLike) -> None:
    """``ValueError`` naming what is wrong with a ``.nemo`` file (truncated, not a tar, config or weights
    missing, a tokenizer file the config refers to missing); directories and remote paths pass unchecked."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        return
    backups = _backups(path)
    hint = f" A previous copy: {backups[-1]}." if backups else ""
    hint += " The .ckpt files in the checkpoints folder restore the model too."
    try:
        with tarfile.open(path, "r:*") as tar:
            members = {m.name.lstrip("./"): m for m in tar.getmembers()}
            if not isinstance(tar.fileobj, gzip.GzipFile):  # plain tar (NeMo's format): data offsets are file offsets
                size = os.path.getsize(path)
                cut = [name for name, m in members.items() if m.isfile() and m.offset_data + m.size > size]
                if cut:
                    raise tarfile.ReadError(f"{cut[0]} is cut short")
            config_member = members.get("model_config.yaml")
            config_text = tar.extractfile(config_member).read().decode() if config_member else None
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ValueError(
            f"{path} is not a complete .nemo archive ({err}): it was probably being written when the process was "
            f"killed or the disk filled up.{hint}"
        ) from err
    missing = [name for name in ("model_config.yaml", "model_weights.ckpt") if name not in members]
    if missing:
        raise ValueError(f"{path} is not a NeMo model archive: {', '.join(missing)} missing.{hint}")
    import yaml

    config = yaml.safe_load(config_text) or {}
    tokenizer = config.get("tokenizer") or {}
    for key in ("model_path", "vocab_path", "spe_tokenizer_vocab"):
        value = tokenizer.get(key)
        if isinstance(value, str) and value.startswith("nemo:") and value[5:] not in members:
            raise ValueError(
                f"{path}: the config's tokenizer.{key} refers to {value[5:]}, which is not in the archive: the "
                f".nemo was built or edited by hand without its tokenizer files.{hint} Re-save the model from "
                "Python (model.save_to) with the tokenizer directory present."
            )


def _compatible(saved: str, current: str) -> bool:
    """Same major version (for 0.x: same minor), as semantic versioning promises."""
    saved_parts, current_parts = saved.split("."), current.split(".")
    width = 2 if current_parts[0] == "0" else 1
    return saved_parts[:width] == current_parts[:width]


def plugin_version_stamp(saved: Optional[str]) -> str:
    """The version to record in a model config (this plugin's), warning if ``saved`` (the version that wrote
    the config being loaded) is incompatible with it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        current = version("nemo_aligner_plugin")
    except PackageNotFoundError:
        current = "0+unknown"
    if saved and not _compatible(str(saved), current):
        logging.warning(
            f"This model was saved by nemo_aligner_plugin {saved}; this is {current}. Config keys, weights or "
            f"decoding may have changed between them (see CHANGELOG.md). If loading fails or results differ, use "
            f"pip install nemo_aligner_plugin=={saved}."
        )
    return current


# ---------------------------------------------------------------------------------------------- CLI
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nemo_aligner_plugin.checks",
        description="Report the problems of NeMo manifests (file:line: message). Exit status 1 on errors.",
    )
    parser.add_argument("manifests", nargs="+", help="NeMo JSON-lines manifests (or .nemo files to check)")
    parser.add_argument("--audio", action="store_true", help="open every audio file's header")
    parser.add_argument("--samples", action="store_true", help="also read the samples (NaN/inf, silence)")
    parser.add_argument("--sample-rate", type=int, default=16000, help="the model's rate (default 16000)")
    parser.add_argument("--tokenizer", help="tokenizer dir (tokenizer.model): report characters that become <unk>")
    parser.add_argument("--required", default=",".join(REQUIRED_FIELDS), help="comma-separated required fields")
    parser.add_argument("--max-problems", type=int, default=200, help="problems printed per manifest")
    parser.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    args = parser.parse_args(argv)
    tokenizer = None
    if args.tokenizer:
        from nemo.collections.common.tokenizers import SentencePieceTokenizer

        tokenizer = SentencePieceTokenizer(str(Path(args.tokenizer) / "tokenizer.model"))
    failed = False
    for manifest in args.manifests:
        if manifest.endswith(".nemo"):
            try:
                check_nemo_archive(manifest)
                print(f"{manifest}: complete .nemo archive")
            except ValueError as err:
                print(err)
                failed = True
            continue
        report = inspect_manifest(
            manifest,
            [f for f in args.required.split(",") if f],
            audio=args.audio or args.samples,
            samples=args.samples,
            sample_rate=args.sample_rate,
            tokenizer=tokenizer,
            max_problems=args.max_problems,
        )
        for problem in report.problems:
            print(problem)
        hidden = report.num_errors + report.num_warnings - len(report.problems)
        print(
            f"{manifest}: {report.lines} lines, {report.seconds / 3600:.2f} h, {report.num_errors} errors, "
            f"{report.num_warnings} warnings{f' ({hidden} not printed)' if hidden > 0 else ''}, "
            f"{report.empty_texts} empty transcripts"
        )
        failed = failed or report.num_errors > 0 or (args.strict and report.num_warnings > 0)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
