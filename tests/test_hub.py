"""save_pretrained: a Hugging Face-layout folder that NeMo's from_pretrained loads back offline."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from huggingface_hub import ModelCard

from conftest import REPO
from nemo_aligner_plugin import AlignerEncoderModel
from nemo_aligner_plugin.integration.hub import config_summary

LOAD = """
import json, socket, sys
def refuse(*a, **k):
    raise AssertionError("network access attempted")
socket.socket.connect = refuse
socket.getaddrinfo = refuse
from nemo_aligner_plugin import AlignerEncoderModel
model = AlignerEncoderModel.from_pretrained("someorg/aligner-tiny")
print(json.dumps([h.text for h in model.transcribe(sys.argv[1:], batch_size=4, verbose=False)]))
"""


@pytest.mark.unit
def test_export_loads_back_through_from_pretrained_offline(tmp_path, trained_nemo, tone_manifest):
    model = AlignerEncoderModel.restore_from(str(trained_nemo), map_location="cpu")
    out = model.save_pretrained(tmp_path / "export", repo_id="someorg/aligner-tiny", metrics={"test WER": 0.125})
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "aligner-tiny.nemo", "model_config.yaml"]

    card = ModelCard.load(out / "README.md")  # the hub's own parser reads the front matter
    assert card.data.library_name == "nemo" and "aligner-encoder" in card.data.tags
    text = card.text
    enc = model.cfg.encoder
    assert f"{enc.n_layers} layers, d_model {enc.d_model}" in text
    assert f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M" in text
    assert "| test WER | 0.125 |" in text and 'from_pretrained("someorg/aligner-tiny")' in text

    # push = upload the folder; a hub download lands in the HF cache layout: load it from there, no network
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "hub" / "models--someorg--aligner-tiny"
    shutil.copytree(out, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    audio = [json.loads(line)["audio_filepath"] for line in tone_manifest.read_text().splitlines()]
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "NEMO_CACHE_DIR": str(tmp_path / "n")}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(LOAD), *audio],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **env},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded == [h.text for h in model.transcribe(audio, batch_size=4, verbose=False)]


@pytest.mark.unit
def test_export_refuses_a_non_empty_folder_and_keeps_its_files(tmp_path, trained_nemo):
    model = AlignerEncoderModel.restore_from(str(trained_nemo), map_location="cpu")
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        model.save_pretrained(target)
    assert [p.name for p in target.iterdir()] == ["notes.txt"]
    model.save_pretrained(target, overwrite=True)  # replaces only the export's files
    assert (target / "notes.txt").read_text() == "keep me" and (target / "mine.nemo").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".mine.")]  # no staging folder left behind
    with pytest.raises(ValueError, match="repo_id"):
        model.save_pretrained(tmp_path / "x", repo_id="a/b/c")


@pytest.mark.unit
def test_push_to_hub_card_is_ours(trained_nemo):
    model = AlignerEncoderModel.restore_from(str(trained_nemo), map_location="cpu")
    card = str(model.generate_model_card(template_kwargs={"repo_id": "org/m"}))
    assert 'from_pretrained("org/m")' in card and "## Configuration" in card
    fields = dict(config_summary(model.cfg))
    assert fields["aligner type"] == "ar" and fields["model class"].endswith("AlignerEncoderModel")
