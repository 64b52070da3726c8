"""`make demo` / `make demo-baselines` end to end on a tiny corpus and models (the full demo is not part of CI)."""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import jiwer
import pytest

from conftest import REPO
from nemo_aligner_plugin.demo.evaluate import length_ratios
from nemo_aligner_plugin.demo.pipeline import schedule_steps, train_aligner_after_ctc
from nemo_aligner_plugin.manifests import read_predictions
from nemo_aligner_plugin.transcribe_cli import parse_longform_options

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


def assert_scores_match_predictions(split: dict, predictions_dir, name: str) -> None:
    """The report's WER/CER are those of the prediction files it wrote (jiwer on pred_text), finite and in range."""
    for suffix, key in (("", ""), ("_beam", "_beam")):
        if f"wer{key}" not in split:
            continue
        lines = read_predictions(predictions_dir / f"{name}_predictions{suffix}.json")
        refs, hyps = [line["text"] for line in lines], [line["pred_text"] for line in lines]
        wer = split[f"wer{key}"]
        assert math.isfinite(wer) and wer >= 0.0
        assert wer == pytest.approx(jiwer.wer(refs, hyps), abs=1e-4)
        assert split[f"cer{key}"] == pytest.approx(jiwer.cer(refs, hyps), abs=1e-4)
        assert len(lines) == split["utterances"]


def assert_nonspeech_matches_predictions(nonspeech: dict, predictions_dir, decodings: set[str]) -> None:
    """The nonspeech scores are those of its prediction files: words invented per minute, clips with no text."""
    assert set(nonspeech) == decodings
    for decoding, r in nonspeech.items():
        lines = read_predictions(predictions_dir / f"nonspeech_predictions{'_beam' if decoding == 'beam' else ''}.json")
        assert r["clips"] == len(lines) == 4 and all("text" not in line for line in lines)  # no WER on empty texts
        words = sum(len(line["pred_text"].split()) for line in lines)
        minutes = sum(line["duration"] for line in lines) / 60
        assert r["words"] == words and r["invented_words_per_minute"] == pytest.approx(words / minutes, abs=1e-3)
        assert r["no_text_share"] == pytest.approx(sum(not x["pred_text"].strip() for x in lines) / 4, abs=1e-4)
        assert set(r["by_kind"]) == {"silence", "blue", "violet", "hum"} and len(r["worst"]) <= 3


@pytest.mark.unit
@needs_espeak
def test_demo_smoke_writes_a_complete_report(tmp_path):
    proc = subprocess.run(
        [sys.executable, "recipes/run_demo.py", "--work-dir", str(tmp_path), "--smoke", "--baselines"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    reports = list(tmp_path.rglob("report.json"))
    assert len(reports) == 1 and len(list(tmp_path.rglob("*.nemo"))) >= 3  # aligner, CTC, RNN-T
    report = json.loads(reports[0].read_text())
    assert report["training"]["global_step"] == 6
    splits = {"dev", "dev_long", "test", "test_long", "test_long_nopause", "test_long_sentences", "test_padded"}
    assert set(report["splits"]) == splits | {"nonspeech"}
    assert_nonspeech_matches_predictions(report["splits"].pop("nonspeech"), reports[0].parent, {"greedy", "beam"})
    for name, split in report["splits"].items():
        assert split["utterances"] > 0 and split["wer_by_words"]
        assert "wer_beam" in split  # the aligner is also scored with its beam search
        assert_scores_match_predictions(split, reports[0].parent, name)
        assert ("wer_longform" in split) == name.endswith(("_long", "_nopause"))  # and long audio with its chunking
        assert ("wer_longform_beam" in split) == name.endswith(("_long", "_nopause"))  # greedy and beam
    assert all("wer_beam" not in report["systems"][name]["splits"]["test"] for name in ("ctc", "rnnt"))
    assert len(list(tmp_path.rglob("test_predictions_beam.json"))) == 1
    (corpus_test,) = tmp_path.rglob("test_manifest.json")  # the corpus split
    (padded,) = reports[0].parent.glob("test_padded_manifest.json")
    durations = lambda path: sorted(json.loads(line)["duration"] for line in path.read_text().splitlines())  # noqa: E731
    assert durations(padded) == pytest.approx([d + 0.5 for d in durations(corpus_test)], abs=1e-3)  # 0.25 s each side
    ratios = report["length_ratios"]  # test_long / test and its two factors, greedy and beam
    assert set(ratios) == {"greedy", "beam"}
    for decoding, key in (("greedy", "wer"), ("beam", "wer_beam")):
        r = ratios[decoding]
        assert r["test"] == report["splits"]["test"][key]
        assert r["sentences_alone"] == report["splits"]["test_long_sentences"][key]
        assert set(r) >= {"whole", "longform"}
    text = (reports[0].parent / "report.md").read_text()
    assert text.startswith("# Aligner-Encoder demo report")
    assert set(report["systems"]) == {"aligner", "ctc", "rnnt"}
    for name, system in report["systems"].items():
        assert system["training"]["global_step"] == 6 and system["decode"]["decode_ms"] > 0
        assert set(system["splits"]) == splits | {"nonspeech"}
        if name != "aligner":  # greedy only, with their own predictions
            nemo_path = system["model"]
            assert_nonspeech_matches_predictions(system["splits"]["nonspeech"], Path(nemo_path).parent, {"greedy"})
    rows = text[text.index("## Non-speech") :].split("\n\n")[1].splitlines()[2:]
    assert [row.split(" | ")[:2] for row in rows] == [
        ["| aligner", "greedy"],
        ["| aligner", "beam"],
        ["| ctc", "greedy"],
        ["| rnnt", "greedy"],
    ]
    table = text[text.index("## Side by side") :]
    assert all(f"| {name} |" in table for name in ("aligner", "ctc", "rnnt"))
    assert "report:" in proc.stdout


@pytest.mark.unit
@needs_espeak
def test_demo_with_a_given_model_writes_under_the_work_dir_only(tmp_path, trained_nemo):
    """--model aligner=X.nemo: predictions, test_padded/ and the report go under --work-dir; X's folder is read only."""
    given = tmp_path / "given"
    given.mkdir()
    model = given / "model.nemo"
    shutil.copy(trained_nemo, model)
    work = tmp_path / "work"
    proc = subprocess.run(
        [sys.executable, "recipes/run_demo.py", "--work-dir", str(work), "--smoke", "--model", f"aligner={model}"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert [p.name for p in given.iterdir()] == ["model.nemo"]
    (report,) = work.rglob("report.json")
    assert (report.parent / "aligner" / "test_padded").is_dir()
    predictions = report.parent / "aligner"
    assert len(list(predictions.glob("*_predictions*.json"))) >= 20
    assert "- training: none in this run" in (report.parent / "report.md").read_text()
    splits = json.loads(report.read_text())["splits"]
    assert_nonspeech_matches_predictions(splits.pop("nonspeech"), predictions, {"greedy", "beam"})
    for name, split in splits.items():
        assert_scores_match_predictions(split, predictions, name)


@pytest.mark.unit
def test_ctc_warmup_must_leave_aligner_steps(tmp_path):
    assert schedule_steps(["trainer.max_steps=6", "seed=1"]) == 6
    assert schedule_steps([]) > 0  # the demo config's schedule
    with pytest.raises(SystemExit, match="between 1 and the schedule's 5 steps"):
        train_aligner_after_ctc(tmp_path, tmp_path, ["trainer.max_steps=6"], ctc_steps=6)


@pytest.mark.unit
def test_length_ratios_split_test_long_over_test_in_two_factors():
    splits = {
        "test": {"wer": 0.04, "wer_beam": 0.0},
        "test_long_sentences": {"wer": 0.05, "wer_beam": 0.02},
        "test_long": {"wer": 0.4, "wer_beam": 0.3, "wer_longform": 0.08},
    }
    r = length_ratios(splits)
    g = r["greedy"]
    assert g["sentences_alone_vs_test"] == 1.25
    assert g["longform"] == {"wer": 0.08, "vs_test": 2.0, "vs_sentences_alone": 1.6}
    assert g["whole"]["vs_test"] == 10.0 and g["whole"]["vs_sentences_alone"] == 8.0
    assert g["sentences_alone_vs_test"] * g["longform"]["vs_sentences_alone"] == pytest.approx(g["longform"]["vs_test"])
    # a perfect test score has no ratio, and long-form is only reported where it was scored
    assert r["beam"]["sentences_alone_vs_test"] is None and "longform" not in r["beam"]
    assert length_ratios({"test": {}, "test_long_sentences": {}, "test_long": {}}) == {}


@pytest.mark.unit
def test_longform_options_are_typed_and_checked_before_anything_runs(tmp_path):
    options = ["boundary=every_pause", "chunk_seconds=5", "chunk_features=true"]
    assert parse_longform_options(options) == {
        "boundary": "every_pause",
        "chunk_seconds": 5,
        "chunk_features": True,
    }
    assert parse_longform_options([]) == {}
    for bad, named in (("boundary", "KEY=VALUE"), ("chunk_seconds=-1", "long-form config"), ("bogus=1", "bogus")):
        proc = subprocess.run(
            [sys.executable, "recipes/run_demo.py", "--work-dir", str(tmp_path), "--longform", bad],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=300,
        )
        assert proc.returncode == 2 and named in proc.stderr
    assert not any(tmp_path.iterdir())  # nothing built or trained


@pytest.mark.slow
@needs_espeak
def test_streaming_demo_smoke_writes_a_complete_report(tmp_path):
    """`make demo-streaming` on the tiny corpus: both systems trained, scored offline and streamed, one report."""
    command = [sys.executable, "recipes/run_demo.py", "--work-dir", str(tmp_path), "--smoke", "--streaming"]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    (report_path,) = tmp_path.rglob("report_streaming.json")
    report = json.loads(report_path.read_text())
    assert set(report["systems"]) == {"chunkwise", "rnnt_streaming"}
    for name, result in report["systems"].items():
        assert result["training"]["global_step"] == 6
        for split in ("dev", "test"):
            streamed = result["splits"][split]["streaming"]
            assert streamed["utterances"] == 8 and math.isfinite(streamed["wer"]) and 0 < streamed["rtf"]
            lines = [json.loads(x) for x in (report_path.parent / name / f"{split}_streaming.jsonl").open()]
            manifest = tmp_path / "corpus_smoke" / f"{split}_manifest.json"
            refs = [json.loads(x)["text"] for x in manifest.open()]
            assert streamed["wer"] == pytest.approx(100 * jiwer.wer(refs, [x["streamed"] for x in lines]), abs=1e-6)
    chunkwise = report["systems"]["chunkwise"]["splits"]["test"]["streaming"]
    assert chunkwise["same_text_as_offline"] == 8  # streamed == offline decoding of the same audio
    assert "| Chunkwise Aligner (ours) |" in (report_path.parent / "report_streaming.md").read_text()
