"""recipes/probe_joined_length.py and nemo_aligner_plugin.demo.joining: joining utterances exactly, and the probe
table on the tiny trained model."""

import json
import subprocess
import sys

import jiwer
import numpy as np
import pytest
import soundfile as sf

from conftest import REPO
from nemo_aligner_plugin.demo.joining import join_manifest
from nemo_aligner_plugin.manifests import read_predictions


def write_wavs(tmp_path, lengths, rate=16000):
    entries = []
    for i, n in enumerate(lengths):
        path = tmp_path / f"u{i}.wav"
        sf.write(path, np.full(n, (i + 1) / 8, dtype=np.float32), rate, subtype="FLOAT")
        entries.append({"audio_filepath": str(path), "duration": n / rate, "text": f"word{i}"})
    return entries


@pytest.mark.unit
def test_join_manifest_concatenates_disjoint_groups_with_gaps(tmp_path):
    entries = write_wavs(tmp_path, [100, 200, 300, 400, 500])
    joined = join_manifest(entries, join=2, groups=10, gap_seconds=0.001, seed=3, out_dir=tmp_path / "j")
    assert len(joined) == 2  # 5 utterances make 2 disjoint pairs
    used = []
    for entry in joined:
        audio, rate = sf.read(entry["audio_filepath"], dtype="float32")
        ids = [int(w[4:]) for w in entry["text"].split()]
        expected = np.concatenate([np.full(100 * (ids[0] + 1), (ids[0] + 1) / 8), np.zeros(16)])
        expected = np.concatenate([expected, np.full(100 * (ids[1] + 1), (ids[1] + 1) / 8)]).astype(np.float32)
        np.testing.assert_array_equal(audio, expected)
        assert entry["duration"] == pytest.approx(len(expected) / rate)
        used += ids
    assert len(set(used)) == 4


@pytest.mark.unit
def test_join_manifest_pads_each_input_with_silence(tmp_path):
    entries = write_wavs(tmp_path, [100, 200])
    (one,) = join_manifest(
        entries[:1], join=1, groups=5, gap_seconds=0.5, seed=0, out_dir=tmp_path / "p", pad_seconds=0.002
    )
    audio, rate = sf.read(one["audio_filepath"], dtype="float32")
    np.testing.assert_array_equal(audio, np.concatenate([np.zeros(32), np.full(100, 1 / 8), np.zeros(32)]))
    assert one["duration"] == pytest.approx(164 / rate) and one["text"] == "word0"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("join", "groups", "kwargs", "message"),
    [
        (3, 1, {}, "fewer than --join 3"),
        (2, 0, {}, "--groups 0"),
        (1, 1, {"pad_seconds": -0.1}, "--pad-seconds -0.1"),
        (1, 1, {"gap_seconds": -1.0}, "--gap-seconds -1.0"),
    ],
)
def test_join_manifest_rejects_impossible_requests(tmp_path, join, groups, kwargs, message):
    entries = write_wavs(tmp_path, [100, 100])
    options = {"gap_seconds": 0.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        join_manifest(entries, join=join, groups=groups, seed=0, out_dir=tmp_path, **options)


@pytest.mark.unit
def test_join_manifest_names_the_file_with_another_sample_rate(tmp_path):
    entries = write_wavs(tmp_path, [100, 100])
    sf.write(entries[1]["audio_filepath"], np.zeros(80, dtype=np.float32), 8000)
    with pytest.raises(ValueError, match="u1.wav: sample rate 8000"):
        join_manifest(entries, join=2, groups=1, gap_seconds=0.0, seed=0, out_dir=tmp_path / "j")


@pytest.mark.unit
def test_probe_recipe_scores_each_join_on_the_tiny_model(tmp_path, trained_nemo, tone_manifest):
    out = tmp_path / "probe"
    proc = subprocess.run(
        [sys.executable, "recipes/probe_joined_length.py", "--model", str(trained_nemo)]
        + ["--manifest", str(tone_manifest), "--join", "1", "2", "--groups", "4", "--out-dir", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((out / "probe.json").read_text())["rows"]
    assert [(r["join"], r["utterances"]) for r in rows] == [(1, 4), (2, 4)]
    assert rows[1]["mean_seconds"] > 1.5 * rows[0]["mean_seconds"]
    for row in rows:  # the table's WER is the WER of the written predictions
        predictions = read_predictions(out / f"join{row['join']}_predictions.json")
        reference = jiwer.wer([p["text"] for p in predictions], [p["pred_text"] for p in predictions])
        assert row["wer"] == pytest.approx(reference)
    assert rows[0]["wer"] < 0.5  # the tiny model was overfit on these utterances one at a time
    assert "| joined | utterances |" in proc.stdout
