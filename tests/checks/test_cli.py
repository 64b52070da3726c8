"""checks/cli.py and ``python -m nemo_aligner_plugin.checks``: printed problems, exit status, no runpy warning."""

import subprocess
import sys

import fault_helpers
import pytest
import soundfile as sf
from fault_helpers import output, subprocess_env, write_manifest

from conftest import REPO
from nemo_aligner_plugin import checks

messy_audio = fault_helpers.messy_audio  # the fixture


def entry(path, text="ab", duration=None):
    return {"audio_filepath": path, "duration": duration or sf.info(path).duration, "text": text}


@pytest.mark.unit
def test_cli_reports_and_exits_nonzero(tmp_path, messy_audio, capsys):
    good = write_manifest(tmp_path / "good.json", [entry(messy_audio["ref"]), entry(messy_audio["rate48k"])])
    bad = write_manifest(tmp_path / "bad.json", [entry(messy_audio["ref"]), entry(messy_audio["empty"], "x", 1.0)])
    assert checks.main([str(good), "--audio"]) == 0
    assert checks.main([str(good), "--audio", "--strict"]) == 1  # the 48 kHz warning
    assert checks.main([str(good)]) == 0
    capsys.readouterr()
    assert checks.main([str(good), str(bad), "--audio"]) == 1
    printed = capsys.readouterr().out.splitlines()
    assert printed == [
        f"{good}:2: warning: 48000 Hz audio, resampled to 16000 Hz when loaded",
        f"{good}: 2 lines, 0.00 h, 0 errors, 1 warnings, 0 empty transcripts",
        f"{bad}:2: audio file is empty (0 bytes): {messy_audio['empty']}",
        f"{bad}: 2 lines, 0.00 h, 1 errors, 0 warnings, 0 empty transcripts",
    ]


@pytest.mark.unit
def test_module_entry_point_as_a_user_runs_it(tmp_path, messy_audio, trained_nemo):
    """Before: every run printed "RuntimeWarning: 'nemo_aligner_plugin.checks' found in sys.modules after import
    of package 'nemo_aligner_plugin', but prior to execution" (the package imported the module -m then ran)."""
    bad = write_manifest(tmp_path / "bad.json", [entry(messy_audio["ref"]), entry(messy_audio["empty"], "x", 1.0)])
    proc = subprocess.run(
        [sys.executable, "-m", "nemo_aligner_plugin.checks", str(bad), str(trained_nemo), "--audio"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=subprocess_env(),
        timeout=300,
    )
    assert proc.returncode == 1, output(proc)
    assert proc.stdout.splitlines() == [
        f"{bad}:2: audio file is empty (0 bytes): {messy_audio['empty']}",
        f"{bad}: 2 lines, 0.00 h, 1 errors, 0 warnings, 0 empty transcripts",
        f"{trained_nemo}: complete .nemo archive",
    ]
    assert "RuntimeWarning" not in proc.stderr and "found in sys.modules" not in proc.stderr, output(proc)
