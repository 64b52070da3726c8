"""`make demo`'s pipeline end to end on a tiny corpus and model (the full demo is not part of CI)."""

import json
import shutil
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.unit
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install espeak-ng)")
def test_demo_smoke_writes_a_complete_report(tmp_path):
    proc = subprocess.run(
        [sys.executable, "recipes/run_demo.py", "--work-dir", str(tmp_path), "--smoke"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    reports = list(tmp_path.rglob("report.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    assert report["training"]["global_step"] == 6
    assert set(report["splits"]) == {"dev", "test", "test_long"}
    for split in report["splits"].values():
        assert split["utterances"] > 0 and split["wer"] >= 0.0 and split["wer_by_words"]
    assert (reports[0].parent / "report.md").read_text().startswith("# Aligner-Encoder demo report")
    assert "report:" in proc.stdout
