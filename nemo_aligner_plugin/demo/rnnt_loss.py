"""A vectorized RNN-T loss for training the RNN-T *baseline* on CPU (``cpu_rnnt_loss: vectorized``, baselines.py).

B: batch, T: encoder frames, U: target tokens, V1: vocabulary + blank.

NeMo's numba RNN-T loss runs on CPU but takes 5.4 s a step at the demo shape (B=16, T=80, U=30, V1=129) and its
`pytorch` loss 6.7 s (both loop over lattice cells in Python/numba), longer than the encoder step it serves.
This one loops over frames only: for a fixed frame t the recursion over u,
``alpha[t, u] = logaddexp(alpha[t-1, u] + blank[t-1, u], alpha[t, u-1] + emit[t, u-1])``, is a linear recurrence
in log space, solved for all u at once with ``logcumsumexp``. Autograd gives the gradient. Same values and
gradients as NeMo's losses (tests/test_rnnt_loss.py); no FastEmit, no clamping.
"""

from __future__ import annotations

import torch

__all__ = ["VectorizedRNNTLoss", "rnnt_loss_vectorized", "use_vectorized_loss"]


def rnnt_loss_vectorized(
    acts: torch.Tensor, labels: torch.Tensor, act_lens: torch.Tensor, label_lens: torch.Tensor, blank: int
) -> torch.Tensor:
    """(B, T, U+1, V1) joint outputs (logits or log-probs) -> (B,) negative log-likelihoods."""
    logp = acts.float().log_softmax(dim=-1)  # idempotent on log-probs (NeMo's joint normalizes on CPU)
    batch, frames, u1, vocab = logp.shape
    blank_lp = logp[..., blank]  # (B, T, U+1)
    targets = labels[:, : u1 - 1].long().clamp(0, vocab - 1)  # padding ids are never read for u > label_lens
    emit_lp = logp[:, :, : u1 - 1].gather(-1, targets[:, None, :, None].expand(batch, frames, u1 - 1, 1))
    # prefix[t, u] = sum_{j<u} emit[t, j]: the cost of emitting tokens k..u-1 at frame t is prefix[u] - prefix[k]
    prefix = torch.cat([emit_lp.new_zeros(batch, frames, 1), emit_lp.squeeze(-1).cumsum(dim=-1)], dim=-1)
    alpha = prefix[:, 0]  # frame 0: emit tokens 0..u-1 without a blank
    alphas = [alpha]
    for t in range(1, frames):
        enter = alpha + blank_lp[:, t - 1]  # (B, U+1): reach frame t at token u by a blank from frame t-1
        alpha = prefix[:, t] + torch.logcumsumexp(enter - prefix[:, t], dim=-1)
        alphas.append(alpha)
    alphas = torch.stack(alphas, dim=1)  # (B, T, U+1)
    rows = torch.arange(batch, device=acts.device)
    last_t, last_u = act_lens.long() - 1, label_lens.long()
    return -(alphas[rows, last_t, last_u] + blank_lp[rows, last_t, last_u])


class VectorizedRNNTLoss(torch.nn.Module):
    """Drop-in for the inner loss of NeMo's ``RNNTLoss`` (``model.loss._loss``): per-utterance losses.

    NeMo's wrapper keeps doing the type checks, padding trims and the configured reduction.
    """

    def __init__(self, blank: int):
        super().__init__()
        self.blank = blank
        self.reduction = None  # NeMo's RNNTLoss sets and restores this around each call

    def forward(self, acts, labels, act_lens, label_lens):
        return rnnt_loss_vectorized(acts, labels, act_lens, label_lens, self.blank)


def use_vectorized_loss(rnnt_loss) -> None:
    """Make a NeMo ``RNNTLoss`` compute with ``VectorizedRNNTLoss`` (its wrapper keeps the checks and reduction)."""
    rnnt_loss._loss = VectorizedRNNTLoss(blank=rnnt_loss._blank)
