"""Optional auxiliary CTC loss on an encoder layer.

B: batch size, T: encoder frames, D: encoder dim, U: tokens, V: vocabulary (blank = V).

Aligner training is fragile early on: the encoder must discover the alignment before the frame-wise
CE can fall. An independent reproduction needed intermediate CTC (layer 12 of 17, weight 0.1) to
reach strong WER; CTC gives the lower layers a monotonic, time-synchronous signal to build on.
"""

from __future__ import annotations

import torch

__all__ = ["AuxCTC"]


class AuxCTC(torch.nn.Module):
    """A linear CTC head reading the output of ``encoder.layers[layer]`` (``layer=-1``: the encoder output).

    The head captures its input with a forward hook, so the encoder runs once for both losses.
    """

    def __init__(self, encoder: torch.nn.Module, d_model: int, vocab_size: int, layer: int = -1):
        super().__init__()
        num_layers = len(encoder.layers)
        if not -1 <= layer < num_layers:
            raise ValueError(f"aux_ctc.layer must be -1 (final output) or in [0, {num_layers - 1}], got {layer}")
        self.layer = layer
        self.blank_id = vocab_size
        self.head = torch.nn.Linear(d_model, vocab_size + 1)
        self._captured: torch.Tensor | None = None
        if layer >= 0:
            encoder.layers[layer].register_forward_hook(self._capture)

    def _capture(self, module, inputs, output) -> None:
        if self.training:  # inference never reads it; don't hold the activation
            self._captured = output

    def forward(
        self,
        encoder_out: torch.Tensor,
        encoder_out_lens: torch.Tensor,
        targets: torch.Tensor,
        target_lengths: torch.Tensor,
    ) -> torch.Tensor:
        """encoder_out: (B, D, T) final output (used when layer=-1). Returns the mean per-token CTC loss."""
        if self.layer >= 0:
            if self._captured is None:
                raise RuntimeError("AuxCTC: no captured layer output; run the encoder first")
            features, self._captured = self._captured, None  # (B, T, D)
        else:
            features = encoder_out.transpose(1, 2)
        log_probs = torch.log_softmax(self.head(features).float(), dim=-1).transpose(0, 1)  # (T, B, V+1)
        return torch.nn.functional.ctc_loss(
            log_probs,
            targets.long(),
            encoder_out_lens.long(),
            target_lengths.long(),
            blank=self.blank_id,
            reduction="mean",
            zero_infinity=True,
        )
