"""NeMo's cache-aware streaming RNN-T behind the streaming demo's ``feed`` / ``finish`` interface.

D: encoder dim, n: encoder frames.

The baseline streams through the very pieces the Chunkwise Aligner streams through (``StreamingFeatures`` and
NeMo's cache-aware encoder step in ``EncoderStream``), then NeMo's own RNN-T decoding continues from the previous
chunk's hypotheses, as NeMo's ``conformer_stream_step`` does. Only the decoders differ in the comparison.
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch

from nemo_aligner_plugin.chunkwise.encoder_stream import EncoderStream
from nemo_aligner_plugin.chunkwise.features import StreamingFeatures

__all__ = ["RNNTStreamer"]


class RNNTStreamer:
    """One stream through a cache-aware ``EncDecRNNTBPEModel`` (batch size 1)."""

    def __init__(self, model: torch.nn.Module):
        self.model = model.eval()
        self._features = StreamingFeatures(model.preprocessor)
        self._encoder = EncoderStream(model.encoder)
        self._hypotheses = None  # NeMo's partial hypotheses: tokens and decoder state so far
        self.text = ""

    def feed(self, samples: Union[np.ndarray, torch.Tensor]) -> str:
        """Add audio (1-D float, the model's sample rate); returns the text it completed."""
        with torch.inference_mode():
            return self._decode(self._encoder.push(self._features.push(torch.as_tensor(samples, dtype=torch.float32))))

    def finish(self) -> str:
        with torch.inference_mode():
            frames = self._encoder.push(self._features.flush())
            self._decode(torch.cat([frames, self._encoder.flush()], dim=0))
        return self.text

    def _decode(self, frames: torch.Tensor) -> str:
        """(n, D) new encoder frames -> the text they added."""
        if frames.size(0) == 0:
            return ""
        hyps = self.model.decoding.rnnt_decoder_predictions_tensor(
            encoder_output=frames.t().unsqueeze(0),
            encoded_lengths=torch.tensor([frames.size(0)]),
            return_hypotheses=True,
            partial_hypotheses=self._hypotheses,
        )
        self._hypotheses = hyps
        tokens = hyps[0].y_sequence
        tokens = tokens.tolist() if isinstance(tokens, torch.Tensor) else list(tokens)
        previous = self.text
        self.text = self.model.tokenizer.ids_to_text(tokens) if tokens else ""
        return self.text[len(previous) :] if self.text.startswith(previous) else self.text
