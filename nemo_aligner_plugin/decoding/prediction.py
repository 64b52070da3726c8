"""One prediction-network step for decoding, and the cached first-layer input gates of every token.

B: batch size, H: prediction-network size, L: LSTM layers, V1: vocabulary + EOS.

A one-step ``nn.LSTM`` call on CPU goes through oneDNN, which re-packs the weights on every call: 86% of
greedy decoding time in benchmarks/ (NeMo's RNN-T decoders pay it too). ``torch.lstm_cell`` computes the
same LSTM directly, 1.6x (B=8) to 4.6x (B=1) faster per decode. Anything it does not cover (training mode,
adapters, LSTM projections, no biases) goes through NeMo's ``RNNTDecoder.predict``.
"""

from __future__ import annotations

import weakref
from typing import Optional

import torch
from nemo.collections.asr.modules import RNNTDecoder

__all__ = ["prediction_step", "plain_lstm", "input_gate_table"]

_INPUT_GATES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # LSTM -> (weights key, (V1, 4H) table)


def plain_lstm(decoder: RNNTDecoder) -> Optional[torch.nn.LSTM]:
    """The decoder's torch LSTM when per-step cells reproduce ``decoder.predict`` exactly (eval mode, biases, no
    projection, no adapters), else None."""
    lstm = getattr(decoder.prediction["dec_rnn"], "lstm", None)
    if not isinstance(lstm, torch.nn.LSTM) or not lstm.bias or lstm.proj_size:
        return None
    if decoder.training or decoder.is_adapter_available():
        return None
    return lstm


@torch.no_grad()
def input_gate_table(embed: torch.nn.Embedding, lstm: torch.nn.LSTM) -> torch.Tensor:
    """(V1, 4H) first-layer input gates of every token, ``embed.weight @ W_ih^T + b_ih + b_hh``.

    A decoding step then gathers B rows instead of running the embedding and a (B, H) x (H, 4H) GEMM: on CPU a
    step is bound by reading weights, and W_ih is ~40% of them. Cached per LSTM until a weight is replaced or
    changed in place (optimizer steps and ``load_state_dict`` bump ``Tensor._version``), so training between
    decodes is safe.
    """
    w_ih, _, b_ih, b_hh = lstm.all_weights[0]
    params = [embed.weight, w_ih, b_ih, b_hh]
    key = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in params)
    cached = _INPUT_GATES.get(lstm)
    if cached is not None and cached[0] == key:
        return cached[1]
    table = torch.nn.functional.linear(embed.weight, w_ih, b_ih + b_hh)
    _INPUT_GATES[lstm] = (key, table)
    return table


def prediction_step(
    decoder: RNNTDecoder,
    tokens: Optional[torch.Tensor],
    state: Optional[tuple[torch.Tensor, torch.Tensor]],
    batch_size: int,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """(B,) previous tokens (None: start of sequence) and (h, c) each (L, B, H) -> ((B, 1, H), new (h, c))."""
    lstm = plain_lstm(decoder)
    if lstm is None:
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
