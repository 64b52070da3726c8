"""The split search: which cuts a scorer that penalizes sentence joins makes it take, and which it leaves."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from nemo_aligner_plugin.longform import LongformConfig, chunk_cuts, split_search


class _FakeFrames:
    """A stand-in model for ``split_search``: 10 ms features x4 = 40 ms encoder frames."""

    encoder = type("Encoder", (), {"subsampling_factor": 4})()
    cfg = OmegaConf.create({"preprocessor": {"window_stride": 0.01}})


@pytest.mark.unit
@pytest.mark.parametrize("reverse", [False, True])
def test_split_search_cuts_at_the_joins_the_scores_favour_and_nowhere_else(monkeypatch, reverse):
    """8 s (200 frames) without a pause and quiet dips at frames 8, 60, 100 and 150. The scorer penalizes a
    piece 10 nats per 'sentence join' (frames 8, 60, 150) strictly inside it: the search cuts at 60 and 150
    (recursively, the second inside the first's half) but not at 100 (no gain) nor at 8 (within 0.8 s of the
    start), and stays whole when the margin exceeds the gain or the chunk is shorter than split_min_seconds."""
    import nemo_aligner_plugin.longform.search as search_module

    total, joins = 200, (8, 60, 150)
    feature_loudness = np.ones(total * 4)
    for frame in (8, 60, 100, 150):
        feature_loudness[frame * 4 : frame * 4 + 4] = 0.0
    scored: list[tuple[int, int]] = []

    def encode(spans):  # each piece -> (n, 1) frames holding its first frame in audio time
        out = []
        for _, start, n in spans:
            first = total - start - n if reverse else start
            scored.append((first, first + n))
            out.append(torch.full((n, 1), float(first)))
        return out

    def scores(model, chunks, lens):
        firsts = chunks[:, 0, 0].long().tolist()
        return [
            -10.0 * sum(a < j < a + n for j in joins) - 0.01 * n for a, n in zip(firsts, lens.tolist(), strict=True)
        ]

    monkeypatch.setattr(search_module, "chunk_scores", scores)

    def search(cfg: LongformConfig) -> list[list[int]]:
        return split_search(_FakeFrames(), cfg, [[total]], [feature_loudness.tolist()], [total], reverse, encode)

    assert search(LongformConfig(split_margin=1.0, split_min_seconds=2.0)) == [[60, 150, 200]]
    assert (0, 200) in scored and (0, 100) in scored and (60, 150) in scored  # the whole, a candidate, a half's
    assert search(LongformConfig(split_margin=25.0)) == [[total]]  # a gain of 10 < 25
    assert search(LongformConfig(split_margin=1.0, split_min_seconds=8.5)) == [[total]]  # 8 s < 8.5 s
    # one candidate per chunk, the earliest of equally quiet dips: 60 in the whole (8 is too close to the start),
    # then 100 in [60, 200), which gains nothing
    assert search(LongformConfig(split_margin=1.0, split_candidates=1)) == [[60, 200]]
    # force=(size, search, width): a piece longer than 100 frames is always cut, at a dip, whatever the margin
    forced = split_search(
        _FakeFrames(),
        LongformConfig(split_margin=25.0),
        [[total]],
        [feature_loudness.tolist()],
        [total],
        reverse,
        encode,
        force=(100, 62, 5),
    )[0]
    assert set(forced[:-1]) <= {60, 100, 150} and max(np.diff([0] + forced)) <= 100
    flat = np.ones(total * 4).tolist()  # no dip at all: cut as chunk_cuts would
    flat_cuts = split_search(
        _FakeFrames(), LongformConfig(split_margin=25.0), [[total]], [flat], [total], reverse, encode, (100, 62, 5)
    )
    assert flat_cuts == [chunk_cuts(np.ones(total).tolist(), 100, 62, 5)]
