"""Read one Conformer layer's output during the encoder's own forward pass.

Auxiliary losses on intermediate layers (CTC, aligner) need a layer's output without running the
encoder twice or changing NeMo's ConformerEncoder: a forward hook keeps it until it is taken.
"""

from __future__ import annotations

import torch

__all__ = ["LayerTap"]


class LayerTap:
    """Keeps the (B, T, D) output of ``encoder.layers[layer]`` from the last training forward pass."""

    def __init__(self, encoder: torch.nn.Module, layer: int | None, owner: str, also_accepted: str = ""):
        num_layers = len(encoder.layers)
        if layer is None or not 0 <= layer < num_layers:
            raise ValueError(f"model.{owner}.layer must be in [0, {num_layers - 1}] here{also_accepted}, got {layer}")
        self.owner = owner
        self._captured: torch.Tensor | None = None
        encoder.layers[layer].register_forward_hook(self._capture)

    def _capture(self, module, inputs, output) -> None:
        if module.training:  # inference never reads it: don't hold the activation
            self._captured = output

    def take(self) -> torch.Tensor:
        """The captured output, released so that it is read once per forward pass."""
        if self._captured is None:
            raise RuntimeError(f"{self.owner}: no captured layer output; run the encoder in training mode first")
        features, self._captured = self._captured, None
        return features
