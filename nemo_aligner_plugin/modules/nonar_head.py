"""The non-autoregressive aligner's head (paper sec. 5): an independent classifier per encoder frame.

B: batch size, T: encoder frames, D: encoder dim, V1: vocabulary + EOS.
"""

from __future__ import annotations

import torch

__all__ = ["NonARHead"]


class NonARHead(torch.nn.Module):
    """Linear classifier over vocabulary + EOS, applied to every encoder frame."""

    num_extra_outputs = 0  # lets NeMo's RNN-T decoding shell hold it in place of a joint

    def __init__(self, d_model: int, vocab_size: int):
        super().__init__()
        self.proj = torch.nn.Linear(d_model, vocab_size + 1)

    def forward(self, encoder_out: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, V1) logits."""
        return self.proj(encoder_out)
