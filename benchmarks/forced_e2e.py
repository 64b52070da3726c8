"""The models of benchmarks/onnx_bench.py: whole models with random weights, forced end to end to emit real-length
transcripts, and the demo models, built and exported for every system.

B: batch size, D: encoder dim, T: encoder frames, U: tokens (EOS excluded), H: LSTM dim, V: word pieces.

bench_models forces decoders through encoder channels written after the encoder, which a system that runs the whole
model (NeMo ``transcribe()``, an exported ONNX encoder, sherpa-onnx) cannot do. Here the encoder itself writes them:
``ForcedConformerEncoder`` sets the reserved channels from the frame index and the utterance length after the
Conformer layers, in ``forward_internal``, which both ``forward`` and NeMo's ``forward_for_export`` call, so PyTorch,
our ONNX encoder and sherpa's encoder.onnx all carry the same forcing. FORCING_E2E says how (copied into reports).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import bench_models as bm
import numpy as np
import soundfile as sf
import torch
from nemo.collections.asr.modules import ConformerEncoder, RNNTDecoder, RNNTJoint
from omegaconf import DictConfig, OmegaConf

from nemo_aligner_plugin.demo.sentences import generate_sentences
from nemo_aligner_plugin.tokenizer import train_bpe_tokenizer

__all__ = [
    "FORCING_E2E",
    "Bench",
    "FRAMES_PER_TOKEN",
    "ForcedConformerEncoder",
    "build_forced_aligner",
    "build_forced_rnnt",
    "demo_inputs",
    "force_encoder",
    "force_rnnt_parity",
    "forced_tokens",
    "prepare_demo",
    "prepare_paper",
    "train_tokenizer",
    "write_noise_audio",
]

FRAMES_PER_TOKEN = 3  # U = T // 3: the T=300 / U=100 shape of benchmarks/run.py
PARITY_CHANNEL, EOS_CHANNEL = bm.RNNT_CHANNEL, bm.EOS_CHANNEL  # encoder output channels 0 and 1
FLIP_GAIN, FLIP_BIAS = 10.0, 3.0  # LSTM unit 0: g = tanh(-10 h + 3) flips the sign of h at every step
FLIP_LEVEL = float(np.tanh(np.tanh(FLIP_BIAS)))  # |h| of the flip-flop unit after its first step (~0.76)
NOISE_RMS = 0.03  # level of the benchmark's noise audio (its content does not matter to random weights)
REPO = Path(__file__).resolve().parents[1]
RNNT_BASELINE_CONFIG = REPO / "configs" / "baselines" / "rnnt_demo.yaml"

FORCING_E2E = f"""\
Random weights are forced end to end, through two encoder output channels that the encoder itself writes after its
Conformer layers (`forced_e2e.ForcedConformerEncoder.forward_internal`, traced into every ONNX encoder), so each
system does the work of a real transcript: U = T // {FRAMES_PER_TOKEN} tokens for T encoder frames.

- aligner: channel {EOS_CHANNEL} is 1 on frames >= U and 0 before; `bench_models.force_aligner` turns it into
  +-{bm.FORCE_MARGIN:g} on the EOS logit (U tokens, EOS at frame U: U+1 decoder steps).
- RNN-T: the prediction network's LSTM unit 0 is a flip-flop (forget gate shut,
  g = tanh(-{FLIP_GAIN:g} h + {FLIP_BIAS:g})) whose sign is the parity of the tokens emitted so far; channel
  {PARITY_CHANNEL} is +1/-1 for the parity of the tokens due by frame t, floor((t+1)/{FRAMES_PER_TOKEN}); two joint
  hidden units compute their XNOR and add +-{bm.FORCE_MARGIN:g} to the blank logit, so blank wins exactly when the
  hypothesis has emitted every token due: one token on every {FRAMES_PER_TOKEN}rd frame, T+U joint calls and U+1
  prediction-network calls. This replaces bench_models' analog counter, whose 1/(4U) steps do not survive int8
  activations; every signal here is +-1 or 0/1.
- Both models share the encoder's weights; the rest of every weight keeps NeMo's random init. With int8 weights
  (per tensor), the forcing weights (tens) make the joint's random encoder/prediction weights round to zero: the
  work done is the same, the forced counts still hold, the random tokens differ from fp32.
"""


# ------------------------------------------------------------------------------------------------ forcing
def forcing_channels(encoded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, D, T) encoder output, (B,) lengths -> the same with channels 0 (RNN-T parity) and 1 (aligner EOS) set."""
    frames = torch.arange(encoded.size(2), device=encoded.device)  # (T,)
    due = torch.div(frames + 1, FRAMES_PER_TOKEN, rounding_mode="floor")  # tokens due by frame t
    parity = (1 - 2 * torch.remainder(due, 2)).to(encoded.dtype)  # (T,): +1 when an even count is due
    tokens = torch.div(lengths, FRAMES_PER_TOKEN, rounding_mode="floor")  # (B,) U of each utterance
    eos = (frames.unsqueeze(0) >= tokens.unsqueeze(1)).to(encoded.dtype)  # (B, T)
    parity = parity.unsqueeze(0) * torch.ones_like(eos)  # (B, T)
    return torch.cat([parity.unsqueeze(1), eos.unsqueeze(1), encoded[:, 2:]], dim=1)


class ForcedConformerEncoder(ConformerEncoder):
    """A ConformerEncoder whose output carries the forcing channels (see FORCING_E2E); same weights, same FLOPs."""

    def forward_internal(self, audio_signal, length, *args, **kwargs):
        rets = super().forward_internal(audio_signal, length, *args, **kwargs)
        if len(rets) != 2:
            raise ValueError("ForcedConformerEncoder: streaming caches are not supported")
        encoded, encoded_len = rets
        return forcing_channels(encoded, encoded_len), encoded_len


def force_encoder(encoder: ConformerEncoder) -> ConformerEncoder:
    """Make ``encoder`` (built or restored) write the forcing channels; no parameter changes."""
    if not isinstance(encoder, ConformerEncoder):
        raise TypeError(f"force_encoder: expected a ConformerEncoder, got {type(encoder).__name__}")
    encoder.__class__ = ForcedConformerEncoder
    return encoder


def forced_tokens(encoder_frames: int) -> int:
    """Tokens every forced system emits for an utterance of ``encoder_frames`` frames."""
    return encoder_frames // FRAMES_PER_TOKEN


@torch.no_grad()
def force_rnnt_parity(decoder: RNNTDecoder, joint: RNNTJoint) -> None:
    """LSTM unit 0 flips sign at every step; joint units 0/1 add +-margin to blank by the XNOR of the parities."""
    lstm = decoder.prediction["dec_rnn"].lstm
    unit0 = torch.arange(4) * lstm.hidden_size  # unit 0 of the i, f, g, o gates
    for weights in (lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_hh_l0):
        weights[unit0] = 0.0  # the unit reads nothing but its bias and, below, its own h
    lstm.bias_ih_l0[unit0] = torch.tensor([30.0, -30.0, FLIP_BIAS, 30.0])  # i = o = 1, f = 0
    lstm.weight_hh_l0[unit0[2], 0] = -FLIP_GAIN  # g = tanh(-gain h + bias): c = g, h = tanh(c)
    scale = 2 * bm.FORCE_MARGIN
    enc, pred, out = joint.enc, joint.pred, joint.joint_net[-1]
    for unit, sign in ((0, 1.0), (1, -1.0)):  # unit = relu(+-scale * (a + b) - scale), a, b in {-1, +1}
        enc.weight[unit].zero_()
        pred.weight[unit].zero_()
        enc.weight[unit, PARITY_CHANNEL] = sign * scale
        pred.weight[unit, 0] = sign * scale / FLIP_LEVEL
        enc.bias[unit] = pred.bias[unit] = -scale / 2
    blank = joint.num_classes_with_blank - 1
    out.weight[:, :2] = 0.0
    out.weight[blank, :2] = 1.0  # scale when the parities agree (caught up), 0 when a token is due
    out.bias[blank] -= scale / 2


# ------------------------------------------------------------------------------------------------ models
def train_tokenizer(out_dir: Path, vocab: int, sentences: int = 20000) -> Path:
    """A ``vocab``-piece SentencePiece BPE tokenizer trained offline on the demo's generated sentences."""
    texts = generate_sentences(random.Random(0), sentences, 1, 30)
    got = train_bpe_tokenizer(texts, out_dir, vocab)
    if got != vocab:
        raise RuntimeError(f"tokenizer: {got} pieces, wanted {vocab}")
    return Path(out_dir)


def paper_config(tokenizer_dir: Path, sizes: bm.Sizes) -> DictConfig:
    """configs/aligner_conformer_bpe.yaml (layers, d_model, LSTM and joint from ``sizes``), long-form off."""
    cfg = OmegaConf.load(bm.ENCODER_CONFIG)
    small = {
        "model": {
            "tokenizer": {"dir": str(tokenizer_dir)},
            "train_ds": {"manifest_filepath": None, "num_workers": 0},
            "validation_ds": {"num_workers": 0},
            "test_ds": {"num_workers": 0},
            "model_defaults": {"pred_hidden": sizes.pred_hidden, "joint_hidden": sizes.joint_hidden},
            "encoder": {"n_layers": sizes.enc_layers, "d_model": sizes.enc_dim},
            "longform": {"enabled": False},  # 12 s files are read whole by every system
        }
    }
    cfg = OmegaConf.merge(cfg, small)
    OmegaConf.resolve(cfg)
    return cfg


def build_forced_aligner(tokenizer_dir: Path, sizes: bm.Sizes, seed: int = 0):
    """A random AlignerEncoderModel at ``sizes``, forced (its joint here, its encoder via force_encoder)."""
    from nemo_aligner_plugin import AlignerEncoderModel

    torch.manual_seed(seed)
    model = AlignerEncoderModel(paper_config(tokenizer_dir, sizes).model).eval()
    bm.force_aligner(model.joint, model.eos_id)
    force_encoder(model.encoder)
    return model


def build_forced_rnnt(aligner, seed: int = 1):
    """NeMo's EncDecRNNTBPEModel with the aligner's preprocessor and encoder weights (configs/baselines/rnnt_demo
    heads at the aligner's sizes), forced by force_rnnt_parity and force_encoder."""
    from nemo.collections.asr.models import EncDecRNNTBPEModel

    from nemo_aligner_plugin.demo.baselines import baseline_model_config

    baseline = OmegaConf.load(RNNT_BASELINE_CONFIG)
    cfg = OmegaConf.create({"model": OmegaConf.to_container(aligner.cfg, resolve=True)})
    cfg.head, cfg.drop_model_sections = baseline.head, baseline.drop_model_sections
    model_cfg = baseline_model_config(cfg)
    for key in ("labels", "nemo_aligner_plugin_version"):  # the aligner's own keys
        model_cfg.pop(key, None)
    torch.manual_seed(seed)
    model = EncDecRNNTBPEModel(cfg=model_cfg).eval()
    model.preprocessor.load_state_dict(aligner.preprocessor.state_dict())
    model.encoder.load_state_dict(aligner.encoder.state_dict())
    force_rnnt_parity(model.decoder, model.joint)
    force_encoder(model.encoder)
    return model


def write_noise_audio(folder: Path, count: int, encoder_frames: int, sample_rate: int = bm.SAMPLE_RATE) -> list[Path]:
    """``count`` 16-bit WAV files of seeded noise, each exactly ``encoder_frames`` encoder frames long."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        samples = (NOISE_RMS * rng.standard_normal(bm.audio_samples(encoder_frames))).astype(np.float32)
        path = folder / f"noise_{index:03d}.wav"
        sf.write(path, samples, sample_rate, subtype="PCM_16")
        paths.append(path)
    return paths


# ------------------------------------------------------------------------------------------------ benchmark inputs
@dataclass
class Bench:
    """One model's five systems of benchmarks/onnx_bench.py, their inputs and what they should produce."""

    name: str
    about: str  # the model, in words
    folders: dict[str, str]  # system key -> .nemo (a) or exported folder
    files: list[str]
    audio_s: float
    references: Optional[list[str]] = None  # transcripts (demo); None: forced random weights
    expected_tokens: Optional[list[int]] = None  # forced token count per file (paper size)
    results: dict[str, list[dict]] = field(default_factory=dict)  # system key -> one result per round


def export_all(aligner, rnnt, out: Path, prefix: str) -> dict[str, str]:
    """Our fp32/int8 folders and sherpa's fp32/int8 folders of an aligner and an RNN-T."""
    from sherpa_transducer import export_for_sherpa

    return {
        "b": str(aligner.export(str(out / f"{prefix}_onnx_fp32"))),
        "c": str(aligner.export(str(out / f"{prefix}_onnx_int8"), quantize="int8")),
        "d32": str(export_for_sherpa(rnnt, out / f"{prefix}_sherpa_fp32")),
        "d8": str(export_for_sherpa(rnnt, out / f"{prefix}_sherpa_int8", quantize="int8")),
    }


def prepare_paper(work: Path, quick: bool, files: int, frames: int) -> Bench:
    """The paper-size model, random and forced: tokenizer, .nemo for (a), exports, noise audio of T frames."""
    sizes = bm.QUICK_SIZES if quick else bm.Sizes()
    tokenizer = train_tokenizer(work / "paper_tokenizer", sizes.vocab)
    aligner = build_forced_aligner(tokenizer, sizes)
    nemo_path = work / "paper_aligner.nemo"
    aligner.save_to(str(nemo_path))
    rnnt = build_forced_rnnt(aligner)
    folders = {"a": str(nemo_path), **export_all(aligner, rnnt, work, "paper")}
    paths = [str(p) for p in write_noise_audio(work / "paper_audio", files, frames)]
    seconds = bm.audio_samples(frames) / bm.SAMPLE_RATE
    about = (
        f"configs/aligner_conformer_bpe.yaml at {sizes.enc_layers}x{sizes.enc_dim} Conformer, LSTM {sizes.pred_hidden},"
        f" {sizes.vocab} pieces; random weights, forced"
    )
    expected = [forced_tokens(frames)] * files
    return Bench("paper", about, folders, paths, seconds * files, expected_tokens=expected)


def _newest(pattern: str) -> Optional[Path]:
    found = [p for p in (REPO / "data" / "demo" / "runs").glob(pattern) if "checkpoints" not in p.parts]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def demo_inputs(model: Optional[Path], rnnt: Optional[Path], corpus: Optional[Path]) -> tuple[Path, Path, Path]:
    """The demo aligner, RNN-T and test manifest given (a corpus folder or a manifest), else the newest
    ``make demo-baselines`` outputs under data/demo/."""
    model = model or _newest("*/aligner/**/*.nemo")
    rnnt = rnnt or _newest("*/rnnt/**/*.nemo")
    corpus = corpus or REPO / "data" / "demo" / "corpus"
    manifest = corpus / "test_manifest.json" if corpus.is_dir() else corpus
    missing = [name for name, path in (("--demo-model", model), ("--demo-rnnt", rnnt)) if path is None]
    if missing or not manifest.is_file():
        raise SystemExit(
            f"no demo model/RNN-T/test manifest found ({', '.join(missing) or manifest}): run `make demo-baselines` "
            "or pass --demo-model, --demo-rnnt and --demo-corpus"
        )
    return model, rnnt, manifest


def prepare_demo(work: Path, model: Path, rnnt_path: Path, manifest: Path, limit: Optional[int]) -> Bench:
    """The trained demo aligner and RNN-T, exported; the test split's audio and transcripts."""
    from nemo.collections.asr.models import EncDecRNNTBPEModel

    from nemo_aligner_plugin import AlignerEncoderModel

    aligner = AlignerEncoderModel.restore_from(str(model), map_location="cpu").eval()
    rnnt = EncDecRNNTBPEModel.restore_from(str(rnnt_path), map_location="cpu").eval()
    folders = {"a": str(model), **export_all(aligner, rnnt, work, "demo")}
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()][:limit]
    audio_s = sum(float(r["duration"]) for r in rows)
    about = f"trained: {model.name} and the NeMo RNN-T {rnnt_path.name}, on {manifest.name}"
    paths, texts = [r["audio_filepath"] for r in rows], [r["text"] for r in rows]
    return Bench("demo", about, folders, paths, audio_s, references=texts)
