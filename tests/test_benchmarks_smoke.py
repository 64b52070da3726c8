"""benchmarks/run.py --quick runs end to end and reports every row.

The quick run uses tiny models, so its numbers mean nothing; what is tested is that every system builds, that the
forcing makes each decoder emit the intended number of tokens (run.py raises otherwise), and that the report has
every table row the full run would have.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"


def expected_rows() -> list[str]:
    """Every row name the full report has, read from benchmarks/run.py as its own folder imports it."""
    code = (
        "import run; print('\\n'.join([run.ENCODER, *run.INFER_ROWS, *run.FLOOR_ROWS, *run.TRAIN_ROWS, "
        "*run.SCALING_ROWS, *run.TARGET_ROWS]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=BENCHMARKS, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [line for line in proc.stdout.splitlines() if line]


@pytest.mark.unit
def test_quick_run_reports_every_row(tmp_path: Path) -> None:
    out = tmp_path / "quick.md"
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run.py"), "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = out.read_text()
    rows = expected_rows()
    table_rows = {line.split("|")[1].strip() for line in report.splitlines() if line.startswith("| ")}
    missing = [row for row in rows if row not in table_rows]
    assert not missing, f"rows missing from the report: {missing}"
    for batch in (1, 2):
        assert f"### B={batch}" in report
    assert "n/a (section not run)" not in report
    assert "- command: `" in report and "torch " in report and "load average" in report


@pytest.mark.unit
def test_longform_split_benchmark_times_each_setting_against_the_search_off(trained_nemo, tone_manifest):
    def bench(*args: str) -> subprocess.CompletedProcess:
        script = str(BENCHMARKS / "longform_split.py")
        return subprocess.run([sys.executable, script, *args], cwd=REPO, capture_output=True, text=True, timeout=600)

    proc = bench(
        *["--model", str(trained_nemo), "--manifest", str(tone_manifest), "--rounds", "1"],
        *["--split-margin", "0", "--split-min-seconds", "1.6", "--longform", "chunk_seconds=1.0"],
        *["--longform", "boundary=every_pause"],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    rows = [line for line in out.splitlines() if line.startswith("| ") and "WER" not in line]
    assert len(rows) == 2 and rows[0].startswith("| None | - |") and "| 1.00x |" in rows[0]
    assert rows[1].startswith("| 0.0 | 1.6 |")
    bad = bench("--model", "m", "--manifest", "x", "--longform", "chunk_seconds")
    assert bad.returncode == 2 and "--longform chunk_seconds: expected KEY=VALUE" in bad.stderr
