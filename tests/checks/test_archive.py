"""checks/archive.py: a .nemo save that meets a full disk leaves the previous model whole and loadable.

Measured before atomic saves: ``OSError: [Errno 28] No space left on device`` from ``tarfile`` inside NeMo's
save, ``X.nemo`` truncated (``tarfile.ReadError: unexpected end of data`` on the next load), the previous model
only at NeMo's backup name ``X-v1.nemo``.
"""

import errno
from pathlib import Path

import pytest
from nemo.core.connectors.save_restore_connector import SaveRestoreConnector

from conftest import tiny_cfg
from nemo_aligner_plugin import AlignerEncoderModel, checks

NEMO_NAME = "AlignerEncoder-Conformer-BPE"


@pytest.fixture
def saved_model(tmp_path, tokenizer_dir):
    model = AlignerEncoderModel(tiny_cfg(tokenizer_dir).model)
    path = tmp_path / "ckpt" / f"{NEMO_NAME}.nemo"
    model.save_to(str(path))
    return model, path


def disk_fills_up(monkeypatch):
    """The tar write of the next .nemo stops half-way with ENOSPC, as on a full disk."""

    def write_half_then_fail(filename, source_dir):
        Path(filename).write_bytes(b"\0" * 4096)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(SaveRestoreConnector, "_make_nemo_file_from_folder", staticmethod(write_half_then_fail))


@pytest.mark.unit
def test_disk_full_on_save_keeps_the_previous_nemo(saved_model, monkeypatch):
    model, path = saved_model
    previous = path.read_bytes()
    disk_fills_up(monkeypatch)
    with pytest.raises(OSError) as err:
        model.save_to(str(path))
    assert err.value.errno == errno.ENOSPC
    assert f"No space left on device while writing {path} (" in str(err.value)
    assert f"Nothing was half-written; the previous model is {path}." in str(err.value)
    assert path.read_bytes() == previous and sorted(p.name for p in path.parent.iterdir()) == [path.name]
    checks.check_nemo_archive(path)


@pytest.mark.unit
def test_disk_full_in_nemo_checkpoint_callback_flow(saved_model, monkeypatch):
    """NeMoModelCheckpoint renames X.nemo to X-v1.nemo, then saves X.nemo: X.nemo must stay loadable."""
    model, path = saved_model
    backup = path.with_name(f"{NEMO_NAME}-v1.nemo")
    path.rename(backup)  # what _backup_existing_nemo_ckpt does
    disk_fills_up(monkeypatch)
    with pytest.raises(OSError, match=f"the previous model is {path}"):
        model.save_to(str(path))
    monkeypatch.undo()
    assert path.read_bytes() == backup.read_bytes()
    assert AlignerEncoderModel.restore_from(str(path)).cfg.nemo_aligner_plugin_version
