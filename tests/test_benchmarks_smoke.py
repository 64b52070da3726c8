"""benchmarks/run.py --quick runs end to end and reports every row; the proposed greedy matches greedy_batch.

The quick run uses tiny models, so its numbers mean nothing; what is tested is that every system builds, that the
forcing makes each decoder emit the intended number of tokens (run.py raises otherwise), and that the report has
every table row the full run would have.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from nemo.collections.asr.modules import RNNTDecoder, RNNTJoint

from nemo_aligner_plugin.decoding.greedy import GreedyBatchConfig, greedy_batch

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"


def _bench_module(name: str):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(BENCHMARKS))


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
    run = _bench_module("run")
    rows = [run.ENCODER, *run.INFER_ROWS, *run.FLOOR_ROWS, *run.TRAIN_ROWS, *run.SCALING_ROWS, *run.TARGET_ROWS]
    table_rows = {line.split("|")[1].strip() for line in report.splitlines() if line.startswith("| ")}
    missing = [row for row in rows if row not in table_rows]
    assert not missing, f"rows missing from the report: {missing}"
    for batch in (1, 2):
        assert f"### B={batch}" in report
    assert "n/a (section not run)" not in report
    assert "- command: `" in report and "torch " in report and "load average" in report


def _tiny_transducer(layers: int, vocab: int) -> tuple[RNNTDecoder, RNNTJoint]:
    decoder = RNNTDecoder(prednet={"pred_hidden": 16, "pred_rnn_layers": layers}, vocab_size=vocab, blank_as_pad=True)
    joint = RNNTJoint(
        jointnet={"encoder_hidden": 8, "pred_hidden": 16, "joint_hidden": 12, "activation": "relu"}, num_classes=vocab
    )
    with torch.no_grad():
        joint.joint_net[-1].bias[vocab] += 2.5  # EOS often enough that rows stop at different steps
    # float64: the proposal computes the same function in another order, so float32 near-ties could flip an argmax
    return decoder.double().eval(), joint.double().eval()


@pytest.mark.unit
@pytest.mark.parametrize("layers", [1, 2])
def test_proposed_greedy_matches_greedy_batch(layers: int) -> None:
    fast = _bench_module("proposed_greedy").greedy_batch_fast
    torch.manual_seed(layers)
    vocab = 20
    decoder, joint = _tiny_transducer(layers, vocab)
    stops = set()
    for trial in range(30):
        batch, frames = int(torch.randint(1, 6, ())), int(torch.randint(0, 12, ()))
        enc = torch.randn(batch, frames, 8, dtype=torch.float64) * 2
        lens = torch.randint(0, frames + 1, (batch,))
        cfg = GreedyBatchConfig(max_tokens=int(torch.randint(1, 8, ())) if trial % 3 == 0 else None)
        ref, ref_state = greedy_batch(decoder, joint, enc, lens, vocab, cfg)
        new, new_state = fast(decoder, joint, enc, lens, vocab, cfg)
        ref2, ref_state2 = greedy_batch(decoder, joint, enc, lens, vocab, cfg, state=ref_state)  # carried state
        new2, new_state2 = fast(decoder, joint, enc, lens, vocab, cfg, state=new_state)
        for a, b in ((ref, new), (ref2, new2)):
            assert torch.equal(a.tokens, b.tokens)
            assert torch.equal(a.lengths, b.lengths)
            assert torch.equal(a.frames, b.frames)
            assert torch.equal(a.ended_with_eos, b.ended_with_eos)
            torch.testing.assert_close(a.scores, b.scores)
            stops.update(a.ended_with_eos.tolist())
        for a, b in ((ref_state, new_state), (ref_state2, new_state2)):
            assert torch.equal(a.last_tokens, b.last_tokens)
            for x, y in zip(a.lstm, b.lstm, strict=True):
                torch.testing.assert_close(x, y)
    assert stops == {True, False}  # both stop reasons (EOS, out of frames) were exercised
