"""NeMo manifest checks: every problem of a JSON-lines manifest as ``file:line: message``, before training starts.

A bad line deep in a large corpus otherwise fails hours into an epoch (or trains silently on wrong data) with
an error that names neither the file nor the line. ``inspect_manifest`` reads the file once and reports them
all; ``check_dataset_manifests`` runs it on the ``*_ds`` manifests of a model config and raises on errors.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from nemo.utils import logging
from omegaconf import DictConfig

from nemo_aligner_plugin.checks.audio import audio_problem, lhotse_unreadable, resolve_audio_path, scan_samples
from nemo_aligner_plugin.checks.manifest_lines import (
    MAX_LINE_BYTES,
    is_number,
    is_unicode,
    parse_line,
    printable,
    read_lines,
    shown,
)

__all__ = [
    "REQUIRED_FIELDS",
    "ManifestError",
    "ManifestReport",
    "Problem",
    "check_dataset_manifests",
    "inspect_manifest",
    "listing",
    "manifest_paths",
    "validate_manifest",
]

REQUIRED_FIELDS = ("audio_filepath", "duration", "text")
DURATION_TOLERANCE_S = 0.05  # manifest vs file duration: more than this (and 1 %) is reported
MAX_LISTED = 10  # problems quoted in an exception or log message


class ManifestError(ValueError):
    """A manifest has problems; the message lists them as ``file:line: message``."""


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


def listing(problems: Sequence[Any], total: int, hint: str) -> str:
    """The first ``MAX_LISTED`` problems, one per indented line, a count of the rest, then ``hint``."""
    quoted = "\n".join(f"  {p}" for p in problems[:MAX_LISTED])
    more = f"\n  ... and {total - MAX_LISTED} more" if total > MAX_LISTED else ""
    return f"{quoted}{more}\n{hint}"


def _audio_line_problems(entry: dict, path: str, sample_rate: Optional[int], samples: bool) -> list[tuple[str, str]]:
    """[(severity, message)] for the audio file of one manifest line, held against the line's fields."""
    info, problem = audio_problem(path)
    if problem:
        return [("error", problem)]
    if info is None:
        return [("warning", f"not checked: libsndfile cannot read {Path(path).suffix} files ({path})")]
    if info.frames == 0:  # readable: transcribes to "", and training drops it (min_duration)
        return [("warning", f"audio file has no samples: {path}")]
    out = []
    duration, offset = entry.get("duration"), entry.get("offset") or 0.0
    if is_number(duration) and is_number(offset):
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
    if why := lhotse_unreadable(path):
        out.append(("warning", f"{why} (the legacy loader reads it)"))
    if samples:
        scan = scan_samples(path)
        if scan.error:
            out.append(("error", scan.error))
        if scan.nonfinite:
            out.append(("error", f"NaN/inf samples in {path}: they turn the loss into NaN; re-export the file"))
        if scan.overflowing:
            out.append(("error", f"samples up to {scan.peak:.3g} in {path}: corrupt data that overflows to inf"))
        if scan.silent:
            out.append(("warning", f"all samples are zero (silence): {path}"))
    return out


class _UnknownChars:
    """Characters a tokenizer maps to <unk>, found one character at a time and cached."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.unk_id = getattr(tokenizer, "unk_id", None)
        self.known: dict[str, bool] = {}

    def __call__(self, text: str) -> list[str]:
        if self.unk_id is None or self.unk_id < 0:
            return []
        for ch in set(text) - set(self.known):
            self.known[ch] = ch.isspace() or self.unk_id not in self.tokenizer.text_to_ids(ch)
        return [ch for ch in sorted(set(text)) if not self.known[ch]]


def _line_problems(entry: Any, required: Sequence[str]) -> list[str]:
    if not isinstance(entry, dict):
        return [f"a manifest line must be a JSON object, got {type(entry).__name__}"]
    missing = [name for name in required if name not in entry]
    out = [f"missing field{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)}"] if missing else []
    audio = entry.get("audio_filepath")
    if "audio_filepath" in entry and not (isinstance(audio, str) and audio):
        out.append(f"'audio_filepath' must be a non-empty string, got {shown(audio)}")
    if "duration" in entry:
        duration = entry["duration"]
        if not is_number(duration):
            out.append(f"'duration' must be a number of seconds, got {shown(duration)}")
        elif duration <= 0:
            out.append(f"'duration' must be > 0, got {duration}")
    if "offset" in entry and not (is_number(entry["offset"]) and entry["offset"] >= 0):
        out.append(f"'offset' must be a number >= 0, got {shown(entry['offset'])}")
    if "text" in entry and not isinstance(entry["text"], str):
        out.append(f"'text' must be a string, got {shown(entry['text'])}")
    elif "text" in entry and not is_unicode(entry["text"]):
        out.append(f"'text' holds a lone surrogate escape such as \\ud800, not a character: {shown(entry['text'])}")
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
            report.problems.append(Problem(str(path), line, printable(message), severity))

    try:
        handle = path.open("rb")
    except OSError as err:
        add(None, f"cannot open manifest: {err.strerror}")
        return report
    with handle:
        mode = os.fstat(handle.fileno()).st_mode
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):  # /dev/zero has no lines: reading it would never end
            add(None, "not a manifest: a device file, not a regular file")
            return report
        for lineno, raw in enumerate(read_lines(handle), 1):
            if raw is None:
                report.lines += 1
                add(lineno, f"line longer than {MAX_LINE_BYTES} bytes: not a manifest line (a binary file?)")
                continue
            if not raw.strip():
                add(lineno, "empty line: NeMo's Lhotse reader fails on it (the legacy reader skips it); delete it")
                continue
            report.lines += 1
            entry, unreadable = parse_line(raw)
            if unreadable:
                add(lineno, unreadable)
                continue
            for message in _line_problems(entry, required):
                add(lineno, message)
            if not isinstance(entry, dict):
                continue
            if is_number(entry.get("duration")):
                report.seconds += entry["duration"]
            text = entry.get("text")
            if isinstance(text, str) and is_unicode(text):  # not: an error above; a tokenizer would raise
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


def manifest_paths(manifest_filepath: Any) -> list[str]:
    """Plain manifest files of a ``*_ds`` config (lists and comma-separated strings); sharded patterns skipped."""
    if manifest_filepath is None:
        return []
    items = [manifest_filepath] if isinstance(manifest_filepath, str) else list(manifest_filepath)
    paths = []
    for item in items:
        if not isinstance(item, str):  # nested lists: NeMo's weighted/bucketed inputs
            paths.extend(manifest_paths(item))
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
        for manifest in manifest_paths(ds.get("manifest_filepath")):
            if not os.path.exists(manifest):  # directories and devices: inspect_manifest names them
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
                    + listing(unknown, report.unknown_char_lines, "Normalize the text or retrain the tokenizer.")
                )
    if errors:
        raise ManifestError(
            "Manifest problems (training would fail or silently train on wrong data):\n"
            + listing(errors, num_errors, "Full list: python -m nemo_aligner_plugin.checks <manifest> --audio")
        )
    return warnings
