"""The systems under test, built at matched sizes from NeMo modules, with random weights forced to emit U tokens.

B: batch size, T: encoder frames, U: tokens (EOS excluded), D: encoder dim, H: LSTM dim, J: joint dim,
V: word pieces, V1: V + blank/EOS.

Random weights are forced to emit exactly U tokens; FORCING says how (it is copied into every report).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
from nemo.collections.asr.modules import (
    AudioToMelSpectrogramPreprocessor,
    ConformerEncoder,
    ConvASRDecoder,
    RNNTDecoder,
    RNNTJoint,
)
from nemo.collections.asr.modules.transformer import get_nemo_transformer
from nemo.collections.asr.parts.submodules.ctc_decoding import CTCDecoding, CTCDecodingConfig
from nemo.collections.asr.parts.submodules.multitask_beam_decoding import TransformerAEDBeamInfer
from nemo.collections.asr.parts.submodules.multitask_greedy_decoding import TransformerAEDGreedyInfer
from nemo.collections.asr.parts.submodules.rnnt_beam_decoding import BeamRNNTInferConfig
from nemo.collections.asr.parts.submodules.rnnt_decoding import RNNTDecoding, RNNTDecodingConfig
from nemo.collections.asr.parts.submodules.token_classifier import TokenClassifier
from nemo.core.classes import typecheck
from omegaconf import OmegaConf

from nemo_aligner_plugin.decoding.nemo_glue import AlignerDecodingComputer
from nemo_aligner_plugin.decoding.strategies import normalize_decoding_cfg

REPO = Path(__file__).resolve().parents[1]
ENCODER_CONFIG = REPO / "configs" / "aligner_conformer_bpe.yaml"
SAMPLE_RATE = 16000
HOP_SAMPLES = 160  # 10 ms hop of the config's preprocessor
RNNT_CHANNEL, EOS_CHANNEL = 0, 1  # encoder output channels that carry the forcing signals
FORCE_MARGIN = 30.0  # logit margin by which the forced class wins or loses
AED_SUPPRESS = -1e4  # bias on AED EOS/BOS/pad logits

FORCING = """\
Random weights make timing meaningful only if every decoder does the work of a real transcript, so each one is
forced, through a few reserved weights and two reserved encoder channels, to emit exactly U tokens:

- aligner: encoder channel 1 is 1 on frames >= U and 0 before; two joint hidden units turn it into +-S on the EOS
  logit, so EOS loses at frames 0..U-1 and wins at frame U (U+1 steps, like a real utterance);
- RNN-T: LSTM unit 0 of the prediction network counts emitted tokens (gates saturated, c += delta per step) and
  encoder channel 0 holds tanh(delta * (tokens due by frame t + 0.5)); two joint hidden units turn their difference
  into +-S on the blank logit, so blank wins exactly when the hypothesis has emitted every token due so far: one token
  on every (T/U)-th frame, T+U joint calls and U+1 prediction-network calls, as for a real RNN-T;
- AED: EOS, BOS and padding are suppressed (-1e4 bias) and the generator stops after U+1 steps (U tokens + EOS step);
- CTC: nothing is forced; greedy CTC does the same work whatever it emits.

The rest of every weight matrix keeps NeMo's random init, so the FLOPs and memory traffic are those of real models.
"""


@dataclass(frozen=True)
class Sizes:
    """Model sizes (defaults: the paper's LibriSpeech models)."""

    enc_dim: int = 512  # Conformer d_model = joint/CTC/AED input dim
    enc_layers: int = 17  # Conformer layers (paper: 17)
    pred_hidden: int = 640  # LSTM 1x640 (paper)
    joint_hidden: int = 640
    vocab: int = 1024  # word pieces (paper: 1024)
    aed_layers: int = 4  # transformer decoder layers
    aed_inner: int = 2048  # transformer FFN size (4 x d)
    aed_heads: int = 8


QUICK_SIZES = Sizes(
    enc_dim=64, enc_layers=1, pred_hidden=64, joint_hidden=64, vocab=64, aed_layers=1, aed_inner=256, aed_heads=2
)


def audio_samples(frames: int) -> int:
    """Samples of 16 kHz audio whose x4-subsampled Conformer output has exactly ``frames`` frames.

    4*frames - 1 mel frames (10 ms hop, centered) -> 2*frames -> frames after two stride-2 convs.
    """
    return (4 * frames - 2) * HOP_SAMPLES


# ------------------------------------------------------------------------------------------------ encoder
def build_encoder(sizes: Sizes) -> tuple[AudioToMelSpectrogramPreprocessor, ConformerEncoder]:
    """Preprocessor + Conformer from configs/aligner_conformer_bpe.yaml, with layers/d_model from ``sizes``."""
    cfg = OmegaConf.load(ENCODER_CONFIG).model
    pre = OmegaConf.to_container(cfg.preprocessor, resolve=True)
    enc = OmegaConf.to_container(cfg.encoder, resolve=True)
    pre.pop("_target_")
    enc.pop("_target_")
    enc.update(n_layers=sizes.enc_layers, d_model=sizes.enc_dim)
    return AudioToMelSpectrogramPreprocessor(**pre).eval(), ConformerEncoder(**enc).eval()


def encode(
    preprocessor: AudioToMelSpectrogramPreprocessor, encoder: ConformerEncoder, audio: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, samples) audio -> encoder output (B, D, T) and lengths (B,)."""
    lengths = torch.full((audio.size(0),), audio.size(1), dtype=torch.long)
    feats, feat_lens = preprocessor(input_signal=audio, length=lengths)
    return encoder(audio_signal=feats, length=feat_lens)


def forcing_channels(encoder_out: torch.Tensor, num_tokens: int, delta: float) -> torch.Tensor:
    """(B, T, D) -> copy with the RNN-T and aligner forcing channels written (see the module docstring)."""
    frames = encoder_out.size(1)
    due = (torch.arange(1, frames + 1, dtype=torch.float64) * num_tokens) // frames  # tokens due by frame t
    out = encoder_out.clone()
    out[:, :, RNNT_CHANNEL] = torch.tanh(delta * (due + 0.5)).to(out.dtype)
    out[:, :, EOS_CHANNEL] = (torch.arange(frames) >= num_tokens).to(out.dtype)
    return out


def counter_delta(max_tokens: int) -> float:
    """Per-token increment of the RNN-T counter cell: keeps tanh in its near-linear range up to ``max_tokens``."""
    return 1.0 / (2.0 * (max_tokens + 2))


# ------------------------------------------------------------------------------------------------ transducers
def build_transducer(sizes: Sizes) -> tuple[RNNTDecoder, RNNTJoint]:
    """LSTM prediction network + joint, as in configs/aligner_conformer_bpe.yaml (also the RNN-T baseline)."""
    decoder = RNNTDecoder(
        prednet={"pred_hidden": sizes.pred_hidden, "pred_rnn_layers": 1, "dropout": 0.1},
        vocab_size=sizes.vocab,
        blank_as_pad=True,
    )
    joint = RNNTJoint(
        jointnet={
            "encoder_hidden": sizes.enc_dim,
            "pred_hidden": sizes.pred_hidden,
            "joint_hidden": sizes.joint_hidden,
            "activation": "relu",
            "dropout": 0.1,
        },
        num_classes=sizes.vocab,
        log_softmax=None,  # NeMo default: log-softmax inside the joint on CPU only
    )
    return decoder, joint


@torch.no_grad()
def _reserve_switch(joint: RNNTJoint, channel: int, target: int, scale: float, pred_unit: int | None) -> None:
    """Joint hidden units 0/1 compute relu(+-scale * (g[pred_unit] - f[channel])) and feed +-1 into logit ``target``.

    With ``pred_unit=None`` the prediction network does not take part and the units see f[channel] - 0.5.
    """
    enc, pred, out = joint.enc, joint.pred, joint.joint_net[-1]
    for unit, sign in ((0, 1.0), (1, -1.0)):
        enc.weight[unit].zero_()
        pred.weight[unit].zero_()
        pred.bias[unit] = 0.0
        if pred_unit is None:
            enc.weight[unit, channel] = sign * scale
            enc.bias[unit] = -sign * scale * 0.5
        else:
            enc.weight[unit, channel] = -sign * scale
            enc.bias[unit] = 0.0
            pred.weight[unit, pred_unit] = sign * scale
    out.weight[:, :2] = 0.0
    out.weight[target, 0] = 1.0
    out.weight[target, 1] = -1.0


def force_aligner(joint: RNNTJoint, eos_id: int) -> None:
    """EOS logit = base + FORCE_MARGIN * (2 * channel_1 - 1): EOS wins exactly on frames >= U."""
    _reserve_switch(joint, EOS_CHANNEL, eos_id, scale=2 * FORCE_MARGIN, pred_unit=None)


@torch.no_grad()
def force_rnnt(decoder: RNNTDecoder, joint: RNNTJoint, delta: float, max_tokens: int) -> None:
    """LSTM unit 0 becomes a token counter; blank wins iff tanh(delta*(k+1)) > channel_0 (k tokens emitted)."""
    lstm = decoder.prediction["dec_rnn"].lstm
    hidden = lstm.hidden_size
    rows = [gate * hidden for gate in range(4)]  # unit 0 of the i, f, g, o gates
    lstm.weight_ih_l0[rows] = 0.0
    lstm.weight_hh_l0[rows] = 0.0
    lstm.bias_hh_l0[rows] = 0.0
    lstm.bias_ih_l0[rows] = torch.tensor([30.0, 30.0, math.atanh(delta), 30.0])  # i = f = o = 1, g = delta
    # smallest gap |tanh(delta*(k+1)) - tanh(delta*(n+0.5))| is delta/2 * sech^2 at the largest count
    gap = 0.5 * delta / math.cosh(delta * (max_tokens + 2)) ** 2
    _reserve_switch(joint, RNNT_CHANNEL, joint.num_classes_with_blank - 1, scale=FORCE_MARGIN / gap, pred_unit=0)


# ------------------------------------------------------------------------------------------------ decoders
Decode = Callable[[torch.Tensor, torch.Tensor], list]  # (encoder_out (B, T, D), lengths (B,)) -> hypotheses


def aligner_decoder(
    decoder: RNNTDecoder, joint: RNNTJoint, strategy: str, beam_size: int = 6, search_fn: Callable | None = None
) -> Decode:
    """The plugin's NeMo-facing decoding callable (greedy_batch or beam with the paper's debiasing).

    ``search_fn`` replaces the strategy table's function (same signature), e.g. the stepwise greedy loop.
    """
    cfg = normalize_decoding_cfg({"strategy": strategy, "beam": {"beam_size": beam_size}})
    computer = AlignerDecodingComputer(cfg, decoder.eval(), joint.eval(), eos_id=joint.num_classes_with_blank - 1)
    if search_fn is not None:
        computer.fn = search_fn
    return lambda enc, lens: computer(enc.transpose(1, 2), lens)[0]


def rnnt_decoder(decoder: RNNTDecoder, joint: RNNTJoint, strategy: str, vocab: int, beam_size: int = 6) -> Decode:
    """NeMo's RNNTDecoding inner search: greedy_batch (label looping), malsd_batch or beam (per utterance)."""
    cfg = RNNTDecodingConfig(strategy=strategy)
    if strategy != "greedy_batch":
        cfg.beam = BeamRNNTInferConfig(beam_size=beam_size, search_type="default" if strategy == "beam" else strategy)
    decoding = RNNTDecoding(
        OmegaConf.structured(cfg), decoder.eval(), joint.eval(), vocabulary=[str(i) for i in range(vocab)]
    )
    search = decoding.decoding
    return lambda enc, lens: search(encoder_output=enc.transpose(1, 2), encoded_lengths=lens)[0]


@dataclass
class AED:
    """Transformer decoder + tied output head, as EncDecMultiTaskModel (Canary) builds them."""

    decoder: torch.nn.Module  # TransformerDecoderNM
    head: TokenClassifier
    pad: int
    bos: int
    eos: int


def build_aed(sizes: Sizes) -> AED:
    """Pre-LN transformer decoder (d = encoder dim) with V + {pad, BOS, EOS} classes and a tied softmax head."""
    num_classes = sizes.vocab + 3
    decoder = get_nemo_transformer(
        config_dict={
            "vocab_size": num_classes,
            "hidden_size": sizes.enc_dim,
            "num_layers": sizes.aed_layers,
            "inner_size": sizes.aed_inner,
            "num_attention_heads": sizes.aed_heads,
            "max_sequence_length": 1024,
            "ffn_dropout": 0.1,
            "attn_score_dropout": 0.1,
            "attn_layer_dropout": 0.1,
            "hidden_act": "relu",
            "pre_ln": True,
        },
        encoder=False,
        pre_ln_final_layer_norm=True,
    )
    head = TokenClassifier(hidden_size=sizes.enc_dim, num_classes=num_classes, num_layers=1, log_softmax=True)
    head.mlp.layer0.weight = decoder.embedding.token_embedding.weight  # weight tying, as Canary does
    return AED(decoder, head, pad=sizes.vocab, bos=sizes.vocab + 1, eos=sizes.vocab + 2)


@torch.no_grad()
def force_aed(aed: AED) -> None:
    """EOS, BOS and padding can never win."""
    aed.head.mlp.layer0.bias[[aed.pad, aed.bos, aed.eos]] = AED_SUPPRESS


class _Memo(torch.nn.Module):
    """Wraps a projection and reuses its last output while the input tensor is the same (the encoder states)."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner
        self.key: tuple | None = None
        self.value: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = (x.data_ptr(), tuple(x.shape), x.stride())
        if key != self.key:
            self.key, self.value = key, self.inner(x)
        return self.value


@contextmanager
def cached_cross_attention(aed: AED) -> Iterator[None]:
    """Compute each layer's cross-attention keys/values once per decode instead of at every step.

    NeMo's TransformerDecoder re-projects all encoder frames at every generated token (the largest decode cost
    at T=300); an AED implementation with a K/V cache would not. Not part of NeMo: a reference point.
    """
    layers = aed.decoder.decoder.layers
    saved = [(layer.second_sub_layer.key_net, layer.second_sub_layer.value_net) for layer in layers]
    for layer in layers:
        layer.second_sub_layer.key_net = _Memo(layer.second_sub_layer.key_net)
        layer.second_sub_layer.value_net = _Memo(layer.second_sub_layer.value_net)
    try:
        yield
    finally:
        for layer, (key_net, value_net) in zip(layers, saved, strict=True):
            layer.second_sub_layer.key_net, layer.second_sub_layer.value_net = key_net, value_net


def aed_decoder(aed: AED, num_tokens: int, beam_size: int = 1, cache_cross_kv: bool = False) -> Decode:
    """NeMo's TransformerAEDGreedyInfer / TransformerAEDBeamInfer, stopped after num_tokens + 1 steps."""
    tokenizer = SimpleNamespace(bos=aed.bos, pad=aed.pad, eos=aed.eos)
    kwargs = {"transformer_decoder": aed.decoder.eval(), "log_softmax_module": aed.head.eval(), "tokenizer": tokenizer}
    if beam_size == 1:
        infer = TransformerAEDGreedyInfer(**kwargs, max_generation_delta=-1)
        generator = infer.greedy_search
        generator.max_seq_length = num_tokens + 2  # prompt (BOS) + U + 1 steps
    else:
        infer = TransformerAEDBeamInfer(**kwargs, beam_size=beam_size, max_generation_delta=-1)
        generator = infer.beam_search
        generator.max_seq_length = num_tokens + 1  # its first step is taken before the loop
    generator.max_delta_len = -1

    def run(enc: torch.Tensor, lens: torch.Tensor) -> list:
        mask = (torch.arange(enc.size(1)).unsqueeze(0) < lens.unsqueeze(1)).float()
        prompt = torch.full((enc.size(0), 1), aed.bos, dtype=torch.long)  # Canary passes a task prompt; we pass BOS
        with cached_cross_attention(aed) if cache_cross_kv else nullcontext():
            return infer(encoder_hidden_states=enc, encoder_input_mask=mask, decoder_input_ids=prompt)[0]

    return run


def without_onednn(decode: Decode) -> Decode:
    """Run ``decode`` with oneDNN off: torch.nn.LSTM then steps with plain GEMMs instead of re-packing weights."""

    def run(enc: torch.Tensor, lens: torch.Tensor) -> list:
        with torch.backends.mkldnn.flags(enabled=False):
            return decode(enc, lens)

    return run


def ctc_decoder(sizes: Sizes) -> tuple[ConvASRDecoder, Decode]:
    """ConvASRDecoder (1x1 conv + log-softmax) followed by NeMo's CTC greedy_batch."""
    head = ConvASRDecoder(feat_in=sizes.enc_dim, num_classes=sizes.vocab).eval()
    decoding = CTCDecoding(
        OmegaConf.structured(CTCDecodingConfig(strategy="greedy_batch")), [str(i) for i in range(sizes.vocab)]
    )

    def run(enc: torch.Tensor, lens: torch.Tensor) -> list:
        with torch.no_grad():
            log_probs = head(encoder_output=enc.transpose(1, 2))
        with typecheck.disable_checks():  # the head's output carries (B, T, D) axes; the search declares none
            return decoding.decoding(decoder_output=log_probs, decoder_lengths=lens)[0]

    return head, run


def hyp_lengths(hyps: list) -> list[int]:
    """Token count of each best hypothesis (NeMo Hypothesis or NBestHypotheses)."""
    out = []
    for hyp in hyps:
        hyp = hyp.n_best_hypotheses[0] if hasattr(hyp, "n_best_hypotheses") else hyp
        out.append(len(hyp.y_sequence))
    return out


# ------------------------------------------------------------------------------------------------ training steps
@dataclass
class Batch:
    """One training batch at the decoder's input."""

    encoder_out: torch.Tensor  # (B, T, D), requires grad (the gradient the encoder would receive is part of the cost)
    encoder_lens: torch.Tensor  # (B,)
    targets: torch.Tensor  # (B, U) word-piece ids in [0, V)
    target_lens: torch.Tensor  # (B,)


def make_batch(batch: int, frames: int, tokens: int, sizes: Sizes, seed: int = 0) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    return Batch(
        encoder_out=torch.randn(batch, frames, sizes.enc_dim, generator=gen).requires_grad_(True),
        encoder_lens=torch.full((batch,), frames, dtype=torch.long),
        targets=torch.randint(0, sizes.vocab, (batch, tokens), generator=gen),
        target_lens=torch.full((batch,), tokens, dtype=torch.long),
    )


TrainStep = Callable[[Batch], torch.Tensor]  # forward + loss; the caller runs backward


def aligner_train_step(sizes: Sizes) -> tuple[list[torch.nn.Module], TrainStep]:
    """Prediction network over U+1 positions, the joint's diagonal only, AlignerLoss (batch-prior smoothing 0.1)."""
    from nemo_aligner_plugin.loss import AlignerLoss
    from nemo_aligner_plugin.modules.joint import diagonal_logits

    decoder, joint = build_transducer(sizes)
    loss = AlignerLoss(eos_id=sizes.vocab, label_smoothing=0.1)

    def step(b: Batch) -> torch.Tensor:
        pred_out, _, _ = decoder(targets=b.targets, target_length=b.target_lens)  # (B, H, U+1)
        logits = diagonal_logits(joint, b.encoder_out, pred_out.transpose(1, 2))  # (B, U+1, V1)
        return loss(logits=logits, targets=b.targets, target_lengths=b.target_lens, encoder_lengths=b.encoder_lens)

    return [decoder, joint], step


def rnnt_train_step(
    sizes: Sizes, loss_name: str, fused_batch_size: int | None = None, vectorized: bool = False
) -> tuple[list, TrainStep]:
    """NeMo RNN-T: full (B, T, U+1, V1) joint + RNNTLoss, or the fused joint+loss over sub-batches.

    ``vectorized``: NeMo's RNNTLoss wrapper around the plugin's vectorized loss (the CPU baseline's loss).
    """
    from nemo.collections.asr.losses.rnnt import RNNTLoss
    from nemo.collections.asr.metrics.wer import WER

    from nemo_aligner_plugin.demo.rnnt_loss import use_vectorized_loss

    decoder, joint = build_transducer(sizes)
    loss = RNNTLoss(num_classes=sizes.vocab, loss_name=loss_name, reduction="mean_batch")
    if vectorized:
        use_vectorized_loss(loss)
    if fused_batch_size is not None:
        decoding = RNNTDecoding(
            OmegaConf.structured(RNNTDecodingConfig()), decoder, joint, [str(i) for i in range(sizes.vocab)]
        )
        joint.set_fuse_loss_wer(True, loss=loss, metric=WER(decoding=decoding))
        joint.set_fused_batch_size(fused_batch_size)

    def step(b: Batch) -> torch.Tensor:
        pred_out, _, _ = decoder(targets=b.targets, target_length=b.target_lens)  # (B, H, U+1)
        enc = b.encoder_out.transpose(1, 2)  # (B, D, T), NeMo's layout
        if fused_batch_size is not None:
            value, *_ = joint(
                encoder_outputs=enc,
                decoder_outputs=pred_out,
                encoder_lengths=b.encoder_lens,
                transcripts=b.targets,
                transcript_lengths=b.target_lens,
                compute_wer=False,
            )
            return value
        log_probs = joint(encoder_outputs=enc, decoder_outputs=pred_out)  # (B, T, U+1, V1), log-softmaxed on CPU
        return loss(log_probs=log_probs, targets=b.targets, input_lengths=b.encoder_lens, target_lengths=b.target_lens)

    return [decoder, joint], step


CHUNK_SIZE, CHUNK_LABELS = 16, 8  # chunkwise row: 16 frames = 640 ms (a usual cache-aware chunk), 8 labels at most
CHUNKWISE_TRAIN = f"chunkwise aligner (lattice_log_probs + ChunkwiseLoss), C={CHUNK_SIZE}, K={CHUNK_LABELS}"
CHUNKWISE_NOTE = (
    f"C={CHUNK_SIZE} frames (640 ms at 40 ms frames), K={CHUNK_LABELS} labels per chunk at most: T/C chunks of K slots "
    "hold 1.5x the U tokens (U/T = 1/3 here, ~5.3 tokens a chunk), and the joint runs on the first K frames of each "
    "chunk at every prediction state on some split, not on all T x (U+1) points"
)


def chunkwise_train_step(sizes: Sizes) -> tuple[list[torch.nn.Module], TrainStep]:
    """Prediction network over U+1 positions, the joint at the chunk lattice's points, ChunkwiseLoss (mean_token)."""
    from nemo_aligner_plugin.chunkwise.loss import ChunkwiseLoss, lattice_log_probs

    decoder, joint = build_transducer(sizes)
    loss = ChunkwiseLoss(eoc_id=sizes.vocab, chunk_size=CHUNK_SIZE, max_labels_per_chunk=CHUNK_LABELS)

    def step(b: Batch) -> torch.Tensor:
        pred_out, _, _ = decoder(targets=b.targets, target_length=b.target_lens)  # (B, H, U+1)
        label_logp, eoc_logp, _ = lattice_log_probs(
            joint,
            b.encoder_out,
            pred_out.transpose(1, 2),
            b.targets,
            CHUNK_SIZE,
            CHUNK_LABELS,
            sizes.vocab,
            encoder_lengths=b.encoder_lens,
            target_lengths=b.target_lens,
        )
        return loss(
            label_logp=label_logp, eoc_logp=eoc_logp, target_lengths=b.target_lens, encoder_lengths=b.encoder_lens
        )

    return [decoder, joint], step


def aed_train_step(sizes: Sizes) -> tuple[list, TrainStep]:
    """Teacher-forced transformer decoder over BOS + U tokens, tied head, SmoothedCrossEntropyLoss (0.1)."""
    from nemo.collections.common.losses import SmoothedCrossEntropyLoss

    aed = build_aed(sizes)
    loss = SmoothedCrossEntropyLoss(pad_id=aed.pad, label_smoothing=0.1)

    def step(b: Batch) -> torch.Tensor:
        batch = b.targets.size(0)
        inputs = torch.cat([torch.full((batch, 1), aed.bos), b.targets], dim=1)  # (B, U+1)
        labels = torch.cat([b.targets, torch.full((batch, 1), aed.eos)], dim=1)  # (B, U+1)
        dec_mask = torch.ones_like(inputs, dtype=torch.float)
        enc_mask = (torch.arange(b.encoder_out.size(1)).unsqueeze(0) < b.encoder_lens.unsqueeze(1)).float()
        hidden = aed.decoder(
            input_ids=inputs, decoder_mask=dec_mask, encoder_embeddings=b.encoder_out, encoder_mask=enc_mask
        )
        log_probs = aed.head(hidden_states=hidden)
        return loss(log_probs=log_probs, labels=labels, output_mask=dec_mask)

    return [aed.decoder, aed.head], step


def ctc_train_step(sizes: Sizes) -> tuple[list, TrainStep]:
    """ConvASRDecoder + NeMo CTCLoss."""
    from nemo.collections.asr.losses.ctc import CTCLoss

    head = ConvASRDecoder(feat_in=sizes.enc_dim, num_classes=sizes.vocab)
    loss = CTCLoss(num_classes=sizes.vocab, reduction="mean_batch")

    def step(b: Batch) -> torch.Tensor:
        log_probs = head(encoder_output=b.encoder_out.transpose(1, 2))
        return loss(log_probs=log_probs, targets=b.targets, input_lengths=b.encoder_lens, target_lengths=b.target_lens)

    return [head], step


@dataclass(frozen=True)
class TrainCase:
    build: Callable[[Sizes], tuple[list, TrainStep]]
    cost_power: int = 1  # time grows like (T * U) ** cost_power (the pytorch RNN-T loss's backward: 2)


TRAIN_CASES: dict[str, TrainCase] = {
    "aligner CE (diagonal_logits + AlignerLoss)": TrainCase(aligner_train_step),
    "RNN-T, full joint + RNNTLoss numba (NeMo default)": TrainCase(lambda s: rnnt_train_step(s, "warprnnt_numba")),
    "RNN-T, fused joint+loss (fused_batch_size 4) + numba": TrainCase(
        lambda s: rnnt_train_step(s, "warprnnt_numba", fused_batch_size=4)
    ),
    # every lattice cell's select/gather backward materialises a full (B, T, U+1, V1) gradient
    "RNN-T, full joint + RNNTLoss pytorch": TrainCase(lambda s: rnnt_train_step(s, "pytorch"), cost_power=2),
    "RNN-T, full joint + vectorized loss (nemo_aligner_plugin.demo.rnnt_loss, not NeMo)": TrainCase(
        lambda s: rnnt_train_step(s, "warprnnt_numba", vectorized=True)
    ),
    CHUNKWISE_TRAIN: TrainCase(chunkwise_train_step),
    "AED CE (4-layer transformer, smoothed CE)": TrainCase(aed_train_step),
    "CTC (ConvASRDecoder + CTCLoss)": TrainCase(ctc_train_step),
}
