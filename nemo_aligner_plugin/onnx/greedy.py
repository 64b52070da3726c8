"""Batched greedy aligner decoding over the exported ``decoder_joint`` graph, in numpy.

B: batch size, T: encoder frames, D: encoder dim, L: LSTM layers, H: LSTM size, V1: vocabulary + EOS.

The same search as ``decoding.greedy.greedy_batch``: output token i is read off encoder frame i; a row stops at
EOS or when its frames run out; rows that have emitted nothing hold the zero state and EOS as previous token.
One difference in how, not what: only the rows still running go into each graph call, so a batch costs its
rows' tokens, not B times its longest row.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["greedy_decode"]


def greedy_decode(
    session,
    encoded: np.ndarray,
    lengths: np.ndarray,
    eos_id: int,
    num_layers: int,
    hidden: int,
    max_tokens: Optional[int] = None,
) -> list[list[int]]:
    """Decode (B, D, T) encoder output with an onnxruntime session of ``decoder_joint.onnx``: each row's tokens
    (frame i carries token i)."""
    batch = encoded.shape[0]
    limit = lengths.astype(np.int64).copy()
    if max_tokens is not None:
        limit = np.minimum(limit, max_tokens)
    token_type = _input_dtype(session, "targets")
    length_type = _input_dtype(session, "target_length")
    state_h = np.zeros((num_layers, batch, hidden), dtype=np.float32)
    state_c = np.zeros_like(state_h)
    prev = np.full(batch, eos_id, dtype=np.int64)
    tokens: list[list[int]] = [[] for _ in range(batch)]
    running = np.flatnonzero(limit > 0)
    step = 0
    while running.size:
        frame = np.ascontiguousarray(encoded[running, :, step : step + 1])
        logits, _, new_h, new_c = session.run(
            None,
            {
                "encoder_outputs": frame,
                "targets": prev[running, None].astype(token_type),
                "target_length": np.ones(running.size, dtype=length_type),
                "input_states_1": state_h[:, running],
                "input_states_2": state_c[:, running],
            },
        )
        best = logits.reshape(running.size, -1).argmax(axis=1)
        emitted = best != eos_id
        rows = running[emitted]
        for row, token in zip(rows.tolist(), best[emitted].tolist(), strict=True):
            tokens[row].append(token)
        state_h[:, rows] = new_h[:, emitted]
        state_c[:, rows] = new_c[:, emitted]
        prev[rows] = best[emitted]
        step += 1
        running = rows[limit[rows] > step]  # a row stops at EOS or when its frames (or max_tokens) run out
    return tokens


_ONNX_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


def _input_dtype(session, name: str):
    for node in session.get_inputs():
        if node.name == name:
            return _ONNX_TYPES[node.type]
    raise ValueError(f"decoder_joint.onnx has no input {name!r}; inputs: {[n.name for n in session.get_inputs()]}")
