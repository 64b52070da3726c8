"""The records every decoding strategy passes around: decoder state, greedy results, beam (N-best) results.

B: batch size, N: hypotheses kept per utterance, U_max: longest hypothesis, L: LSTM layers,
H: prediction-network dim.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

__all__ = ["DecoderState", "BatchedHyps", "BeamHyps"]


@dataclass
class DecoderState:
    """What the prediction network needs to continue decoding (e.g. across long-form chunks)."""

    lstm: Optional[tuple[torch.Tensor, torch.Tensor]]  # (h, c), each (L, B, H); zeros = start of sequence
    last_tokens: Optional[torch.Tensor]  # (B,) token not yet fed; EOS (zero embedding) = start of sequence


@dataclass
class BatchedHyps:
    """One hypothesis per utterance, kept as tensors until converted to NeMo Hypothesis objects."""

    tokens: torch.Tensor  # (B, U_max) emitted token ids, EOS-padded; row b valid up to lengths[b]
    lengths: torch.Tensor  # (B,) number of emitted tokens (EOS excluded)
    scores: torch.Tensor  # (B,) sum of log-probabilities of emitted tokens, EOS included when emitted
    frames: torch.Tensor  # (B, U_max) encoder frame each token was read from
    ended_with_eos: torch.Tensor  # (B,) False when a row ran out of frames (or max_tokens) before EOS


@dataclass
class BeamHyps:
    """Finished hypotheses per utterance, best first (by ``scores``, or per token with ``length_norm``)."""

    tokens: torch.Tensor  # (B, N, U_max) token ids, EOS-padded; slot n valid up to lengths[b, n]
    lengths: torch.Tensor  # (B, N) tokens per hypothesis (EOS excluded)
    scores: torch.Tensor  # (B, N) sum of (debiased) log-probs, EOS included when emitted; -inf in empty slots
    ended_with_eos: torch.Tensor  # (B, N) False when the hypothesis ran out of frames (or max_tokens) first
    num_hyps: torch.Tensor  # (B,) filled slots; every utterance has at least one

    def best(self) -> BatchedHyps:
        """The top hypothesis of every utterance, as a BatchedHyps (token i read off frame i)."""
        lengths = self.lengths[:, 0]
        u_max = int(lengths.max()) if lengths.numel() else 0
        frames = torch.arange(u_max, device=lengths.device).expand(lengths.size(0), u_max)
        return BatchedHyps(self.tokens[:, 0, :u_max], lengths, self.scores[:, 0], frames, self.ended_with_eos[:, 0])
