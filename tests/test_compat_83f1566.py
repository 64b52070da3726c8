"""A ``.nemo`` saved by commit 83f1566 (long-form ``enabled: false``) restores through NeMo's ``ASRModel.restore_from``
in a fresh interpreter and transcribes to the same texts and tokens, greedy and beam."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "compat_83f1566"

# Run in a fresh interpreter, as the README's snippet does: import the plugin (it registers with NeMo), then
# NeMo's ASRModel resolves the target the archive names.
_SCRIPT = """
import json, sys
from omegaconf import OmegaConf
import nemo_aligner_plugin  # registers the plugin with NeMo
from nemo.collections.asr.models import ASRModel

fixture = sys.argv[1]
expected = json.load(open(f"{fixture}/expected.json"))
files = [f"{fixture}/{name}" for name in expected["files"]]
model = ASRModel.restore_from(f"{fixture}/tiny_aligner_83f1566.nemo", map_location="cpu").eval()
out = {"class": type(model).__name__, "longform_enabled": model.cfg.longform.enabled}
for strategy in ("greedy_batch", "beam"):
    decoding = OmegaConf.to_container(model.cfg.decoding)
    model.change_decoding_strategy({**decoding, "strategy": strategy}, verbose=False)
    hyps = model.transcribe(files, batch_size=4, return_hypotheses=True, verbose=False)
    out[strategy] = [h.text for h in hyps]
    out[strategy + "_tokens"] = [h.y_sequence.tolist() for h in hyps]
print("RESULT " + json.dumps(out))
"""


@pytest.mark.unit
def test_model_saved_by_83f1566_transcribes_as_it_did():
    expected = json.loads((FIXTURE / "expected.json").read_text())
    run = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(FIXTURE)], capture_output=True, text=True, timeout=600, check=False
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stderr[-3000:]
    got = json.loads(lines[-1][len("RESULT ") :])
    assert got["class"] == "AlignerEncoderModel" and got["longform_enabled"] is False
    for key in ("greedy_batch", "greedy_batch_tokens", "beam", "beam_tokens"):
        assert got[key] == expected[key], key
