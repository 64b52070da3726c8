"""recipes/plot_alignment.py (run as a user runs it) and nemo_aligner_plugin.demo.alignment_plot, on the tiny model."""

import json
import subprocess
import sys

import pytest
import torch

from conftest import REPO
from nemo_aligner_plugin.demo.alignment_plot import alignment_figure, plot_alignment


@pytest.mark.unit
def test_plot_alignment_writes_png_and_scores(tmp_path, trained_nemo, tone_manifest):
    entry = json.loads(tone_manifest.read_text().splitlines()[0])
    out = tmp_path / "plots" / "fig.png"
    proc = subprocess.run(
        [sys.executable, "recipes/plot_alignment.py", "--model", str(trained_nemo)]
        + ["--audio", entry["audio_filepath"], "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    png = out.read_bytes()
    assert len(png) > 1000 and png[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads(out.with_suffix(".json").read_text())
    assert set(saved["layer_scores"]) == {"0", "1"}
    assert all(0.0 <= s <= 1.0 for s in saved["layer_scores"].values())
    assert saved["aligning_score"] == max(saved["layer_scores"].values())
    assert saved["layer_scores"][str(saved["aligning_layer"])] == saved["aligning_score"]
    heads = saved["head_scores"]  # per layer, every head scored; the layer's score is its best head's
    assert all(len(row) == 4 and saved["layer_scores"][layer] == max(row) for layer, row in heads.items())
    assert heads[str(saved["aligning_layer"])][saved["aligning_head"]] == saved["aligning_score"]
    assert saved["hypothesis"] == entry["text"]  # the fixture model is overfit on these utterances
    assert " ".join(w["word"] for w in saved["words"]) == entry["text"]
    assert f"aligning layer: {saved['aligning_layer']}" in proc.stdout

    # in-process: one chosen layer, rows following a reference text; then the head average
    out_one = tmp_path / "one.png"
    one = plot_alignment(str(trained_nemo), entry["audio_filepath"], out_one, text=entry["text"], layers="1")
    assert one["aligning_layer"] == 1 and list(one["layer_scores"]) == ["1"]
    assert one == json.loads(out_one.with_suffix(".json").read_text())
    averaged = plot_alignment(str(trained_nemo), entry["audio_filepath"], out_one, heads="mean")
    assert averaged["aligning_head"] is None and all(len(row) == 1 for row in averaged["head_scores"].values())
    assert out_one.stat().st_size > 1000


@pytest.mark.unit
def test_every_token_label_is_drawn_large_enough_to_read():
    labels = [f"tok{i}" for i in range(44)] + ["<eos>"]  # more rows than the old 40-label cut-off
    blocks = [torch.rand(len(labels), 30) for _ in range(2)]
    fig = alignment_figure(blocks, ["layer 0", "layer 1"], [0.5, 0.7], 1, labels)
    for ax in fig.axes:
        ticks = ax.get_yticklabels()
        assert [t.get_text() for t in ticks] == labels
        assert min(t.get_fontsize() for t in ticks) >= 8
    # the panel grows with the rows: at least ~0.15 inch of height per label
    assert fig.get_size_inches()[1] >= 0.15 * len(labels)


@pytest.mark.unit
def test_missing_matplotlib_is_one_line_naming_the_install(tmp_path):
    """Run the recipe as a script with matplotlib made unimportable: no traceback, the pip command."""
    code = (
        "import runpy, sys; sys.modules['matplotlib'] = None; "
        "sys.argv = ['plot_alignment.py', '--model', 'm.nemo', '--audio', 'a.wav', '--out', 'o.png']; "
        "runpy.run_path('recipes/plot_alignment.py', run_name='__main__')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "pip install matplotlib" in proc.stderr and 'pip install -e ".[plot]"' in proc.stderr
