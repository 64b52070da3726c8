"""The model-scored split search (``split_margin``): cut a chunk again where its two halves read better.

An aligner emits token i at frame i of its chunk, so two sentences with no pause between them are one long read
it often garbles, while each half alone is a training-like utterance. Pieces are (utterance, first, end) in
encoder frames of audio time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

import torch

from nemo_aligner_plugin.config import SPLIT_SIDE_SECONDS, LongformConfig
from nemo_aligner_plugin.frames import seconds_to_frames
from nemo_aligner_plugin.longform.cuts import chunk_cuts, frame_means, split_candidates
from nemo_aligner_plugin.longform.decode import chunk_scores

__all__ = ["split_search"]

Piece = tuple[int, int, int]  # (utterance, first encoder frame, end encoder frame), in audio time
# Pieces to encode (utterance, first frame in the model's frame order, length) -> Conformer output (n, D) each
Encode = Callable[[list[tuple[int, int, int]]], list[torch.Tensor]]


def split_search(
    model,
    cfg: LongformConfig,
    cuts: list[list[int]],
    loudness: list[list[float]],
    lengths_frames: list[int],
    reverse: bool,
    encode: Encode,
    force: Optional[tuple[int, int, int]] = None,
) -> list[list[int]]:
    """Each utterance's chunk ends (time order) with chunks split where the model reads two halves better.

    ``loudness`` is per feature frame, per utterance in time order. A chunk of at least ``split_min_seconds`` is
    decoded whole and, for each of its ``split_candidates`` quietest points, as two halves, every piece from a
    fresh state (as a reset_only chunk, whatever the mode); the cut whose halves' scores sum highest is taken when
    it beats the whole by ``split_margin`` nats, and the halves are searched again.
    Cost: (1 + 2 x candidates) extra chunk encodes and decodes per chunk searched.

    With ``force = (size_frames, search_frames, width_frames)`` a chunk longer than ``size_frames`` is always cut,
    at the best of twice as many dips (no margin), or where ``chunk_cuts(size, search, width)`` would cut it if it
    has none: the model, not the loudness alone, picks where a long stretch without a pause is cut.
    """
    factor = model.encoder.subsampling_factor
    shortest_frames = seconds_to_frames(model, cfg.split_min_seconds)
    side_frames = seconds_to_frames(model, SPLIT_SIDE_SECONDS)
    frame_loudness = [frame_means(values, factor) for values in loudness]
    cuts = [list(ends) for ends in cuts]
    scores: dict[Piece, float] = {}  # piece -> decode score

    def score(pieces: list[Piece]) -> None:
        todo = sorted({piece for piece in pieces if piece not in scores})
        spans = [(b, lengths_frames[b] - end if reverse else start, end - start) for b, start, end in todo]
        for group_start in range(0, len(spans), cfg.chunk_batch_size):
            outs = encode(spans[group_start : group_start + cfg.chunk_batch_size])
            lens = torch.tensor([o.size(0) for o in outs], dtype=torch.long, device=outs[0].device)
            values = chunk_scores(model, torch.nn.utils.rnn.pad_sequence(outs, batch_first=True), lens)
            scores.update(zip(todo[group_start : group_start + len(outs)], values, strict=True))

    size_frames = force[0] if force is not None else None

    def forced(piece: Piece) -> bool:
        return size_frames is not None and piece[2] - piece[1] > size_frames

    def searched(piece: Piece) -> bool:
        return forced(piece) or piece[2] - piece[1] >= shortest_frames

    pending = [
        piece
        for b, ends in enumerate(cuts)
        for piece in ((b, start, end) for start, end in zip([0] + ends[:-1], ends, strict=False))
        if searched(piece)
    ]
    while pending:
        tried = []
        for b, a, z in pending:
            count = cfg.split_candidates * (2 if forced((b, a, z)) else 1)
            candidates = split_candidates(frame_loudness[b], a, z, side_frames, count)
            if candidates:
                tried.append(((b, a, z), candidates))
            elif forced((b, a, z)):  # no dip to try: cut as without the search
                stretch = frame_loudness[b][a:z].tolist()
                cuts[b] = sorted(set(cuts[b]) | {a + c for c in chunk_cuts(stretch, *force)})
        score(
            [
                piece
                for (b, a, z), cs in tried
                for piece in ([] if forced((b, a, z)) else [(b, a, z)])
                + [p for c in cs for p in ((b, a, c), (b, c, z))]
            ]
        )
        pending = []
        for (b, a, z), candidates in tried:
            whole = 0.0 if forced((b, a, z)) else scores[(b, a, z)]
            gain, cut = max((scores[(b, a, c)] + scores[(b, c, z)] - whole, c) for c in candidates)
            if forced((b, a, z)) or gain > cfg.split_margin:
                cuts[b] = sorted(cuts[b] + [cut])
                pending += [piece for piece in ((b, a, cut), (b, cut, z)) if searched(piece)]
    return cuts
