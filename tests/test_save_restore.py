"""Save/restore and hub-style loading, each in a fresh Python process as a user would do it."""

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO

BLOCK_NETWORK = """
import socket, urllib.request
_local_retrieve = urllib.request.urlretrieve
def _refuse(*a, **k):
    raise AssertionError("network access attempted")
def _file_only(url, *a, **k):
    return _local_retrieve(url, *a, **k) if url.startswith("file:") else _refuse()
socket.socket.connect = _refuse
urllib.request.urlretrieve = _file_only
"""


TRANSCRIBE = """
import json
print(json.dumps([h.text for h in model.transcribe(FILES, batch_size=4, verbose=False)]))
"""


def run_fresh(code: str, files: list[str] | None = None, env: dict | None = None) -> list:
    """Run code in a new interpreter; with ``files`` it must bind ``model`` and we return its transcripts."""
    script = BLOCK_NETWORK + f"FILES = {files!r}\n" + textwrap.dedent(code) + (TRANSCRIBE if files else "")
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def audio_files(manifest: Path) -> list[str]:
    return [json.loads(line)["audio_filepath"] for line in manifest.read_text().splitlines()]


@pytest.fixture(scope="module")
def expected(tone_manifest) -> list[str]:
    return [json.loads(line)["text"] for line in tone_manifest.read_text().splitlines()]


@pytest.mark.unit
def test_plugin_class_restore_in_fresh_process(trained_nemo, tone_manifest, expected):
    texts = run_fresh(
        f"""
        import json
        from nemo_aligner_plugin import AlignerEncoderModel
        model = AlignerEncoderModel.restore_from({str(trained_nemo)!r})
    """,
        files=audio_files(tone_manifest),
    )
    assert texts == expected


@pytest.mark.unit
def test_generic_asrmodel_restore_after_plugin_import(trained_nemo, tone_manifest, expected):
    texts = run_fresh(
        f"""
        import json
        import nemo_aligner_plugin
        from nemo.collections.asr.models import ASRModel
        model = ASRModel.restore_from({str(trained_nemo)!r})
        assert type(model).__name__ == "AlignerEncoderModel", type(model)
    """,
        files=audio_files(tone_manifest),
    )
    assert texts == expected


@pytest.mark.unit
def test_nemo_transcribe_utils_setup_model_without_explicit_import(trained_nemo, tone_manifest, expected):
    """NeMo's transcribe_speech.py path: the class path in the .nemo imports the plugin by itself."""
    texts = run_fresh(
        f"""
        import json, sys
        from omegaconf import OmegaConf
        from nemo.collections.asr.parts.utils.transcribe_utils import setup_model
        from nemo.collections.asr.parts.submodules.rnnt_decoding import RNNTDecodingConfig
        assert "nemo_aligner_plugin" not in sys.modules
        cfg = OmegaConf.create({{"model_path": {str(trained_nemo)!r}, "pretrained_name": None}})
        model, _ = setup_model(cfg, "cpu")
        model.change_decoding_strategy(OmegaConf.structured(RNNTDecodingConfig(fused_batch_size=-1)))
    """,
        files=audio_files(tone_manifest),
    )
    assert texts == expected


@pytest.mark.unit
def test_from_pretrained_offline_from_seeded_nemo_cache(trained_nemo, tone_manifest, expected, tmp_path):
    """A catalog entry with a remote URL is served from a pre-filled NEMO_CACHE_DIR; the network is blocked."""
    name, location, description = (
        "aligner_tiny_tones",
        "https://models.example.org/aligner/aligner_tiny_tones.nemo",
        "tiny",
    )
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(json.dumps([{"name": name, "location": location, "description": description}]))
    cache = tmp_path / "nemo_cache"
    seeded = cache / name / hashlib.md5((location + description).encode()).hexdigest() / f"{name}.nemo"
    seeded.parent.mkdir(parents=True)
    seeded.write_bytes(trained_nemo.read_bytes())
    texts = run_fresh(
        f"""
        import json
        from nemo_aligner_plugin import AlignerEncoderModel
        names = [m.pretrained_model_name for m in AlignerEncoderModel.list_available_models()]
        assert names == [{name!r}], names
        model = AlignerEncoderModel.from_pretrained({name!r})
        """,
        files=audio_files(tone_manifest),
        env={"NEMO_CACHE_DIR": str(cache), "NEMO_ALIGNER_CATALOG": str(catalog)},
    )
    assert texts == expected


@pytest.mark.unit
def test_registered_file_location_works_offline(trained_nemo, tone_manifest, expected, tmp_path):
    texts = run_fresh(
        f"""
        import json
        from nemo_aligner_plugin import AlignerEncoderModel, register_pretrained_model
        from nemo.collections.asr.models import ASRModel
        register_pretrained_model("team_aligner", {trained_nemo.resolve().as_uri()!r}, "shared-filesystem model")
        assert "team_aligner" in [m.pretrained_model_name for m in ASRModel.list_available_models()]
        model = AlignerEncoderModel.from_pretrained("team_aligner")
        """,
        files=audio_files(tone_manifest),
        env={"NEMO_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert texts == expected


@pytest.mark.unit
def test_import_adds_exactly_the_plugin_prefix_once():
    out = run_fresh("""
        import json
        from nemo.core.classes import common
        before = list(common.ALLOWED_TARGET_PREFIXES)
        import nemo_aligner_plugin
        from nemo_aligner_plugin.integration.registration import register_with_nemo
        register_with_nemo(); register_with_nemo()
        after = list(common.ALLOWED_TARGET_PREFIXES)
        print(json.dumps([p for p in after if p not in before] + [str(len(after) - len(before))]))
    """)
    assert out == ["nemo_aligner_plugin.", "1"]
