"""Where the ONNX runtime cuts long audio: the model's own long-form boundaries, computed from the numpy features.

S: audio samples, M: feature frames.

Audio longer than ``route_above_seconds`` is cut where ``transcribe()``'s long-form would cut it (the same
``longform.cuts`` functions on the same loudness: the mean normalized log-mel of each feature frame), with the
model's ``boundary``: ``every_pause`` cuts where speech resumes after every pause, ``pause`` at the quietest
stretch before each chunk limit, ``fixed`` every ``size_frames``. Each chunk is then read as an utterance of its
own with a fresh prediction network (long-form ``reset_only``, ``chunk_features: true``). Not done here: the
model-scored split search (``split_margin``) and the ``prime``/``carry_state`` start states.
"""

from __future__ import annotations

import math

import numpy as np

from nemo_aligner_plugin.longform.cuts import chunk_cuts, frame_means, pause_cuts

__all__ = ["plan_chunks"]


def plan_chunks(samples: np.ndarray, features: np.ndarray, longform: dict, factor: int, hop: int) -> list[tuple]:
    """(S,) audio and its (F, M) features -> [(start, end)] sample ranges covering the audio in order.

    ``longform`` is config.json's section (frames are encoder frames, ``factor`` feature frames of ``hop``
    samples each). Whether the audio is long enough to cut is the caller's decision (``route_above_seconds``).
    """
    total = int(samples.size)
    loudness = features.mean(axis=0).astype(np.float64)  # (M,): low in pauses
    num_frames = math.ceil(loudness.size / factor)  # the conv subsampling rounds up: repeat the last value
    loudness = np.concatenate([loudness, np.repeat(loudness[-1:], num_frames * factor - loudness.size)])
    size, search, width = longform["size_frames"], longform["search_frames"], longform["width_frames"]
    if longform["boundary"] == "fixed":
        cuts = list(range(size, num_frames, size)) + [num_frames]
    elif longform["boundary"] == "pause":
        cuts = chunk_cuts(frame_means(loudness, factor).tolist(), size, search, width)
    else:
        cuts = pause_cuts(loudness, factor, size, search, width, longform["min_frames"], longform["lead_feat_frames"])
    step = factor * hop  # encoder frame f holds samples [f * step, (f + 1) * step)
    ends = [min(total, cut * step) for cut in cuts[:-1]] + [total]
    starts = [0] + ends[:-1]
    return [(start, end) for start, end in zip(starts, ends, strict=True) if end > start]
