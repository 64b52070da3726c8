"""Optional auxiliary CTC loss on an encoder layer.

B: batch size, T: encoder frames, D: encoder dim, U: tokens, V: vocabulary (blank = V).

Aligner training is fragile early on: the encoder must discover the alignment before the frame-wise
CE can fall. An independent reproduction needed intermediate CTC (layer 12 of 17, weight 0.1) to
reach strong WER; CTC gives the lower layers a monotonic, time-synchronous signal to build on.
"""

from __future__ import annotations

import torch

from nemo_aligner_plugin.modules.layer_tap import LayerTap

__all__ = ["AuxCTC"]


class AuxCTC(torch.nn.Module):
    """A linear CTC head reading the output of ``encoder.layers[layer]`` (``layer=-1``: the encoder output).

    The layer output is captured during the encoder pass (``LayerTap``): the encoder runs once for both losses.
    """

    def __init__(self, encoder: torch.nn.Module, d_model: int, vocab_size: int, layer: int = -1):
        super().__init__()
        self.layer = layer
        self.blank_id = vocab_size
        self.head = torch.nn.Linear(d_model, vocab_size + 1)
        self._tap = (
            LayerTap(encoder, layer, owner="aux_ctc", also_accepted=" or -1 (the encoder output)")
            if layer != -1
            else None
        )

    def forward(
        self,
        encoder_out: torch.Tensor,
        encoder_out_lens: torch.Tensor,
        targets: torch.Tensor,
        target_lengths: torch.Tensor,
    ) -> torch.Tensor:
        """encoder_out: (B, D, T) final output (used when layer=-1). Returns the mean per-token CTC loss."""
        features = self._tap.take() if self._tap is not None else encoder_out.transpose(1, 2)  # (B, T, D)
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
