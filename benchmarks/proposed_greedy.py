"""Proposed faster aligner greedy decoding (not in the package; measured by benchmarks/run.py).

B: batch size, T: encoder frames, S: decoding steps, D: encoder dim, J: joint dim, H: LSTM dim, L: LSTM layers,
V1: vocabulary + EOS.

Same inputs, outputs and decoder-state contract as ``nemo_aligner_plugin.decoding.greedy.greedy_batch``. Why it is
faster on CPU (numbers in benchmarks/results/):

1. ``torch.nn.LSTM`` called one step at a time goes through oneDNN, which re-packs the weights on every call
   (~10x the cost of the arithmetic at H=640). ``torch.lstm_cell`` / plain GEMMs do the same math.
2. The first layer's input GEMM is a function of the previous token only: ``embed.weight @ W_ih^T + b_ih + b_hh``
   is a (V1, 4H) table, computed once per weight version and cached, so a step gathers B rows of it instead of
   running the embedding and a (B, H) x (H, 4H) GEMM. On CPU a step is bound by reading weights, and this drops
   W_ih (40% of the per-step weight bytes: W_ih, W_hh, the joint's prediction projection and output layer).
3. ``RNNTDecoder.predict`` adds per-call Python work (``next(self.parameters())``, transposes, adapter checks);
   calling the pieces directly skips it.
4. Bookkeeping that greedy_batch does every step (masking the LSTM state of finished rows with ``torch.where``,
   masking tokens/scores) is needed only on the few steps where a row stops: rows keep computing (a batched step
   costs the same), and a row's state is saved when it emits EOS or runs out of frames; tokens and scores are
   masked once after the loop.
"""

from __future__ import annotations

import weakref
from typing import Optional

import torch
from nemo.collections.asr.modules import RNNTDecoder, RNNTJoint
from nemo.collections.common.parts.rnn import LSTMDropout

from nemo_aligner_plugin.decoding.greedy import BatchedHyps, DecoderState, GreedyBatchConfig, greedy_batch

__all__ = ["greedy_batch_fast", "input_gate_table"]

_INPUT_GATES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # LSTM -> (weights key, (V1, 4H) table)


def _plain_lstm(decoder: RNNTDecoder) -> Optional[torch.nn.LSTM]:
    """The decoder's torch LSTM if a per-step cell reproduces ``decoder.predict`` exactly, else None."""
    rnn = decoder.prediction["dec_rnn"]
    if not isinstance(rnn, LSTMDropout) or decoder.is_adapter_available() or rnn.lstm.proj_size:
        return None
    return rnn.lstm


@torch.no_grad()
def input_gate_table(embed: torch.nn.Embedding, lstm: torch.nn.LSTM) -> torch.Tensor:
    """(V1, 4H) first-layer input gates of every token, ``embed.weight @ W_ih^T + b_ih + b_hh``.

    Cached per LSTM until one of the weights is replaced or changed in place (optimizer steps and
    ``load_state_dict`` bump ``Tensor._version``), so training between decodes is safe.
    """
    w_ih, _, *biases = lstm.all_weights[0]
    params = [embed.weight, w_ih, *biases]
    key = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in params)
    cached = _INPUT_GATES.get(lstm)
    if cached is not None and cached[0] == key:
        return cached[1]
    table = torch.nn.functional.linear(embed.weight, w_ih, biases[0] + biases[1] if biases else None)
    _INPUT_GATES[lstm] = (key, table)
    return table


@torch.no_grad()
def greedy_batch_fast(
    decoder: RNNTDecoder,
    joint: RNNTJoint,
    encoder_out: torch.Tensor,
    encoder_out_lens: torch.Tensor,
    eos_id: int,
    cfg: Optional[GreedyBatchConfig] = None,
    state: Optional[DecoderState] = None,
) -> tuple[BatchedHyps, DecoderState]:
    """Decode (B, T, D) encoder output greedily; same results as ``greedy_batch`` (scores up to float rounding)."""
    lstm = _plain_lstm(decoder)
    if lstm is None or decoder.training or joint.training:
        return greedy_batch(decoder, joint, encoder_out, encoder_out_lens, eos_id, cfg, state)
    cfg = cfg or GreedyBatchConfig()
    batch_size, device = encoder_out.size(0), encoder_out.device
    limit = encoder_out_lens.to(device).long()
    if cfg.max_tokens is not None:
        limit = limit.clamp(max=cfg.max_tokens)
    max_steps = int(limit.max()) if batch_size else 0

    gate_table = input_gate_table(decoder.prediction["embed"], lstm)  # (V1, 4H)
    # per layer: w_ih, w_hh, b_ih, b_hh (biases None when the LSTM has none)
    weights = [(list(lstm.all_weights[layer]) + [None, None])[:4] for layer in range(lstm.num_layers)]
    encoder_proj = joint.project_encoder(encoder_out[:, :max_steps])  # (B, S, J)
    if state is not None:
        h, c = (list(s.unbind(0)) for s in state.lstm)
        prev = state.last_tokens
    else:
        zeros = encoder_out.new_zeros(batch_size, lstm.hidden_size)
        h, c = [zeros] * lstm.num_layers, [zeros] * lstm.num_layers
        prev = torch.full((batch_size,), eos_id, dtype=torch.long, device=device)
    final_h, final_c, final_prev = list(h), list(c), prev  # state each row stops with

    tokens = torch.full((batch_size, max_steps), eos_id, dtype=torch.long, device=device)
    token_logp = torch.zeros((batch_size, max_steps), device=device)
    ended = torch.zeros(batch_size, dtype=torch.bool, device=device)
    out_of_frames_at = set(limit.tolist())  # steps where some row runs out of frames (or max_tokens)

    def save(rows: torch.Tensor, hs: list, cs: list, tok: torch.Tensor) -> None:
        nonlocal final_prev
        col = rows.unsqueeze(1)
        for layer in range(len(hs)):
            final_h[layer] = torch.where(col, hs[layer], final_h[layer])
            final_c[layer] = torch.where(col, cs[layer], final_c[layer])
        final_prev = torch.where(rows, tok, final_prev)

    executed = 0
    for step in range(max_steps):
        if step in out_of_frames_at:
            save((limit == step) & ~ended, h, c, prev)
        # layer 0: gathered input gates (EOS row = biases only: EOS embeds to zeros, like the start of sequence)
        gates = torch.addmm(gate_table.index_select(0, prev), h[0], weights[0][1].t())  # (B, 4H)
        in_gate, forget_gate, cell_gate, out_gate = gates.chunk(4, dim=1)
        x_c = torch.sigmoid(forget_gate) * c[0] + torch.sigmoid(in_gate) * torch.tanh(cell_gate)
        x = torch.sigmoid(out_gate) * torch.tanh(x_c)
        new_h, new_c = [x], [x_c]
        for layer in range(1, len(weights)):
            x, x_c = torch.lstm_cell(x, (h[layer], c[layer]), *weights[layer])
            new_h.append(x)
            new_c.append(x_c)
        logits = joint.joint_net(encoder_proj[:, step] + joint.project_prednet(x))  # (B, V1)
        best_logp, best = torch.log_softmax(logits.float(), dim=-1).max(dim=-1)
        tokens[:, step] = best
        token_logp[:, step] = best_logp
        is_eos = best == eos_id
        some_eos = bool(is_eos.any())
        if some_eos:  # rare: rows stop here; EOS consumes nothing, so they keep the state from before this step
            stops = is_eos & ~ended & (step < limit)
            save(stops, h, c, prev)
            ended |= stops
        h, c, prev = new_h, new_c, best
        executed = step + 1
        if some_eos and bool((ended | (executed >= limit)).all()):
            break
    save(~ended & (limit >= executed), h, c, prev)  # rows that used every frame they were given

    # Row b emitted tokens[b, :lengths[b]], then EOS (ended) or nothing (out of frames).
    steps = torch.arange(max_steps, device=device)
    first_eos = torch.where(tokens == eos_id, steps, max_steps).min(dim=1).values if max_steps else limit
    lengths = torch.where(ended, first_eos, limit)
    scored = steps.unsqueeze(0) < (lengths + ended.long()).unsqueeze(1)  # EOS's log-prob counts when emitted
    scores = (token_logp * scored).sum(dim=1)
    u_max = int(lengths.max()) if batch_size else 0
    tokens = tokens[:, :u_max].masked_fill(steps[:u_max].unsqueeze(0) >= lengths.unsqueeze(1), eos_id)
    frames = torch.arange(u_max, device=device).expand(batch_size, u_max)
    hyps = BatchedHyps(tokens, lengths, scores, frames, ended)
    return hyps, DecoderState(lstm=(torch.stack(final_h), torch.stack(final_c)), last_tokens=final_prev)
