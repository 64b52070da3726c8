"""recipes/score_nonspeech.py: clips drawn from a seed, transcribed, summarized."""

import json
import runpy

import pytest

from conftest import REPO


def run_recipe_main(script: str, argv: list[str]) -> None:
    runpy.run_path(str(REPO / "recipes" / script), run_name="recipe")["main"](argv)


@pytest.mark.unit
def test_scores_a_model_on_clips_drawn_from_a_seed(trained_nemo, tmp_path, capsys):
    run_recipe_main("score_nonspeech.py", ["--model", str(trained_nemo), "--out", str(tmp_path), "--clips", "3"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) == {"greedy", "beam"}
    for result in summary.values():
        assert result["clips"] == 3 and 0.0 <= result["no_text_share"] <= 1.0
        assert set(result["by_kind"]) == {"silence", "blue", "violet"}  # the first three kinds of the cycle
    predictions = [json.loads(line) for line in (tmp_path / "predictions_greedy.json").read_text().splitlines()]
    assert [p["kind"] for p in predictions] == ["silence", "blue", "violet"] and "text" not in predictions[0]
    assert "invented words / min" in capsys.readouterr().out


@pytest.mark.unit
def test_a_missing_model_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        run_recipe_main("score_nonspeech.py", ["--model", str(tmp_path / "none.nemo"), "--out", str(tmp_path)])
    assert "none.nemo: no such file" in capsys.readouterr().err
