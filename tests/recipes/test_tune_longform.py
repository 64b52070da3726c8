"""recipes/tune_longform.py (the sweep on the tiny trained model) and its grid's checks before any decoding."""

import json
import subprocess
import sys

import pytest

from conftest import REPO
from nemo_aligner_plugin.demo.longform_tuning import GRID_KEYS, build_grid, check_grid

DEFAULTS = {
    "strategy": ["greedy_batch"],
    "mode": ["prime"],
    "boundary": ["pause"],
    "chunk_seconds": [4.5],
    "pause_search_seconds": [2.5],
    "chunk_features": [False],
    "trim_pauses": [False],
    "onset_lead_seconds": [0.0],
    "split_margin": [None],
    "split_min_seconds": [2.0, 3.0],
}


@pytest.mark.unit
def test_sweep_scores_every_setting_and_one_chunk_equals_plain_decoding(trained_nemo, tone_manifest, tmp_path):
    from nemo_aligner_plugin import AlignerEncoderModel

    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, "recipes/tune_longform.py", "--model", str(trained_nemo), "--manifest", str(tone_manifest)]
        + ["--strategies", "greedy_batch", "beam", "--modes", "prime", "reset_only"]
        + ["--chunk-seconds", "0.6", "30", "--pause-search-seconds", "0.4", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert len(rows) == 8  # 2 strategies x 2 modes x 2 chunk lengths
    assert {(r["strategy"], r["mode"], r["chunk_seconds"]) for r in rows} == {
        (s, m, c) for s in ("greedy_batch", "beam") for m in ("prime", "reset_only") for c in (0.6, 30.0)
    }
    assert all(r["pause_search_seconds"] == min(0.4, r["chunk_seconds"]) for r in rows)
    assert all(r["chunk_features"] is False for r in rows)  # the defaults
    assert all(r["trim_pauses"] is False and r["onset_lead_seconds"] == 0.0 for r in rows)
    assert all(r["split_margin"] is None for r in rows)
    # Chunks longer than any file: every item is decoded whole, so the WER is plain decoding's (0 on the overfit model).
    model = AlignerEncoderModel.restore_from(str(trained_nemo)).eval()
    entries = [json.loads(line) for line in tone_manifest.read_text().splitlines()]
    plain = model.transcribe([e["audio_filepath"] for e in entries], batch_size=4, verbose=False)
    assert [h.text for h in plain] == [e["text"] for e in entries]
    assert all(r["wer"] == 0.0 for r in rows if r["chunk_seconds"] == 30.0)
    # Short chunks cut the tone utterances (about 1-2 s) apart: the settings are really applied.
    assert any(r["wer"] > 0.0 for r in rows if r["chunk_seconds"] == 0.6)
    header = "| " + " | ".join(GRID_KEYS) + " | WER | CER |"
    assert header in proc.stdout


@pytest.mark.unit
def test_grid_drops_settings_that_mean_the_same():
    grid = build_grid({**DEFAULTS, "chunk_seconds": [1.0, 2.0], "pause_search_seconds": [1.0, 2.5]})
    # pause search capped at the chunk; no split search: split_min_seconds collapses to its first value
    assert [(g["chunk_seconds"], g["pause_search_seconds"]) for g in grid] == [(1.0, 1.0), (2.0, 1.0), (2.0, 2.0)]
    assert {g["split_min_seconds"] for g in grid} == {2.0}
    searched = build_grid({**DEFAULTS, "split_margin": [1.0]})
    assert [g["split_min_seconds"] for g in searched] == [2.0, 3.0]


@pytest.mark.unit
@pytest.mark.parametrize(
    "key, value, message",
    [
        ("mode", "rewind", "longform mode='rewind'"),
        ("strategy", "viterbi", "decoding.strategy='viterbi' is unknown"),
        ("split_margin", -1.0, "split_margin=-1.0"),
    ],
)
def test_bad_settings_are_named_before_decoding(key, value, message):
    with pytest.raises(ValueError, match=message):
        check_grid(build_grid({**DEFAULTS, key: [value]}))
