"""What transcribe() prints (issue 25 item 12): at most one progress bar with a total, no NeMo config dumps."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "compat_83f1566"
SCRIPT = """
import glob, sys
import nemo_aligner_plugin
from nemo.collections.asr.models import ASRModel

def mark(text):
    print(text, flush=True)
    sys.stderr.write(text + "\\n")
    sys.stderr.flush()

model = ASRModel.restore_from(sys.argv[1])
files = sorted(glob.glob(sys.argv[2] + "/*.wav")) * 2
for verbose in (False, True):
    mark(f"=== verbose={verbose}")
    model.transcribe(files, batch_size=4, verbose=verbose)
    model.change_decoding_strategy({"strategy": "beam"}, verbose=False)
    model.transcribe(files, batch_size=4, verbose=verbose, timestamps=True)
    model.change_decoding_strategy({"strategy": "greedy_batch"}, verbose=False)
mark("=== done")
"""


@pytest.fixture(scope="module")
def printed() -> dict[str, tuple[list[str], list[str]]]:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(FIXTURE / "tiny_aligner_83f1566.nemo"), str(FIXTURE)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    sections = {}
    for name in ("restore", "verbose=False", "verbose=True"):
        sections[name] = []
    for stream in (out.stdout, out.stderr):
        parts = stream.replace("\r", "\n").split("=== ")
        for name, part in zip(("restore", "verbose=False", "verbose=True"), parts, strict=False):
            lines = [line for line in part.splitlines() if line.strip()]
            sections[name].append(lines[1:] if name != "restore" else lines)
    return {name: tuple(streams) for name, streams in sections.items()}


@pytest.mark.unit
def test_restore_dumps_no_dataset_configs(printed):
    stdout, stderr = printed["restore"]
    assert not [line for line in stdout + stderr if "manifest_filepath" in line or "setup_training_data" in line]


@pytest.mark.unit
def test_quiet_transcription_prints_nothing(printed):
    stdout, stderr = printed["verbose=False"]
    assert stdout == [] and stderr == [], (stdout, stderr)


@pytest.mark.unit
def test_verbose_transcription_shows_only_progress_bars_with_a_total(printed):
    stdout, stderr = printed["verbose=True"]
    assert stdout == [] and all(line.startswith("Transcribing") for line in stderr), (stdout, stderr)
    assert any("4/4" in line for line in stderr)  # 14 files in batches of 4: the bar knows its total


@pytest.mark.unit
def test_nested_quiet_blocks_keep_the_outer_one():
    import logging

    from nemo_aligner_plugin.nemo_logs import quiet_nemo

    nemo_logger = logging.getLogger("nemo_logger")
    record = logging.LogRecord("nemo_logger", logging.WARNING, __file__, 1, "noise", None, None)
    with quiet_nemo():
        with quiet_nemo():
            pass
        assert not nemo_logger.filter(record)  # the inner block's exit must not lift the outer filter
    assert nemo_logger.filter(record)
