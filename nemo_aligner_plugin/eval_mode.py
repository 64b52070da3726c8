"""``eval_mode``: inference on modules that may be training, their flags restored afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Optional

import torch

__all__ = ["eval_mode"]


@contextmanager
def eval_mode(*modules: Optional[torch.nn.Module], no_grad: bool = True) -> Iterator[None]:
    """Eval mode (no dropout, no SpecAugment) for ``modules`` (None entries skipped) and, with ``no_grad``, no
    autograd; each module's training flag is restored on exit, also after an error."""
    present = [m for m in modules if m is not None]
    was_training = [m.training for m in present]
    for m in present:
        m.eval()
    try:
        with torch.no_grad() if no_grad else nullcontext():
            yield
    finally:
        for m, mode in zip(present, was_training, strict=True):
            m.train(mode)
