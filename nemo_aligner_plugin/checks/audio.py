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

__all__ = [
    "LIBSNDFILE_EXTENSIONS",
    "MAX_SAMPLE_MAGNITUDE",
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "SampleScan",
    "audio_problem",
    "lhotse_unreadable",
    "resolve_audio_path",
    "scan_samples",
]

# Extensions libsndfile reads (what the checks can open); other formats are reported as not checked.
LIBSNDFILE_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".caf", ".w64"}
SCAN_BLOCK_FRAMES = 1 << 20  # frames read at a time when scanning samples
# Float audio lies near [-1, 1] (floats at int16 scale, up to 32768, still transcribe: features are normalized
# per utterance). A sample beyond this is a corrupt file (one flipped exponent bit makes 1e27); from about 1e16
# the power spectrum overflows to inf, and the transcript is a row of unknown tokens, as with NaN samples.
MAX_SAMPLE_MAGNITUDE = 1e6
# Sample rates of real recordings lie between these (telephony: 8 kHz; the fastest converters: 768 kHz); one
# outside is a damaged header. Resampled to 16 kHz, a 1 Hz header made 7 hours of "audio" and a failed allocation;
# from 22,312,341 Hz, Lhotse's polyphase resampler asked for 3.3 and 29 GiB.
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768_000


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
    if not MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE:
        return None, (
            f"sample rate {info.samplerate} Hz in the header of {path}: outside the {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE}"
            " Hz of real recordings (corrupt header?)"
        )
    return info, None


def lhotse_unreadable(path: str) -> Optional[str]:
    """Why Lhotse cannot read a file libsndfile reads, or None. Lhotse seeks, and libsndfile cannot seek in G.721 or
    GSM 6.10 data: Lhotse drops such a file with a warning, and a batch of only such files fails in collation."""
    try:
        with soundfile.SoundFile(path) as f:
            if f.seekable():
                return None
            subtype = f.subtype
    except Exception:  # unreadable: audio_problem names it
        return None
    return (
        f"Lhotse cannot read {path}: libsndfile cannot seek in its {subtype} data; convert it to PCM "
        "(sox in.wav -e signed-integer out.wav)"
    )


@dataclass(frozen=True)
class SampleScan:
    """What reading every sample of a file found."""

    nonfinite: int  # NaN/inf samples (all channels): they turn features, loss and decoding into NaN
    peak: float  # largest finite |sample|; 0.0 for silence
    error: Optional[str] = None  # why the samples could not all be read (the counts cover those read before)

    @property
    def silent(self) -> bool:
        return self.peak == 0.0

    @property
    def overflowing(self) -> bool:
        """Samples beyond ``MAX_SAMPLE_MAGNITUDE``: corrupt data that the features turn into inf."""
        return self.peak > MAX_SAMPLE_MAGNITUDE


def scan_samples(path: str) -> SampleScan:
    """Read every sample of a libsndfile-readable file as float32 and count the NaN/inf ones.

    A header that reads fine can still front data that does not (a FLAC cut short: libsndfile's "Internal
    psf_fseek() failed."): that is ``error``, not an exception, so that the checks name the file.
    """
    nonfinite, peak = 0, 0.0
    try:
        for block in soundfile.blocks(path, blocksize=SCAN_BLOCK_FRAMES, dtype="float32", always_2d=True):
            finite = np.isfinite(block)
            nonfinite += int(block.size - np.count_nonzero(finite))
            peak = max(peak, float(np.abs(block, where=finite, out=np.zeros_like(block)).max(initial=0.0)))
    except RuntimeError as err:  # soundfile.LibsndfileError
        return SampleScan(nonfinite, peak, f"cannot read the samples of {path}: {err} (truncated or corrupt data?)")
    return SampleScan(nonfinite, peak)
