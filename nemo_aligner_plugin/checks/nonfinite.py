"""The non-finite step guard: an optimizer step whose loss or gradients are NaN/inf is dropped on every rank.

One optimizer step on a NaN gradient makes every weight NaN for good (gradient clipping does not help: the
norm is NaN too). NaN/inf come from NaN samples in float audio files, a diverging batch, or fp16 overflow.

It is the plugin's only NaN-step mechanism. NeMo's ``skip_nan_grad`` (``ASRModel.on_after_backward``) is left
off: it runs per micro-batch, before fp16's loss scaler unscales, so it hides overflows from the scaler (the
scale never backs off and every later step overflows too); under gradient accumulation it zeroes the good
micro-batches gathered so far, then steps on the rest; it ignores the loss, counts nothing, warns on every
step and syncs with the host once per parameter. Both act on every DDP rank alike (an all-reduced flag).
This guard runs in ``on_before_optimizer_step`` (after unscaling), once per optimizer step, one host sync.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

import torch

from nemo_aligner_plugin.ratelimit import RateLimitedWarning

__all__ = ["NonFiniteGuard"]


class NonFiniteGuard:
    """Drops optimizer steps whose loss or gradients are NaN/inf, on every rank alike, and counts them.

    Call ``note_loss`` in ``training_step`` and ``skip_if_nonfinite`` in ``on_before_optimizer_step``: the step
    is dropped by setting every gradient to None, which torch optimizers skip entirely (no update, no moment or
    weight-decay change). Under DDP the decision is all-reduced, so every rank drops the same step.
    """

    def __init__(self, warn_interval_s: float = 60.0):
        self.num_skipped = 0  # optimizer steps dropped so far (logged as train_nonfinite_steps)
        self._loss_finite: Optional[torch.Tensor] = None  # losses of the micro-batches since the last step
        self._skip_warning = RateLimitedWarning(warn_interval_s)

    def note_loss(self, loss: torch.Tensor) -> None:
        finite = torch.isfinite(loss.detach()).all()  # stays on device: no host sync in training_step
        self._loss_finite = finite if self._loss_finite is None else self._loss_finite & finite

    def skip_if_nonfinite(self, parameters: Iterable[torch.nn.Parameter], optimizer: Any, step: int = -1) -> bool:
        """True (and the gradients dropped) when the noted loss or a gradient is not finite on any rank."""
        grads = [p.grad for p in parameters if p.grad is not None]
        ok = torch.ones((), dtype=torch.bool, device=grads[0].device if grads else "cpu")
        if grads:  # per tensor, not the total norm: a huge but finite gradient is clipping's job, not ours
            ok = torch.stack([torch.isfinite(g).all().to(ok.device) for g in grads]).all()
        if self._loss_finite is not None:
            ok = ok & self._loss_finite.to(ok.device)
        self._loss_finite = None
        flag = ok.float().reshape(1)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
        if flag.item() >= 1.0:
            return False
        optimizer.zero_grad(set_to_none=True)
        self.num_skipped += 1
        self._skip_warning.note(
            1,
            lambda since_last: (
                f"Skipped {since_last} optimizer step(s) with a NaN/inf loss or gradient "
                f"({self.num_skipped} in total, latest at step {step}); the weights were left unchanged. If it "
                "keeps happening: python -m nemo_aligner_plugin.checks <train manifest> --audio --samples finds "
                "NaN audio; otherwise lower the learning rate, or use bf16 instead of fp16."
            ),
        )
        return True
