"""Where the ONNX runtime cuts long audio: chunks no longer than the model was trained on, ended at a quiet point.

S: audio samples.

The long-form ``reset_only`` mode (docs/longform.md): each chunk is read as an utterance of its own with a fresh
prediction network, and the texts are joined. A cut inside a word loses that word, so each chunk ends at the
quietest 20 ms of the last ``search_seconds`` before its limit (a pause when there is one) instead of exactly
at the limit. Plain numpy: this module is part of the torch-free runtime.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["plan_chunks"]

_WINDOW_SECONDS = 0.02  # the span whose energy decides a cut: shorter than a word, longer than a pitch period


def plan_chunks(
    samples: np.ndarray,
    sample_rate: int,
    route_above_seconds: Optional[float],
    chunk_seconds: float,
    search_seconds: float,
) -> list[tuple[int, int]]:
    """(S,) audio -> [(start, end)] sample ranges covering it in order; one range when it is short enough."""
    total = int(samples.size)
    if route_above_seconds is None or total <= route_above_seconds * sample_rate:
        return [(0, total)]
    limit = max(1, int(chunk_seconds * sample_rate))
    search = min(int(search_seconds * sample_rate), limit // 2)
    window = max(1, int(_WINDOW_SECONDS * sample_rate))
    ranges = []
    start = 0
    while total - start > limit:
        end = start + limit
        ranges.append((start, _quietest_cut(samples, end - search, end, window)))
        start = ranges[-1][1]
    ranges.append((start, total))
    return ranges


def _quietest_cut(samples: np.ndarray, low: int, high: int, window: int) -> int:
    """The centre of the quietest ``window``-long span of samples[low:high] (the latest one on ties)."""
    span = samples[low:high].astype(np.float64)
    if span.size < window:
        return high
    energy = np.convolve(span * span, np.ones(window), mode="valid")  # energy of span[i : i + window]
    best = energy.size - 1 - int(np.argmin(energy[::-1]))
    return low + best + window // 2
