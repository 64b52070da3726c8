"""benchmarks/onnx_bench.py --quick runs every system on both models and reports every row and target.

The quick run uses a tiny random paper-size model and, as the demo models, the tests' tiny trained aligner with a
random tiny RNN-T, so its timings mean nothing. What is tested: each system runs in its own process, the ONNX and
sherpa-onnx processes never import torch, the forcing makes every system emit the forced token counts end to end
(exported encoders included), our fp32 export gives PyTorch's tokens, and the report has every row and target.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import REPO, tiny_cfg

pytest.importorskip("sherpa_onnx", reason="sherpa-onnx is not installed (pip install sherpa-onnx==2.0.1)")
pytest.importorskip("onnxruntime")

BENCHMARKS = REPO / "benchmarks"


def system_labels() -> list[str]:
    """The system rows, read from benchmarks/onnx_bench.py as its own folder imports it."""
    code = "import onnx_bench; print('\\n'.join(s.label for s in onnx_bench.SYSTEMS))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=BENCHMARKS, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.split("\n")[:-1]


def random_rnnt_nemo(tokenizer_dir: Path, path: Path) -> Path:
    """A random NeMo RNN-T with the tiny aligner's encoder sizes (configs/baselines/rnnt_demo.yaml's heads)."""
    from nemo.collections.asr.models import EncDecRNNTBPEModel

    from nemo_aligner_plugin.demo.baselines import baseline_model_config

    baseline = OmegaConf.load(REPO / "configs" / "baselines" / "rnnt_demo.yaml")
    cfg = tiny_cfg(tokenizer_dir)
    cfg.head, cfg.drop_model_sections = baseline.head, baseline.drop_model_sections
    torch.manual_seed(0)
    EncDecRNNTBPEModel(baseline_model_config(cfg)).save_to(str(path))
    return path


def first_table(report: str, heading: str) -> list[dict[str, str]]:
    """The rows of the first table after ``heading``, as column name -> cell."""
    lines = report.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| "))
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[start:end]]
    return [dict(zip(cells[0], row, strict=True)) for row in cells[2:]]


@pytest.mark.unit
def test_quick_run_measures_every_system(tmp_path: Path, trained_nemo, tone_manifest, tokenizer_dir) -> None:
    rnnt = random_rnnt_nemo(tokenizer_dir, tmp_path / "rnnt.nemo")
    out = tmp_path / "onnx.md"
    args = ["--quick", "--demo-model", str(trained_nemo), "--demo-rnnt", str(rnnt), "--demo-corpus", str(tone_manifest)]
    command = [sys.executable, str(BENCHMARKS / "onnx_bench.py"), *args, "--out", str(out)]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = out.read_text()
    labels = system_labels()
    assert len(labels) == 5
    for heading in ("## Paper-size model", "## Demo model"):
        rows = first_table(report, heading)
        assert [row["system"] for row in rows] == labels, heading
        assert [row["torch imported"] for row in rows] == ["yes", "no", "no", "no", "no"], heading
        forced = ["ok"] * 5 if heading.startswith("## Paper") else ["-"] * 5
        assert [row["forced counts"] for row in rows] == forced, heading
        assert all(float(row["RTFx"]) > 0 for row in rows), heading
    targets = [line for line in report.splitlines() if line.startswith(("- PASS: ", "- FAIL: "))]
    assert len(targets) == 6
    assert targets[0].startswith("- PASS: (b) tokens identical to (a)"), targets[0]
    assert targets[-1].startswith("- PASS: check: every paper-size system emitted the forced token counts")
    assert "- command: `" in report and "sherpa-onnx 2.0.1" in report and "load average" in report
