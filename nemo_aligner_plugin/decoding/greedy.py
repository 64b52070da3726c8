"""Batched greedy aligner decoding.

B: batch size, T: encoder frames, D: encoder dim, J: joint hidden dim, H: prediction-network dim,
L: LSTM layers, V1: vocabulary + EOS.

Output token i is read off encoder frame i. All rows step together over frames; a row stops at EOS
or when its frames run out. Cost is O(U) prediction-network + joint steps, no lattice, no blanks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from nemo.collections.asr.modules import RNNTDecoder, RNNTJoint

from nemo_aligner_plugin.decoding.prediction import prediction_step
from nemo_aligner_plugin.joint import joint_step

__all__ = ["GreedyBatchConfig", "DecoderState", "BatchedHyps", "greedy_batch"]


@dataclass
class GreedyBatchConfig:
    max_tokens: Optional[int] = None  # cap on tokens per utterance; None: bounded by encoder frames only


@dataclass
class DecoderState:
    """What the prediction network needs to continue decoding (e.g. across long-form chunks)."""

    lstm: tuple[torch.Tensor, torch.Tensor]  # (h, c), each (L, B, H); zeros = start of sequence
    last_tokens: Optional[torch.Tensor]  # (B,) previous token ids; EOS (zero embedding) = start of sequence


@dataclass
class BatchedHyps:
    """Greedy results for a batch, kept as tensors until converted to NeMo Hypothesis objects."""

    tokens: torch.Tensor  # (B, U_max) emitted token ids, EOS-padded; row b valid up to lengths[b]
    lengths: torch.Tensor  # (B,) number of emitted tokens (EOS excluded)
    scores: torch.Tensor  # (B,) sum of log-probabilities of emitted tokens, EOS included when emitted
    frames: torch.Tensor  # (B, U_max) encoder frame each token was read from
    ended_with_eos: torch.Tensor  # (B,) False when a row ran out of frames (or max_tokens) before EOS


@torch.no_grad()
def greedy_batch(
    decoder: RNNTDecoder,
    joint: RNNTJoint,
    encoder_out: torch.Tensor,
    encoder_out_lens: torch.Tensor,
    eos_id: int,
    cfg: Optional[GreedyBatchConfig] = None,
    state: Optional[DecoderState] = None,
) -> tuple[BatchedHyps, DecoderState]:
    """Decode (B, T, D) encoder output greedily; returns hypotheses and the final decoder state."""
    cfg = cfg or GreedyBatchConfig()
    batch_size, num_frames, _ = encoder_out.shape
    device = encoder_out.device
    lens = encoder_out_lens.to(device).long()
    max_steps = int(lens.max()) if batch_size else 0
    if cfg.max_tokens is not None:
        max_steps = min(max_steps, cfg.max_tokens)

    encoder_proj = joint.project_encoder(encoder_out[:, :max_steps])  # (B, S, J), once for all steps
    tokens = torch.full((batch_size, max_steps), eos_id, dtype=torch.long, device=device)
    scores = torch.zeros(batch_size, dtype=torch.float32, device=device)
    lengths = torch.zeros(batch_size, dtype=torch.long, device=device)
    ended = torch.zeros(batch_size, dtype=torch.bool, device=device)
    limit = lens if cfg.max_tokens is None else lens.clamp(max=cfg.max_tokens)

    # Rows that have emitted nothing hold the zero state and EOS as "previous token": EOS is the RNN-T
    # blank slot, which embeds to zeros (blank_as_pad), exactly like the start-of-sequence input.
    lstm = state.lstm if state is not None else decoder.initialize_state(encoder_out)
    prev = state.last_tokens if state is not None else torch.full_like(lengths, eos_id)
    for step in range(max_steps):
        active = (~ended) & (step < limit)
        if not bool(active.any()):
            break
        pred_out, new_lstm = prediction_step(decoder, prev, lstm, batch_size)
        log_probs = torch.log_softmax(joint_step(joint, encoder_proj[:, step], pred_out[:, 0]).float(), dim=-1)
        best_logp, best = log_probs.max(dim=-1)
        best = torch.where(active, best, eos_id)
        tokens[:, step] = best
        scores += torch.where(active, best_logp, 0.0)
        emitted = active & (best != eos_id)
        lengths += emitted.long()
        ended |= active & (best == eos_id)
        # Only rows that emitted a real token advance; finished rows keep their state for carry-over.
        keep = emitted.view(1, -1, 1)
        lstm = tuple(torch.where(keep, n, o) for n, o in zip(new_lstm, lstm, strict=True))
        prev = torch.where(emitted, best, prev)

    u_max = int(lengths.max()) if batch_size else 0
    frames = torch.arange(u_max, device=device).expand(batch_size, u_max)
    hyps = BatchedHyps(tokens[:, :u_max], lengths, scores, frames, ended)
    return hyps, DecoderState(lstm=lstm, last_tokens=prev)
