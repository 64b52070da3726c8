"""Shared fixtures: a tone-speech corpus made in the test session and a tiny model config.

Tones stand in for speech: every character is a short sine burst at its own pitch, so a model can
only transcribe by finding, in order, which frames belong to which character -- an alignment task.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

# One intra-op thread: torch's OpenMP workers spin badly when the 2 shared cores are oversubscribed.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
import soundfile as sf
from omegaconf import OmegaConf

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
TONE_ALPHABET = "abcdefgh"
SAMPLE_RATE = 16000


def synth_tones(text: str, rng: np.random.Generator, char_s: float = 0.09, gap_s: float = 0.03) -> np.ndarray:
    """Each character a sine burst (its own pitch), spaces silence; light noise everywhere."""
    pieces = [np.zeros(int(0.05 * SAMPLE_RATE))]
    t = np.arange(int(char_s * SAMPLE_RATE)) / SAMPLE_RATE
    envelope = np.hanning(t.size)
    for ch in text:
        if ch == " ":
            pieces.append(np.zeros(int(0.08 * SAMPLE_RATE)))
            continue
        freq = 300.0 * 1.25 ** TONE_ALPHABET.index(ch)
        pieces.append(0.5 * envelope * np.sin(2 * np.pi * freq * t))
        pieces.append(np.zeros(int(gap_s * SAMPLE_RATE)))
    pieces.append(np.zeros(int(0.05 * SAMPLE_RATE)))
    audio = np.concatenate(pieces)
    return (audio + 0.003 * rng.standard_normal(audio.size)).astype(np.float32)


def random_sentence(rng: np.random.Generator, min_words: int = 2, max_words: int = 4) -> str:
    words = [
        "".join(rng.choice(list(TONE_ALPHABET), size=rng.integers(2, 4)))
        for _ in range(rng.integers(min_words, max_words + 1))
    ]
    return " ".join(words)


def write_tone_corpus(out_dir: Path, texts: list[str], seed: int = 0) -> Path:
    """Write WAVs and a NeMo manifest; return the manifest path."""
    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = out_dir / "tones_manifest.json"  # NeMo rejects the bare name manifest.json
    with manifest.open("w") as f:
        for i, text in enumerate(texts):
            audio = synth_tones(text, rng)
            path = out_dir / f"utt{i:03d}.wav"
            sf.write(path, audio, SAMPLE_RATE)
            f.write(
                json.dumps({"audio_filepath": str(path), "duration": audio.size / SAMPLE_RATE, "text": text}) + "\n"
            )
    return manifest


@pytest.fixture(scope="session")
def tone_texts() -> list[str]:
    rng = np.random.default_rng(1234)
    return [random_sentence(rng) for _ in range(40)]


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory, tone_texts) -> Path:
    from nemo_aligner_plugin.tokenizer import train_bpe_tokenizer

    out_dir = tmp_path_factory.mktemp("tokenizer")
    train_bpe_tokenizer(tone_texts, out_dir, vocab_size=24)
    return out_dir


@pytest.fixture(scope="session")
def tone_manifest(tmp_path_factory, tone_texts) -> Path:
    return write_tone_corpus(tmp_path_factory.mktemp("tones"), tone_texts[:8])


# The tiny architecture of tiny_cfg as hydra overrides, for tests that run the recipes in a subprocess.
TINY_ARCH_OVERRIDES = [
    "model.encoder.n_layers=2",
    "model.encoder.d_model=64",
    "model.encoder.n_heads=4",
    "model.encoder.ff_expansion_factor=2",
    "model.encoder.conv_kernel_size=9",
    "model.encoder.subsampling_conv_channels=32",
    "model.encoder.dropout=0.0",
    "model.encoder.dropout_pre_encoder=0.0",
    "model.encoder.dropout_att=0.0",
    "model.model_defaults.pred_hidden=64",
    "model.model_defaults.joint_hidden=64",
    "model.preprocessor.features=40",
    "model.preprocessor.dither=0.0",
    "model.spec_augment=null",
]


def tiny_cfg(tokenizer_dir: Path, config_name: str = "aligner_conformer_bpe", **overrides):
    """The shipped YAML, shrunk to a model that trains in seconds on a CPU."""
    cfg = OmegaConf.load(CONFIGS / f"{config_name}.yaml")
    small = {
        "model": {
            "tokenizer": {"dir": str(tokenizer_dir)},
            "train_ds": {"manifest_filepath": None, "num_workers": 0, "batch_size": 8},
            "validation_ds": {"num_workers": 0},
            "test_ds": {"num_workers": 0},
            "model_defaults": {"pred_hidden": 64, "joint_hidden": 64},
            "preprocessor": {"features": 40, "dither": 0.0},
            "spec_augment": None,
            "encoder": {
                "n_layers": 2,
                "d_model": 64,
                "n_heads": 4,
                "ff_expansion_factor": 2,
                "conv_kernel_size": 9,
                "subsampling_conv_channels": 32,
                "dropout": 0.0,
                "dropout_pre_encoder": 0.0,
                "dropout_att": 0.0,
            },
            "decoder": {"prednet": {"dropout": 0.0}},
            "joint": {"jointnet": {"dropout": 0.0}},
            "optim": {"name": "adamw", "lr": 3e-3, "weight_decay": 0.0, "sched": None},
        }
    }
    cfg = OmegaConf.merge(cfg, small, overrides)
    OmegaConf.resolve(cfg)
    return cfg


def manifest_batch(model, manifest: Path):
    """All utterances of a manifest as one padded batch (audio, audio_lens, tokens, token_lens)."""
    import torch

    items = [json.loads(line) for line in manifest.read_text().splitlines()]
    audio = [torch.tensor(sf.read(i["audio_filepath"], dtype="float32")[0]) for i in items]
    tokens = [torch.tensor(model.tokenizer.text_to_ids(i["text"])) for i in items]
    pad = torch.nn.utils.rnn.pad_sequence
    return (
        pad(audio, batch_first=True),
        torch.tensor([a.numel() for a in audio]),
        pad(tokens, batch_first=True),
        torch.tensor([t.numel() for t in tokens]),
    ), [i["text"] for i in items]


def overfit(model, batch, texts, max_steps: int = 300, check_every: int = 10) -> int:
    """Train on one batch until greedy decoding reproduces every text; return the steps used."""
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    audio, audio_lens, tokens, token_lens = batch
    for step in range(1, max_steps + 1):
        model.train()
        encoded, encoded_len = model(input_signal=audio, input_signal_length=audio_lens)
        loss = model.compute_loss(encoded, encoded_len, tokens, token_lens)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % check_every == 0:
            model.eval()
            with torch.no_grad():
                encoded, encoded_len = model(input_signal=audio, input_signal_length=audio_lens)
                hyps = model.decoding.rnnt_decoder_predictions_tensor(encoded, encoded_len)
            if [h.text for h in hyps] == texts:
                return step
    raise AssertionError(f"did not overfit {len(texts)} utterances in {max_steps} steps")


@pytest.fixture(scope="session")
def trained_nemo(tmp_path_factory, tokenizer_dir, tone_manifest) -> Path:
    """A tiny aligner overfit on the tone corpus, saved as .nemo (shared by the restore tests)."""
    import torch

    from nemo_aligner_plugin import AlignerEncoderModel

    torch.manual_seed(0)
    model = AlignerEncoderModel(tiny_cfg(tokenizer_dir).model)
    batch, texts = manifest_batch(model, tone_manifest)
    overfit(model, batch, texts)
    path = tmp_path_factory.mktemp("trained") / "tiny_aligner.nemo"
    model.save_to(str(path))
    return path


def random_decoder_joint(vocab: int, enc_dim: int, hidden: int, eos_bias: float = 3.0, sharpen: float = 20.0):
    """Random NeMo prediction net + joint; sharpened logits and an EOS bias make some rows stop early."""
    import torch
    from nemo.collections.asr.modules import RNNTDecoder, RNNTJoint

    torch.manual_seed(0)
    decoder = RNNTDecoder(prednet={"pred_hidden": hidden, "pred_rnn_layers": 1}, vocab_size=vocab).eval()
    joint = RNNTJoint(
        jointnet={"encoder_hidden": enc_dim, "pred_hidden": hidden, "joint_hidden": hidden, "activation": "relu"},
        num_classes=vocab,
    ).eval()
    with torch.no_grad():
        joint.joint_net[-1].weight.mul_(sharpen)
        joint.joint_net[-1].bias.zero_()
        joint.joint_net[-1].bias[vocab] = eos_bias
    return decoder, joint
