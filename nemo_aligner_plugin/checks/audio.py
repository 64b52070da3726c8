"""One audio file's problems, read from its header and (on request) its samples, before any loader opens it.

Shared by the manifest checks (a problem per manifest line) and the ``transcribe()`` input checks (a problem
per input). Samples are read in blocks of (frames, channels), so a long file never sits in memory whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import soundfile

__all__ = ["LIBSNDFILE_EXTENSIONS", "SampleScan", "audio_problem", "resolve_audio_path", "scan_samples"]

# Extensions libsndfile reads (what the checks can open); other formats are reported as not checked.
LIBSNDFILE_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".caf", ".w64"}
SCAN_BLOCK_FRAMES = 1 << 20  # frames read at a time when scanning samples


def resolve_audio_path(audio_filepath: str, manifest: Path) -> str:
    """As NeMo does: a relative path is taken relative to the manifest's folder when the file is there."""
    if os.path.isabs(audio_filepath):
        return audio_filepath
    beside = str(manifest.parent / audio_filepath)
    return beside if os.path.exists(beside) else audio_filepath  # os.path: False, not OSError, for a too-long name


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


@dataclass(frozen=True)
class SampleScan:
    """What reading every sample of a file found."""

    nonfinite: int  # NaN/inf samples (all channels): they turn features, loss and decoding into NaN
    peak: float  # largest finite |sample|; 0.0 for silence

    @property
    def silent(self) -> bool:
        return self.peak == 0.0


def scan_samples(path: str) -> SampleScan:
    """Read every sample of a libsndfile-readable file as float32 and count the NaN/inf ones."""
    nonfinite, peak = 0, 0.0
    for block in soundfile.blocks(path, blocksize=SCAN_BLOCK_FRAMES, dtype="float32", always_2d=True):
        finite = np.isfinite(block)
        nonfinite += int(block.size - np.count_nonzero(finite))
        peak = max(peak, float(np.abs(block, where=finite, out=np.zeros_like(block)).max(initial=0.0)))
    return SampleScan(nonfinite, peak)
