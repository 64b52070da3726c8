"""A working directory where the file names the documentation uses exist, made of tiny tone-speech stand-ins.

The docs' commands run there as written: ``model.nemo`` is a tiny trained aligner, ``a.wav`` a tone utterance,
``train.json`` a tone manifest, ``conformer_ctc.nemo`` a tiny NeMo CTC Conformer, and so on (``PLACEHOLDERS``).
The hub names the docs use resolve offline to the tiny CTC model through pre-filled NeMo and Hugging Face caches,
the way a pre-filled cache serves any user without network access.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from omegaconf import OmegaConf, open_dict

from conftest import CONFIGS, REPO, SAMPLE_RATE, TINY_ARCH_OVERRIDES, tiny_cfg

# name the docs use -> what stands in for it (files and folders in the sandbox)
PLACEHOLDERS = {
    "model.nemo": "the tiny aligner of tests/conftest.py (trained_nemo), with the train_durations training records",
    "a.wav, b.wav, utt.wav": "tone utterances of the test corpus",
    "talk.wav": "four tone utterances joined with 0.5 s pauses (longer than any training utterance)",
    "train.json, dev.json, test.json": "the tone manifest",
    "long.json, dev_long.json": "a manifest of talk.wav",
    "noise.json": "a manifest of one 3 s white-noise file (non-speech audio)",
    "model_onnx": "model.nemo exported for the torch-free runtime (model.export(dir), docs/onnx.md)",
    "chunkwise.nemo": "a tiny untrained Chunkwise Aligner (aligner_type=chunkwise, 4-frame chunks; docs/streaming.md)",
    "tokenizers/bpe1024, tokenizers/my_bpe256": "tone tokenizers (24 and 16 pieces)",
    "conformer_ctc.nemo, x.nemo, stt_en_conformer_ctc_large.nemo": "a tiny NeMo CTC Conformer",
    "stt_en_conformer_ctc_large, nvidia/stt_en_fastconformer_ctc_large": "the tiny CTC model, in the caches",
    "recipes/, configs/, benchmarks/": "links to the repository's folders",
}
# text in a command that names something the reader fills in -> what the test fills in
TEXT_SUBSTITUTIONS = {
    "<its tokenizer dir>": "tokenizers/bpe1024",
    "/tmp/demo_smoke": "demo_smoke",
    "checks FILE": "checks train.json",  # troubleshooting.md's table
    "checks X.nemo": "checks model.nemo",
}
# appended to the training recipes' commands: the tiny model of tests/conftest.py, two steps on the CPU
TRAINING_OVERRIDES = [
    *TINY_ARCH_OVERRIDES,
    "trainer.max_steps=2",
    "trainer.max_epochs=-1",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "model.train_ds.batch_size=4",
    "model.train_ds.num_workers=0",
    "model.validation_ds.num_workers=0",
    "exp_manager.exp_dir=exp",
    "exp_manager.create_tensorboard_logger=false",
]
TRAINING_SCRIPTS = ("recipes/train_aligner.py", "recipes/finetune_aligner.py")
HF_ID = "nvidia/stt_en_fastconformer_ctc_large"
NEMO_NAME = "stt_en_conformer_ctc_large"


def tiny_ctc_cfg(tokenizer_dir: Path):
    """A NeMo CTC Conformer config with finetune_from_conformer.yaml's encoder shrunk by TINY_ARCH_OVERRIDES, so
    that route 2 (the YAML's encoder + init_from_nemo_model) takes its weights exactly."""
    cfg = OmegaConf.load(CONFIGS / "finetune_from_conformer.yaml")
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(TINY_ARCH_OVERRIDES))
    OmegaConf.resolve(cfg)
    decoder = {"_target_": "nemo.collections.asr.modules.ConvASRDecoder", "feat_in": cfg.model.encoder.d_model}
    return OmegaConf.create(
        {
            "sample_rate": SAMPLE_RATE,
            "tokenizer": {"dir": str(tokenizer_dir), "type": "bpe"},
            "preprocessor": cfg.model.preprocessor,
            "encoder": cfg.model.encoder,
            "decoder": {**decoder, "num_classes": -1, "vocabulary": []},
            "train_ds": None,
            "validation_ds": None,
            "test_ds": None,
        }
    )


def _joined_wav(entries: list[dict], path: Path) -> str:
    pause = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
    pieces = []
    for entry in entries:
        pieces += [sf.read(entry["audio_filepath"], dtype="float32")[0], pause]
    audio = np.concatenate(pieces[:-1])
    sf.write(path, audio, SAMPLE_RATE)
    return json.dumps(
        {
            "audio_filepath": str(path),
            "duration": audio.size / SAMPLE_RATE,
            "text": " ".join(e["text"] for e in entries),
        }
    )


def _prefill_caches(root: Path, ctc: Path) -> dict[str, str]:
    """NeMo's and Hugging Face's caches holding the tiny CTC model under the docs' hub names; their env vars."""
    from nemo.collections.asr.models import EncDecCTCModelBPE

    info = next(m for m in EncDecCTCModelBPE.list_available_models() if m.pretrained_model_name == NEMO_NAME)
    subfolder = hashlib.md5((info.location + info.description).encode("utf-8")).hexdigest()  # as NeMo's cache
    nemo_file = root / "nemo_cache" / NEMO_NAME / subfolder / Path(info.location).name
    nemo_file.parent.mkdir(parents=True)
    shutil.copy(ctc, nemo_file)
    repo = root / "hf_cache" / f"models--{HF_ID.replace('/', '--')}"
    revision = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    shutil.copy(ctc, snapshot / f"{HF_ID.split('/')[-1]}.nemo")
    return {
        "NEMO_CACHE_DIR": str(root / "nemo_cache"),
        "HF_HUB_CACHE": str(root / "hf_cache"),
        "HF_HUB_OFFLINE": "1",
    }


def build_sandbox(root: Path, trained_nemo: Path, tone_manifest: Path, tokenizer_dir: Path, texts: list[str]):
    """Fill ``root`` with the PLACEHOLDERS; return the environment the commands run with."""
    import torch
    from nemo.collections.asr.models import EncDecCTCModelBPE

    from nemo_aligner_plugin import AlignerEncoderModel
    from nemo_aligner_plugin.integration.data import train_durations
    from nemo_aligner_plugin.tokenizer import train_bpe_tokenizer

    for folder in ("recipes", "configs", "benchmarks"):
        (root / folder).symlink_to(REPO / folder)
    (root / "tokenizers").mkdir()
    (root / "tokenizers" / "bpe1024").symlink_to(tokenizer_dir)
    train_bpe_tokenizer(texts, root / "tokenizers" / "my_bpe256", vocab_size=16)

    entries = [json.loads(line) for line in tone_manifest.read_text().splitlines()]
    for name in ("train.json", "dev.json", "test.json"):
        shutil.copy(tone_manifest, root / name)
    for name, entry in zip(("a.wav", "b.wav", "utt.wav"), entries[:3], strict=True):
        shutil.copy(entry["audio_filepath"], root / name)
    long_line = _joined_wav(entries[:4], root / "talk.wav")
    for name in ("long.json", "dev_long.json"):
        (root / name).write_text(long_line + "\n")
    noise = np.random.default_rng(0).normal(0.0, 0.01, 3 * SAMPLE_RATE).astype(np.float32)
    sf.write(root / "noise.wav", noise, SAMPLE_RATE)
    (root / "noise.json").write_text(json.dumps({"audio_filepath": str(root / "noise.wav"), "duration": 3.0}) + "\n")

    model = AlignerEncoderModel.restore_from(str(trained_nemo), map_location="cpu")
    train_ds = OmegaConf.merge(model.cfg.train_ds, {"manifest_filepath": str(tone_manifest)})
    with open_dict(model.cfg):  # as training writes it
        model.cfg.train_durations = OmegaConf.structured(train_durations(train_ds))
    model.save_to(str(root / "model.nemo"))
    model.export(str(root / "model_onnx"))

    torch.manual_seed(0)
    chunkwise = {"aligner_type": "chunkwise", "preprocessor": {"normalize": "NA"}, "aux_ctc": {"layer": 0}}
    chunkwise_cfg = tiny_cfg(tokenizer_dir, "aligner_demo", model={**chunkwise, "chunkwise": {"chunk_size": 4}})
    AlignerEncoderModel(chunkwise_cfg.model).save_to(str(root / "chunkwise.nemo"))
    EncDecCTCModelBPE(tiny_ctc_cfg(tokenizer_dir)).save_to(str(root / "conformer_ctc.nemo"))
    for name in ("x.nemo", f"{NEMO_NAME}.nemo"):
        (root / name).symlink_to(root / "conformer_ctc.nemo")
    return _prefill_caches(root / "caches", root / "conformer_ctc.nemo")


class Zygote:
    """Client of zygote.py: runs each command in a forked child of one process that has NeMo imported."""

    def __init__(self, env: dict[str, str]):
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("zygote.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **env, "OMP_NUM_THREADS": "1"},
        )

    def _reply(self, timeout: float) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"zygote.py died (exit code {self.proc.wait()})")
        return json.loads(line)

    def run(self, request: dict, timeout: float) -> int:
        """Send one request; return the child's exit code (the child is killed after ``timeout`` seconds)."""
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        pid = self._reply(60)["pid"]
        try:
            return self._reply(timeout)["rc"]
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            self._reply(60)
            raise TimeoutError(f"killed after {timeout} s") from None

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
