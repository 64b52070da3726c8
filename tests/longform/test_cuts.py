"""Chunk cuts: pure functions over loudness, exact values on hand-made loudness and invariants on random ones."""

from __future__ import annotations

import numpy as np
import pytest

from nemo_aligner_plugin.longform import chunk_cuts, pause_cuts, speech_ends, split_candidates


@pytest.mark.unit
def test_chunk_cuts_end_at_the_end_of_the_quietest_stretch():
    loud = [1.0] * 30
    loud[12:17] = [-1.0] * 5  # a pause at frames 12-16: the next chunk should start at 17, where speech resumes
    loud[25] = -1.0  # one quiet frame (a stop closure) is not a pause at width 3
    assert chunk_cuts(loud, size_frames=20, search_frames=10, width_frames=3) == [17, 30]
    assert chunk_cuts(loud, size_frames=20, search_frames=1, width_frames=3) == [20, 30]  # search 1: the fixed cut
    assert chunk_cuts([1.0] * 45, size_frames=20, search_frames=10, width_frames=3) == [
        20,
        40,
        45,
    ]  # no pause: the latest cut
    assert chunk_cuts(loud, size_frames=40, search_frames=10, width_frames=3) == [30]  # fits one chunk
    assert chunk_cuts([], size_frames=20, search_frames=10) == []
    rng = np.random.default_rng(0)
    for _ in range(50):  # any loudness: chunks partition the frames and none is longer than size or empty
        total, size = int(rng.integers(1, 200)), int(rng.integers(1, 40))
        cuts = chunk_cuts(rng.standard_normal(total).tolist(), size, int(rng.integers(1, size + 1)), 5)
        lengths = np.diff([0] + cuts)
        assert cuts[-1] == total and lengths.min() >= 1 and lengths.max() <= size


@pytest.mark.unit
def test_pause_cuts_cut_every_pause_at_the_feature_frame_where_speech_resumes():
    loud = np.ones(400)  # feature frames, 4 per encoder frame
    loud[120:153] = -1.0  # a pause; speech resumes at feature frame 153, in encoder frame 38
    loud[140] = 0.9  # a click inside it: one loud frame is not speech
    loud[280:310] = -1.0  # a pause ending in a soft onset: -0.7 is below the onset level (-1 + 0.2 x 2), -0.4 above
    loud[310:312] = [-0.7, -0.4]  # so speech resumes at feature frame 311, in encoder frame 77
    loud[392:400] = -1.0  # trailing silence: a chunk would be shorter than min_length, so no cut
    assert pause_cuts(loud.tolist(), 4, size_frames=60, search_frames=20, width_frames=5, min_frames=10) == [
        38,
        77,
        100,
    ]
    # lead: the frame holding the feature frame that many before the onset (153 - 2 = 151, 311 - 4 = 307)
    assert pause_cuts(
        loud.tolist(), 4, size_frames=60, search_frames=20, width_frames=5, min_frames=10, lead_feat_frames=2
    ) == [37, 77, 100]
    assert pause_cuts(
        loud.tolist(), 4, size_frames=60, search_frames=20, width_frames=5, min_frames=10, lead_feat_frames=4
    ) == [37, 76, 100]
    # a stretch longer than size is cut further as chunk_cuts cuts it (no pause inside: at size)
    assert pause_cuts(loud.tolist(), 4, size_frames=30, search_frames=20, width_frames=5, min_frames=10) == [
        30,
        38,
        68,
        77,
        100,
    ]
    # a pause that would leave a chunk shorter than min_length is not cut (here the 23 frames after the second)
    assert pause_cuts(loud.tolist(), 4, size_frames=70, search_frames=20, width_frames=5, min_frames=30) == [38, 100]
    # no pause: the same cuts as chunk_cuts
    flat = [1.0] * 180
    assert pause_cuts(flat, 4, size_frames=20, search_frames=10, width_frames=3, min_frames=5) == chunk_cuts(
        [1.0] * 45, 20, 10, 3
    )
    assert pause_cuts([], 4, size_frames=20, search_frames=10, width_frames=3, min_frames=5) == []
    rng = np.random.default_rng(0)
    for _ in range(50):  # any loudness: chunks partition the frames and none is longer than size or empty
        total, size = int(rng.integers(1, 200)), int(rng.integers(1, 40))
        values = rng.standard_normal(4 * total).tolist()
        cuts = pause_cuts(values, 4, size, int(rng.integers(1, size + 1)), 5, int(rng.integers(1, 10)))
        lengths = np.diff([0] + cuts)
        assert cuts[-1] == total and lengths.min() >= 1 and lengths.max() <= size


@pytest.mark.unit
def test_speech_ends_drop_each_chunks_trailing_pause_up_to_a_margin_after_speech():
    loud = np.ones(400)  # feature frames, 4 per encoder frame; the loudness of the pause_cuts test above
    loud[120:153] = -1.0
    loud[140] = 0.9  # a click inside the pause is not speech
    loud[280:310] = -1.0
    loud[310:312] = [-0.7, -0.4]
    loud[392:400] = -1.0
    cuts = pause_cuts(loud.tolist(), 4, size_frames=60, search_frames=20, width_frames=5, min_frames=10)
    assert cuts == [38, 77, 100]
    # speech ends after feature frames 119, 279 and 391; 5 frames of margin, rounded up to an encoder frame
    assert speech_ends(loud.tolist(), 4, cuts, width_frames=5, margin_feat_frames=5) == [32, 72, 100]
    assert speech_ends(loud.tolist(), 4, cuts, width_frames=5, margin_feat_frames=0) == [30, 70, 98]
    assert speech_ends(loud.tolist(), 4, cuts, width_frames=5, margin_feat_frames=100) == cuts  # never past the cut
    # a cut inside speech keeps it; a cut inside the pause drops what of the pause the chunk holds
    assert speech_ends(loud.tolist(), 4, [20, 35, 100], width_frames=5, margin_feat_frames=5) == [20, 32, 100]
    quiet = np.ones(800)
    quiet[402:600] = -1.0  # the chunk [100, 150) = feature frames 400-599 holds speech at 400-401 only
    assert speech_ends(quiet.tolist(), 4, [100, 150, 200], width_frames=5, margin_feat_frames=5) == [100, 102, 200]
    quiet[400:600] = -1.0  # no speech in it at all: kept whole, nothing is dropped on a guess
    assert speech_ends(quiet.tolist(), 4, [100, 150, 200], width_frames=5, margin_feat_frames=5) == [100, 150, 200]


@pytest.mark.unit
def test_split_candidates_are_the_quietest_dips_away_from_the_chunk_ends():
    """Encoder-frame loudness 1.0 with dips at frames 5, 30, 50 (depth 0.2, 0.5, 0.0) and 70 (0.1); chunk
    [0, 80) with 10 frames kept clear at each end: the dips at 50, 30 then 70... but 5 and 70+ are too close
    to an end. Only local minima count: the flat loud stretches give none."""
    loud = np.ones(100)
    for frame, level in ((5, 0.2), (30, 0.5), (50, 0.0), (72, 0.1)):
        loud[frame] = level
    assert split_candidates(loud, 0, 80, side_frames=10, count=5) == [50, 30]  # 5 and 72 lie within 10 of an end
    assert split_candidates(loud, 0, 100, side_frames=10, count=5) == [50, 72, 30]
    assert split_candidates(loud, 0, 100, side_frames=10, count=1) == [50]
    assert split_candidates(loud, 40, 60, side_frames=11, count=5) == []  # too short to hold two halves


@pytest.mark.unit
def test_chunk_cuts_score_every_candidate_over_a_full_pause_width():
    """A file's leading silence seen alone by a cut one frame in is no pause: with the search reaching the chunk's
    start (pause_search_seconds >= chunk_seconds) it used to win and leave a one-frame chunk without speech that
    cut off the first word; the real pause (frames 12-14) is where the first chunk ends."""
    loud = [-1.0] + [1.0] * 11 + [-0.6] * 3 + [1.0] * 25
    assert chunk_cuts(loud, size_frames=20, search_frames=20, width_frames=3) == [15, 35, 40]
    # a chunk shorter than the width still ends (at its size), and a flat stretch is cut at the latest point
    assert chunk_cuts([1.0] * 10, size_frames=4, search_frames=4, width_frames=6) == [4, 8, 10]
    assert chunk_cuts([0.0] * 10, size_frames=4, search_frames=4, width_frames=3) == [4, 8, 10]
