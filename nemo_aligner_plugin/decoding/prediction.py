"""One prediction-network step for decoding.

B: batch size, H: prediction-network size, L: LSTM layers.

A one-step ``nn.LSTM`` call on CPU goes through oneDNN, which re-packs the weights on every call: 86% of
greedy decoding time in benchmarks/ (NeMo's RNN-T decoders pay it too). ``torch.lstm_cell`` computes the
same LSTM directly, 1.6x (B=8) to 4.6x (B=1) faster per decode. Anything it does not cover (training mode,
adapters, LSTM projections, no biases) goes through NeMo's ``RNNTDecoder.predict``.
"""

from __future__ import annotations

from typing import Optional

import torch
from nemo.collections.asr.modules import RNNTDecoder

__all__ = ["prediction_step"]


def prediction_step(
    decoder: RNNTDecoder,
    tokens: Optional[torch.Tensor],
    state: Optional[tuple[torch.Tensor, torch.Tensor]],
    batch_size: int,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """(B,) previous tokens (None: start of sequence) and (h, c) each (L, B, H) -> ((B, 1, H), new (h, c))."""
    lstm = getattr(decoder.prediction["dec_rnn"], "lstm", None)
    plain_lstm = isinstance(lstm, torch.nn.LSTM) and lstm.bias and not lstm.proj_size
    if not plain_lstm or decoder.training or decoder.is_adapter_available():
        y = None if tokens is None else tokens.unsqueeze(1)
        return decoder.predict(y, state=state, add_sos=False, batch_size=batch_size)
    embed = decoder.prediction["embed"]
    if tokens is None:  # start of sequence: NeMo's SOS input is a zero vector (as is the blank embedding)
        x = embed.weight.new_zeros(batch_size, embed.embedding_dim)
    else:
        x = embed(tokens)
    if state is None:
        state = decoder.initialize_state(x)
    hs, cs = [], []
    for layer in range(lstm.num_layers):
        x, c = torch.lstm_cell(x, (state[0][layer], state[1][layer]), *lstm.all_weights[layer])
        hs.append(x)
        cs.append(c)
    return x.unsqueeze(1), (torch.stack(hs), torch.stack(cs))
