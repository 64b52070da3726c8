"""Loading .nemo files that are cut short, lack their tokenizer, name unsafe classes, come from another plugin
version, or must load with no network.

Measured before the checks:
- truncated .nemo: ``tarfile.ReadError: unexpected end of data`` (no file name, no hint);
- tokenizer file missing from the archive: ``AlignerEncoderModel.restore_from`` raises NeMo's "Artifact not found
  at expected path: /tmp/tmpXXXX/<hash>_tokenizer.model"; ``ASRModel.restore_from`` logs that and then raises a
  misleading ``TypeError: Can't instantiate abstract class ASRModel``;
- unsafe targets: refused by NeMo's ``UnsafeTargetError`` after the plugin import (kept: tested below);
- no plugin version is recorded in the config;
- HF id with ``HF_HUB_OFFLINE=1``: served from a pre-filled HF cache, or ``OfflineModeIsEnabled`` naming the URL.
"""

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap

import pytest
import yaml
from fault_helpers import subprocess_env
from nemo.collections.asr.models import ASRModel
from nemo.core.classes.common import ALLOWED_TARGET_PREFIXES, UnsafeTargetError
from nemo.utils import logging

from conftest import REPO
from nemo_aligner_plugin import AlignerEncoderModel, checks
from nemo_aligner_plugin.checks.archive import _compatible


def rewrite_nemo(source, target, edit_config=None, drop=lambda name: False):
    """Copy a .nemo archive, editing its model_config.yaml and dropping members."""
    with tarfile.open(source) as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]
    with tarfile.open(target, "w:") as out:
        for member, data in members:
            if drop(member.name):
                continue
            if member.name.endswith("model_config.yaml") and edit_config is not None:
                config = yaml.safe_load(data)
                edit_config(config)
                data = yaml.safe_dump(config).encode()
                member.size = len(data)
            out.addfile(member, io.BytesIO(data) if data is not None else None)
    return target


@pytest.mark.unit
def test_truncated_nemo_named_with_the_previous_copy(tmp_path, trained_nemo, monkeypatch):
    path = tmp_path / "model.nemo"
    shutil.copy(trained_nemo, path)
    os.truncate(path, os.path.getsize(path) * 6 // 10)
    with pytest.raises(
        ValueError, match=r"model.nemo is not a complete .nemo archive \(.*disk filled up\. The .ckpt files"
    ):
        checks.check_nemo_archive(path)
    shutil.copy(trained_nemo, tmp_path / "model-v1.nemo")  # what NeMo's checkpoint callback keeps
    with pytest.raises(ValueError, match=f"A previous copy: {tmp_path / 'model-v1.nemo'}"):
        AlignerEncoderModel.restore_from(str(path))
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="is not a complete .nemo archive"):
        checks.check_nemo_archive(path)
    assert checks.main([str(path)]) == 1 and checks.main([str(trained_nemo)]) == 0


@pytest.mark.unit
def test_missing_tokenizer_file_named(tmp_path, trained_nemo, monkeypatch):
    path = rewrite_nemo(
        trained_nemo, tmp_path / "no_tokenizer.nemo", drop=lambda name: name.endswith("_tokenizer.model")
    )
    with pytest.raises(ValueError) as err:
        AlignerEncoderModel.restore_from(str(path))
    assert str(err.value).startswith(f"{path}: the config's tokenizer.model_path refers to ")
    assert "_tokenizer.model, which is not in the archive" in str(err.value)


UNSAFE = {
    "foreign class": lambda c: c.update(target="subprocess.Popen"),
    "foreign function in a module": lambda c: c["preprocessor"].update(_target_="os.system"),
    "look-alike prefix": lambda c: c.update(target="nemo_aligner_plugin_evil.Model"),
    "plugin function": lambda c: c["preprocessor"].update(_target_="nemo_aligner_plugin.tokenizer.train_bpe_tokenizer"),
    "plugin class that is no module": lambda c: c["encoder"].update(_target_="nemo_aligner_plugin.checks.Problem"),
}


@pytest.mark.unit
@pytest.mark.parametrize("case", list(UNSAFE))
def test_unsafe_targets_stay_refused_after_the_plugin_import(tmp_path, trained_nemo, case):
    assert [p for p in ALLOWED_TARGET_PREFIXES if "aligner" in p] == ["nemo_aligner_plugin."]
    path = rewrite_nemo(trained_nemo, tmp_path / "unsafe.nemo", edit_config=UNSAFE[case])
    for loader in (ASRModel, AlignerEncoderModel):
        with pytest.raises(UnsafeTargetError, match="is blocked"):
            loader.restore_from(str(path))


@pytest.mark.unit
def test_plugin_version_recorded_and_compared(tmp_path, tokenizer_dir, monkeypatch):
    from conftest import tiny_cfg

    warned = []  # the plugin's version warnings (NeMo's logger: it carries NeMo's warnings too)
    monkeypatch.setattr(logging, "warning", lambda m: warned.append(m) if "nemo_aligner_plugin" in m else None)
    current = checks.plugin_version_stamp(None)
    assert warned == [] and current.count(".") >= 1
    major, minor = current.split(".")[:2]
    assert checks.plugin_version_stamp(f"{major}.{minor}.99") == current and warned == []
    checks.plugin_version_stamp("9.0.0")
    assert warned[-1].startswith(f"This model was saved by nemo_aligner_plugin 9.0.0; this is {current}.")
    assert not _compatible("0.1.0", "0.2.0") and _compatible("1.2.0", "1.9.1")

    path = tmp_path / "model.nemo"
    AlignerEncoderModel(tiny_cfg(tokenizer_dir).model).save_to(str(path))
    old = rewrite_nemo(path, tmp_path / "old.nemo", edit_config=lambda c: c.update(nemo_aligner_plugin_version="0.0.1"))
    warned.clear()
    assert AlignerEncoderModel.restore_from(str(path)).cfg.nemo_aligner_plugin_version == current and warned == []
    assert AlignerEncoderModel.restore_from(str(old)).cfg.nemo_aligner_plugin_version == current
    assert len(warned) == 1 and "saved by nemo_aligner_plugin 0.0.1" in warned[0]


OFFLINE = """
import json, socket, urllib.request
def refuse(*a, **k):
    raise AssertionError("network access attempted")
socket.socket.connect = refuse
socket.getaddrinfo = refuse
urllib.request.urlretrieve = refuse
from nemo_aligner_plugin import AlignerEncoderModel
model = AlignerEncoderModel.from_pretrained("someorg/aligner-tiny")
try:
    AlignerEncoderModel.from_pretrained("someorg/not-cached")
    missing = "loaded?!"
except Exception as err:
    missing = f"{type(err).__name__}: {err}"
print(json.dumps({"loaded": type(model).__name__, "missing": missing}))
"""


@pytest.mark.unit
def test_hf_id_loads_offline_from_a_seeded_cache_without_network(tmp_path, trained_nemo):
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "hub" / "models--someorg--aligner-tiny"
    (repo / "snapshots" / revision).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    shutil.copy(trained_nemo, repo / "snapshots" / revision / "aligner-tiny.nemo")
    env = subprocess_env({"HF_HOME": str(tmp_path / "hf"), "NEMO_CACHE_DIR": str(tmp_path / "n")})
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(OFFLINE)], capture_output=True, text=True, cwd=REPO, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["loaded"] == "AlignerEncoderModel"
    assert result["missing"].startswith("OfflineModeIsEnabled: Cannot reach https://huggingface.co/someorg/not-cached")
    assert "network access attempted" not in proc.stdout + proc.stderr
