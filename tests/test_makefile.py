"""The README's commands go through the Makefile: every script a target runs must exist."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.unit
def test_makefile_targets_name_existing_scripts():
    text = (REPO / "Makefile").read_text()
    scripts = re.findall(r"(?:^|\s)((?:recipes|benchmarks|\.ci)/[\w./-]+)", text, flags=re.M)
    assert scripts, "expected the demo and bench targets to run scripts"
    missing = [s for s in scripts if not (REPO / s).exists()]
    assert not missing, f"Makefile runs scripts that do not exist: {missing}"
