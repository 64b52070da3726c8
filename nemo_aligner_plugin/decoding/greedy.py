"""Batched greedy aligner decoding.

B: batch size, T: encoder frames, D: encoder dim, J: joint hidden dim, H: prediction-network dim,
L: LSTM layers, V1: vocabulary + EOS.

Output token i is read off encoder frame i. All rows step together over frames; a row stops at EOS
or when its frames run out. Cost is O(U) prediction-network + joint steps, no lattice, no blanks.

Two loops with one contract (tests/decoding/test_greedy.py holds both to a per-utterance reference):
``_greedy_gate_table`` for NeMo's plain LSTM prediction network in eval mode (the default; 1.8-9x faster on CPU,
benchmarks/), ``_greedy_stepwise`` for anything else (training mode, adapters, LSTM projections).
Why the first is faster, beyond the cached input-gate table (prediction.input_gate_table):
- it calls the LSTM cells and joint layers directly, skipping ``RNNTDecoder.predict``'s per-call Python work;
- per-step bookkeeping (masking finished rows' state, tokens, scores) happens only on the rare steps where a
  row stops: rows keep computing (a batched step costs the same), and tokens/scores are masked once at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from nemo.collections.asr.modules import RNNTDecoder, RNNTJoint

from nemo_aligner_plugin.decoding.prediction import input_gate_table, plain_lstm, prediction_step
from nemo_aligner_plugin.decoding.types import BatchedHyps, DecoderState
from nemo_aligner_plugin.modules.joint import joint_step

__all__ = ["GreedyBatchConfig", "greedy_batch"]


@dataclass
class GreedyBatchConfig:
    max_tokens: Optional[int] = None  # cap on tokens per utterance; None: bounded by encoder frames only


@torch.no_grad()
def greedy_batch(
    decoder: RNNTDecoder,
    joint: RNNTJoint,
    encoder_out: torch.Tensor,
    encoder_out_lens: torch.Tensor,
    eos_id: int,
    cfg: Optional[GreedyBatchConfig] = None,
    state: Optional[DecoderState] = None,
) -> tuple[BatchedHyps, DecoderState]:
    """Decode (B, T, D) encoder output greedily; returns hypotheses and the final decoder state.

    A row that ends with EOS keeps the state from before EOS (EOS consumes nothing), so ``state`` carries a
    row's context into its next chunk (long-form decoding).
    """
    cfg = cfg or GreedyBatchConfig()
    lstm = plain_lstm(decoder)
    if lstm is not None and not joint.training and decoder.prediction["embed"].num_embeddings > eos_id:
        return _greedy_gate_table(lstm, decoder, joint, encoder_out, encoder_out_lens, eos_id, cfg, state)
    return _greedy_stepwise(decoder, joint, encoder_out, encoder_out_lens, eos_id, cfg, state)


def _greedy_stepwise(decoder, joint, encoder_out, encoder_out_lens, eos_id, cfg, state):  # greedy_batch's arguments
    """Any prediction network, one ``prediction_step`` + ``joint_step`` per frame, masks updated every step."""
    batch_size, num_frames, _ = encoder_out.shape
    device = encoder_out.device
    lens = encoder_out_lens.to(device).long()
    max_steps = int(lens.max()) if batch_size else 0
    if cfg.max_tokens is not None:
        max_steps = min(max_steps, cfg.max_tokens)

    encoder_proj = joint.project_encoder(encoder_out[:, :max_steps])  # (B, S, J), once for all steps
    tokens = torch.full((batch_size, max_steps), eos_id, dtype=torch.long, device=device)
    scores = torch.zeros(batch_size, dtype=torch.float32, device=device)
    lengths = torch.zeros(batch_size, dtype=torch.long, device=device)
    ended = torch.zeros(batch_size, dtype=torch.bool, device=device)
    limit = lens if cfg.max_tokens is None else lens.clamp(max=cfg.max_tokens)

    # Rows that have emitted nothing hold the zero state and EOS as "previous token": EOS is the RNN-T
    # blank slot, which embeds to zeros (blank_as_pad), exactly like the start-of-sequence input.
    lstm = state.lstm if state is not None else decoder.initialize_state(encoder_out)
    prev = state.last_tokens if state is not None else torch.full_like(lengths, eos_id)
    for step in range(max_steps):
        active = (~ended) & (step < limit)
        if not bool(active.any()):
            break
        pred_out, new_lstm = prediction_step(decoder, prev, lstm, batch_size)
        log_probs = torch.log_softmax(joint_step(joint, encoder_proj[:, step], pred_out[:, 0]).float(), dim=-1)
        best_logp, best = log_probs.max(dim=-1)
        best = torch.where(active, best, eos_id)
        tokens[:, step] = best
        scores += torch.where(active, best_logp, 0.0)
        emitted = active & (best != eos_id)
        lengths += emitted.long()
        ended |= active & (best == eos_id)
        # Only rows that emitted a real token advance; finished rows keep their state for carry-over.
        keep = emitted.view(1, -1, 1)
        lstm = tuple(torch.where(keep, n, o) for n, o in zip(new_lstm, lstm, strict=True))
        prev = torch.where(emitted, best, prev)

    u_max = int(lengths.max()) if batch_size else 0
    frames = torch.arange(u_max, device=device).expand(batch_size, u_max)
    hyps = BatchedHyps(tokens[:, :u_max], lengths, scores, frames, ended)
    return hyps, DecoderState(lstm=lstm, last_tokens=prev)


def _greedy_gate_table(lstm, decoder, joint, encoder_out, encoder_out_lens, eos_id, cfg, state):  # + the plain LSTM
    """The same search for a plain LSTM in eval mode, with gathered input gates and stop-only bookkeeping."""
    batch_size, device = encoder_out.size(0), encoder_out.device
    limit = encoder_out_lens.to(device).long()
    if cfg.max_tokens is not None:
        limit = limit.clamp(max=cfg.max_tokens)
    max_steps = int(limit.max()) if batch_size else 0

    gate_table = input_gate_table(decoder.prediction["embed"], lstm)  # (V1, 4H)
    weights = [lstm.all_weights[layer] for layer in range(lstm.num_layers)]  # w_ih, w_hh, b_ih, b_hh per layer
    encoder_proj = joint.project_encoder(encoder_out[:, :max_steps])  # (B, S, J)
    if state is not None:
        h, c = (list(s.unbind(0)) for s in state.lstm)
        prev = state.last_tokens
    else:
        zeros = encoder_out.new_zeros(batch_size, lstm.hidden_size)
        h, c = [zeros] * lstm.num_layers, [zeros] * lstm.num_layers
        prev = torch.full((batch_size,), eos_id, dtype=torch.long, device=device)
    final_h, final_c, final_prev = list(h), list(c), prev  # the state each row stops with

    tokens = torch.full((batch_size, max_steps), eos_id, dtype=torch.long, device=device)
    token_logp = torch.zeros((batch_size, max_steps), device=device)
    ended = torch.zeros(batch_size, dtype=torch.bool, device=device)
    out_of_frames_at = set(limit.tolist())  # steps at which some row runs out of frames (or max_tokens)

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
        # layer 0 from the gathered input gates (the EOS row is the biases: EOS embeds to zeros, like the start)
        gates = torch.addmm(gate_table.index_select(0, prev), h[0], weights[0][1].t())  # (B, 4H)
        in_gate, forget_gate, cell_gate, out_gate = gates.chunk(4, dim=1)
        x_c = torch.sigmoid(forget_gate) * c[0] + torch.sigmoid(in_gate) * torch.tanh(cell_gate)
        x = torch.sigmoid(out_gate) * torch.tanh(x_c)
        new_h, new_c = [x], [x_c]
        for layer in range(1, len(weights)):
            x, x_c = torch.lstm_cell(x, (h[layer], c[layer]), *weights[layer])
            new_h.append(x)
            new_c.append(x_c)
        logits = joint_step(joint, encoder_proj[:, step], x)  # (B, V1)
        best_logp, best = torch.log_softmax(logits.float(), dim=-1).max(dim=-1)
        tokens[:, step] = best
        token_logp[:, step] = best_logp
        is_eos = best == eos_id
        some_eos = bool(is_eos.any())
        if some_eos:  # rows stop here and keep the state from before this step
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
