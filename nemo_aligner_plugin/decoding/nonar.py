"""Non-autoregressive aligner (paper sec. 5): an independent classifier per encoder frame.

B: batch size, T: encoder frames, D: encoder dim, V1: vocabulary + EOS.

Frame i is classified as token i with no prediction network; decoding truncates at the first EOS.
The paper finds it much worse than CTC except on very short utterances -- it is here as that
baseline and as an optional auxiliary loss that pushes the encoder to make every frame self-contained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from nemo_aligner_plugin.decoding.types import BatchedHyps

__all__ = ["NonARGreedyConfig", "nonar_greedy"]


@dataclass
class NonARGreedyConfig:
    max_tokens: Optional[int] = None  # cap on tokens per utterance; None: bounded by encoder frames only


@torch.no_grad()
def nonar_greedy(
    decoder: None,
    joint: torch.nn.Module,  # modules.nonar_head.NonARHead
    encoder_out: torch.Tensor,
    encoder_out_lens: torch.Tensor,
    eos_id: int,
    cfg: Optional[NonARGreedyConfig] = None,
    state: None = None,
) -> tuple[BatchedHyps, None]:
    """Argmax every frame, keep the tokens before the first EOS (or the last valid frame)."""
    cfg = cfg or NonARGreedyConfig()
    lens = encoder_out_lens.to(encoder_out.device).long()
    if cfg.max_tokens is not None:
        lens = lens.clamp(max=cfg.max_tokens)
    steps = int(lens.max()) if lens.numel() else 0
    log_probs = torch.log_softmax(joint(encoder_out[:, :steps]).float(), dim=-1)  # (B, S, V1)
    best_logp, best = log_probs.max(dim=-1)
    positions = torch.arange(steps, device=encoder_out.device)
    stop = (best == eos_id) | (positions.unsqueeze(0) >= lens.unsqueeze(1))  # (B, S)
    stop = torch.cat([stop, stop.new_ones(stop.size(0), 1)], dim=1)  # a stop always exists
    lengths = stop.long().argmax(dim=1)  # index of the first stop = number of tokens
    ended = lengths < lens  # stopped by EOS, not by running out of frames
    counted = positions.unsqueeze(0) <= lengths.unsqueeze(1)  # tokens plus the EOS position
    counted &= (positions.unsqueeze(0) < lengths.unsqueeze(1)) | ended.unsqueeze(1)
    scores = (best_logp * counted).sum(dim=1)
    u_max = int(lengths.max()) if lengths.numel() else 0
    tokens = best[:, :u_max].masked_fill(positions[:u_max].unsqueeze(0) >= lengths.unsqueeze(1), eos_id)
    frames = positions[:u_max].expand(best.size(0), u_max)
    return BatchedHyps(tokens, lengths, scores, frames, ended), None
