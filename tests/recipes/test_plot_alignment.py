"""recipes/plot_alignment.py, run on the tiny trained model and a tone utterance."""

import json

import pytest

from conftest import load_recipe


@pytest.mark.unit
def test_plot_alignment_writes_png_and_scores(tmp_path, trained_nemo, tone_manifest, capsys):
    entry = json.loads(tone_manifest.read_text().splitlines()[0])
    out = tmp_path / "plots" / "fig.png"
    # in-process (the import of NeMo dominates a subprocess run); argv exactly as on the command line
    result = load_recipe("plot_alignment").main(
        ["--model", str(trained_nemo), "--audio", entry["audio_filepath"], "--out", str(out)]
    )

    png = out.read_bytes()
    assert len(png) > 1000 and png[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert set(saved["layer_scores"]) == {"0", "1"}
    assert all(0.0 <= s <= 1.0 for s in saved["layer_scores"].values())
    assert saved["aligning_score"] == max(saved["layer_scores"].values())
    assert saved["layer_scores"][str(saved["aligning_layer"])] == saved["aligning_score"]
    heads = saved["head_scores"]  # per layer, every head scored; the layer's score is its best head's
    assert all(len(row) == 4 and saved["layer_scores"][layer] == max(row) for layer, row in heads.items())
    assert heads[str(saved["aligning_layer"])][saved["aligning_head"]] == saved["aligning_score"]
    assert saved["hypothesis"] == entry["text"]  # the fixture model is overfit on these utterances
    assert " ".join(w["word"] for w in saved["words"]) == entry["text"]
    printed = capsys.readouterr().out
    assert f"aligning layer: {saved['aligning_layer']}" in printed

    # one chosen layer, rows following a reference text
    out_one = tmp_path / "one.png"
    one = load_recipe("plot_alignment").main(
        [
            "--model",
            str(trained_nemo),
            "--audio",
            entry["audio_filepath"],
            "--out",
            str(out_one),
            "--layers",
            "1",
            "--text",
            entry["text"],
        ]
    )
    assert one["aligning_layer"] == 1 and list(one["layer_scores"]) == ["1"]
    averaged = load_recipe("plot_alignment").main(
        ["--model", str(trained_nemo), "--audio", entry["audio_filepath"], "--out", str(out_one), "--heads", "mean"]
    )
    assert averaged["aligning_head"] is None and all(len(row) == 1 for row in averaged["head_scores"].values())
    assert out_one.stat().st_size > 1000
