"""Where long-form chunks end: pure numpy over per-frame loudness (mean log-mel), no model.

Units are in the names: ``_frames`` encoder frames (after subsampling), ``_feat_frames`` feature frames
(``factor`` of them per encoder frame), ``_seconds``. A cut is an exclusive encoder-frame index: chunk k of an
utterance is frames [cuts[k-1], cuts[k]), the last cut is the utterance length.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Optional

import numpy as np

__all__ = [
    "QUIET_TOLERANCE",
    "PAUSE_LEVEL",
    "ONSET_LEVEL",
    "MIN_CHUNK_SECONDS",
    "TRIM_MARGIN_SECONDS",
    "chunk_cuts",
    "pause_cuts",
    "speech_ends",
    "split_candidates",
    "frame_means",
    "chunk_spans",
]

# Cuts whose score is within this of the quietest count as equally quiet (units of the features, e.g. normalized
# log-mel); the latest of them wins.
QUIET_TOLERANCE = 0.05
# every_pause: a PAUSE_WIDTH_SECONDS stretch is a pause when its loudness lies within this fraction of the way from
# the utterance's quietest stretch to its median frame...
PAUSE_LEVEL = 0.1
# ...and speech resumes at the first two feature frames (10 ms) this fraction of the way from the pause's loudness to
# the median. An aligner reads from a chunk's first frame: starting 40 ms into a word or with 0.15 s of the pause
# both cost it words (docs/longform.md), so the onset is found at feature-frame resolution.
ONSET_LEVEL = 0.2
# every_pause: no chunk shorter than this (a pause right after a cut or before the end is not cut).
MIN_CHUNK_SECONDS = 1.0
# trim_pauses: audio kept after the last speech frame of a chunk, as the corpus trimming leaves a margin.
TRIM_MARGIN_SECONDS = 0.05
# split_candidates: a dip is a local minimum of the loudness smoothed over this many encoder frames.
_DIP_SMOOTHING_FRAMES = 3


def chunk_cuts(loudness: Sequence[float], size_frames: int, search_frames: int, width_frames: int = 1) -> list[int]:
    """Chunk ends (exclusive encoder frames, in time order, the last one = ``len(loudness)``) for one utterance.

    ``loudness`` has one value per encoder frame. Each chunk is at most ``size_frames`` long. It ends at the latest
    cut, among its last ``search_frames``, whose ``width_frames`` preceding frames are (within ``QUIET_TOLERANCE``)
    the quietest: the end of the pause, so that the next chunk starts where speech resumes, as training utterances
    do. With ``search_frames=1`` this is the fixed cut every ``size_frames``. A cut lies at least ``width_frames``
    into its chunk, so every candidate is scored over a full width: a file's leading silence, seen alone by a cut
    one frame in, would otherwise beat every real pause and leave a one-frame chunk that cuts off the first word.
    """
    total, cuts, start = len(loudness), [], 0
    prefix = list(itertools.accumulate(loudness, initial=0.0))
    earliest = max(1, min(width_frames, size_frames), size_frames - search_frames + 1)  # frames into the chunk
    while total - start > size_frames:
        candidates = range(start + earliest, start + size_frames + 1)
        scores = [
            (prefix[cut] - prefix[max(start, cut - width_frames)]) / (cut - max(start, cut - width_frames))
            for cut in candidates
        ]
        quietest = min(scores)
        start = max(cut for cut, score in zip(candidates, scores, strict=True) if score <= quietest + QUIET_TOLERANCE)
        cuts.append(start)
    return cuts + [total] if total else []


def pause_cuts(
    feature_loudness: Sequence[float],
    factor: int,
    size_frames: int,
    search_frames: int,
    width_frames: int,
    min_frames: int,
    lead_feat_frames: int = 0,
) -> list[int]:
    """Chunk ends (encoder frames, as ``chunk_cuts``) at every pause of one utterance, where speech resumes.

    ``feature_loudness`` has one value per feature frame, ``factor`` per encoder frame (the subsampling). A pause
    is a run of cuts whose ``width_frames`` preceding frames are within ``PAUSE_LEVEL`` of the way from the quietest
    to the median loudness; it is cut at the encoder frame that holds the speech onset after it (``_speech_onset``),
    or the feature frame ``lead_feat_frames`` before that onset. No chunk is shorter than ``min_frames``; a stretch
    longer than ``size_frames`` is cut further by ``chunk_cuts``.
    """
    values = np.asarray(feature_loudness, dtype=np.float64)
    frames = frame_means(values, factor)
    total = len(frames)
    if total == 0:
        return []
    pauses: list[int] = []
    if total > width_frames:
        scores = _stretch_means(frames, width_frames)[:-1]  # cut c = width + i < total: frames [c - width, c)
        quiet = scores <= scores.min() + PAUSE_LEVEL * (float(np.median(frames)) - scores.min())
        # runs of quiet cuts: [first, last] as cut indices
        edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]])))
        for first, last in zip(edges[::2] + width_frames, edges[1::2] + width_frames - 1, strict=True):
            cut = _speech_onset(values, int(first), int(last), factor, width_frames, lead_feat_frames)
            if cut - (pauses[-1] if pauses else 0) >= min_frames and total - cut >= min_frames:
                pauses.append(cut)
    cuts, start = [], 0
    for end in pauses + [total]:
        cuts += [start + c for c in chunk_cuts(frames[start:end].tolist(), size_frames, search_frames, width_frames)]
        start = end
    return cuts


def _stretch_means(frames: np.ndarray, width_frames: int) -> np.ndarray:
    """Mean loudness of every run of ``width_frames`` consecutive frames (len(frames) - width + 1 values)."""
    prefix = np.concatenate([[0.0], np.cumsum(frames)])
    return (prefix[width_frames:] - prefix[:-width_frames]) / width_frames


def frame_means(feature_loudness: Sequence[float], factor: int) -> np.ndarray:
    """Loudness per encoder frame: the mean of its ``factor`` feature frames (a partial last group is dropped)."""
    values = np.asarray(feature_loudness, dtype=np.float64)
    total = len(values) // factor
    return values[: total * factor].reshape(total, factor).mean(axis=1)


def _speech_onset(
    values: np.ndarray, first: int, last: int, factor: int, width_frames: int, lead_feat_frames: int = 0
) -> int:
    """The encoder frame holding the feature frame ``lead_feat_frames`` before the first one after the pause (cuts
    ``first``..``last``) where speech resumes; ``last`` (the end of the quiet run) when no rise is found."""
    pause_level = float(np.median(values[factor * (first - width_frames) : factor * first]))
    threshold = pause_level + ONSET_LEVEL * (float(np.median(values)) - pause_level)
    stop = min(len(values) - 1, factor * (last + width_frames))
    for m in range(factor * (first - width_frames // 2), stop):
        if values[m] >= threshold and values[m + 1] >= threshold:
            return max(0, m - lead_feat_frames) // factor
    return last


def speech_ends(
    feature_loudness: Sequence[float], factor: int, cuts: list[int], width_frames: int, margin_feat_frames: int
) -> list[int]:
    """The encoder frame (exclusive) where each chunk's speech ends, ``margin_feat_frames`` after its last speech
    frame: a chunk cut where speech resumes carries the pause before that onset, which trimmed training utterances
    never had. A chunk without a trailing pause keeps its cut; every chunk keeps its first frame.

    Speech is two feature frames at or above ``ONSET_LEVEL`` of the way from the quietest ``width_frames``
    stretch to the median loudness, as in ``_speech_onset``.
    """
    values = np.asarray(feature_loudness, dtype=np.float64)
    frames = frame_means(values, factor)
    if len(frames) <= width_frames:
        return list(cuts)
    quietest = float(_stretch_means(frames, width_frames).min())
    threshold = quietest + ONSET_LEVEL * (float(np.median(values)) - quietest)
    ends, start = [], 0
    for cut in cuts:
        stop = cut
        for m in range(min(len(values), cut * factor) - 1, start * factor, -1):
            if values[m] >= threshold and values[m - 1] >= threshold:
                stop = min(cut, -(-(m + 1 + margin_feat_frames) // factor))
                break
        ends.append(max(start + 1, stop))
        start = cut
    return ends


def split_candidates(frame_loudness: Sequence[float], start: int, end: int, side_frames: int, count: int) -> list[int]:
    """Up to ``count`` cuts inside chunk [start, end) (encoder frames), quietest first: local minima of the
    loudness smoothed over ``_DIP_SMOOTHING_FRAMES``, at least ``side_frames`` from either end. A cut c starts the
    second half at frame c, the quietest frame of a dip between two words."""
    values = np.asarray(frame_loudness, dtype=np.float64)
    smooth = np.convolve(values, np.ones(_DIP_SMOOTHING_FRAMES) / _DIP_SMOOTHING_FRAMES, mode="same")
    smooth[0], smooth[-1] = values[:2].mean(), values[-2:].mean()  # no zero padding at the ends
    inner = range(max(start + side_frames, 1), min(end - side_frames, len(values) - 1) + 1)
    minima = [c for c in inner if smooth[c] <= smooth[c - 1] and smooth[c] <= smooth[c + 1]]
    # adjacent minima are one flat bottom, a dip only if the frames on both sides are louder (a level stretch is
    # none); the dip is its quietest unsmoothed frame
    runs = np.split(np.asarray(minima, dtype=np.int64), np.flatnonzero(np.diff(minima) > 1) + 1) if minima else []
    dips = [
        int(run[np.argmin(values[run])])
        for run in runs
        if smooth[run[0] - 1] > smooth[run[0]] and smooth[run[-1] + 1] > smooth[run[-1]]
    ]
    return sorted(dips, key=lambda c: (smooth[c], values[c], c))[:count]


def chunk_spans(
    cuts: list[list[int]], lengths_frames: list[int], reverse: bool, kept: Optional[list[list[int]]] = None
) -> list[tuple[int, int, int]]:
    """(utterance, first frame, length in frames) of every chunk, utterance-major, chunks in the audio's time order.

    ``cuts`` are each utterance's chunk ends in time order; ``kept`` (trim_pauses) the end of each chunk's
    speech, at most its cut: frames between are dropped. A reverse-audio model's frames run backwards in
    time, so its chunks are taken from the end of the sequence: the chunk of audio time [a, b) is frames
    [T - b, T - a), i.e. that stretch reversed, which is what the model was trained on.
    """
    spans = []
    for b, (ends, length) in enumerate(zip(cuts, lengths_frames, strict=True)):
        start = 0
        for i, end in enumerate(ends):
            stop = kept[b][i] if kept is not None else end
            spans.append((b, length - stop if reverse else start, stop - start))
            start = end
    return spans
