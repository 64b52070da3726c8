"""Batched beam search for aligner decoding, with the paper's label-smoothing debiasing.

B: batch size, K: beam size, N: hypotheses kept per utterance (= K), T: encoder frames, S: decoding steps,
D: encoder dim, J: joint hidden dim, H: prediction-network dim, L: LSTM layers, V1: vocabulary + EOS.

Output token i is read off encoder frame i, so at every step all beams of an utterance sit on the same frame and
differ only in token history (LSTM state) and score. Without blanks two beams never reach the same prefix by
different paths, so there is no path merging. The B*K beams are flattened into rows: one LSTM step and one joint
step per frame for all rows, then each utterance keeps the top K of its K*V1 extensions. A hypothesis is finished
when it emits EOS or runs out of frames; an utterance stops as soon as no live beam can change what it returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from nemo.collections.asr.modules import RNNTDecoder, RNNTJoint

from nemo_aligner_plugin.decoding.prediction import prediction_step
from nemo_aligner_plugin.decoding.types import BeamHyps, DecoderState
from nemo_aligner_plugin.modules.joint import joint_step

__all__ = ["BeamConfig", "beam_search", "debias_log_probs"]

NEG_INF = float("-inf")


@dataclass
class BeamConfig:
    beam_size: int = 6  # beams kept per utterance and length of the N-best list (paper: 6)
    debias: float = 2.0  # drop tokens with probability < debias / V1 and renormalize (paper: 2/V); 0 disables
    length_norm: bool = False  # rank finished hypotheses by score / (tokens + EOS) instead of the raw score
    return_best_hypothesis: bool = True  # False: N-best lists, best first (transcribe: a list per utterance, as NeMo)
    max_tokens: Optional[int] = None  # cap on decoding steps (tokens + EOS) per utterance; None: encoder frames

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise ValueError(f"decoding.beam.beam_size must be >= 1, got {self.beam_size}")
        if self.debias < 0:
            raise ValueError(f"decoding.beam.debias must be >= 0 (0 disables it), got {self.debias}")


def debias_log_probs(log_probs: torch.Tensor, debias: float) -> torch.Tensor:
    """(..., V1) log-probs -> log-probs over the tokens with probability >= debias / V1, renormalized.

    Label smoothing (0.1 in the paper) teaches the model to spread mass over every token; beam search would
    otherwise spend beams on that floor. The argmax is always kept, so a step never loses every token.
    """
    if debias <= 0:
        return log_probs
    keep = log_probs >= math.log(debias / log_probs.size(-1))
    keep.scatter_(-1, log_probs.argmax(dim=-1, keepdim=True), True)
    kept = log_probs.masked_fill(~keep, NEG_INF)
    return kept - kept.logsumexp(dim=-1, keepdim=True)


def _take(x: torch.Tensor, index: torch.Tensor, dim: int) -> torch.Tensor:
    """Gather along ``dim`` with an index (B, K) that broadcasts over the other dims of ``x``."""
    shape = [1] * x.dim()
    shape[dim - 1], shape[dim] = index.shape
    sizes = list(x.shape)
    sizes[dim] = index.size(1)
    return x.gather(dim, index.view(shape).expand(sizes))


@dataclass
class _Finished:
    """Pool of finished hypotheses per utterance, kept sorted by rank (best first)."""

    rank: torch.Tensor  # (B, K) ranking score (raw or length-normalized); -inf = empty slot
    scores: torch.Tensor  # (B, K) raw scores
    tokens: torch.Tensor  # (B, K, S) token histories, EOS-padded
    lengths: torch.Tensor  # (B, K) tokens, EOS excluded
    ended_with_eos: torch.Tensor  # (B, K)
    lstm: Optional[tuple[torch.Tensor, ...]]  # (h, c), each (L, B, K, H): state to continue from; lazily built
    last_tokens: torch.Tensor  # (B, K) token the state has not consumed yet; EOS = start (blank-as-pad embedding)

    def add(
        self,
        rank: torch.Tensor,
        scores: torch.Tensor,
        tokens: torch.Tensor,
        lengths: torch.Tensor,
        ended_with_eos: torch.Tensor,
        lstm: tuple[torch.Tensor, ...],
        last_tokens: torch.Tensor,
    ) -> None:
        """Merge this step's candidates (same shapes as the fields, rank -inf where not finished); keep the best K."""
        beam = self.rank.size(1)
        self.rank, sel = torch.cat([self.rank, rank], dim=1).topk(beam, dim=1)  # sorted, best first
        for name, new, dim in (
            ("scores", scores, 1),
            ("tokens", tokens, 1),
            ("lengths", lengths, 1),
            ("ended_with_eos", ended_with_eos, 1),
            ("last_tokens", last_tokens, 1),
        ):
            setattr(self, name, _take(torch.cat([getattr(self, name), new], dim=dim), sel, dim))
        self.lstm = tuple(_take(torch.cat([o, n], dim=2), sel, 2) for o, n in zip(self.lstm, lstm, strict=True))


@torch.no_grad()
def beam_search(
    decoder: RNNTDecoder,
    joint: RNNTJoint,
    encoder_out: torch.Tensor,
    encoder_out_lens: torch.Tensor,
    eos_id: int,
    cfg: Optional[BeamConfig] = None,
    state: Optional[DecoderState] = None,
) -> tuple[BeamHyps, DecoderState]:
    """Beam-search (B, T, D) encoder output; returns N-best hypotheses and the decoder state of the best.

    ``state`` (per utterance, as greedy returns it) is copied to every beam. With ``beam_size=1`` and
    ``debias=0`` this is exactly ``greedy_batch``: tokens, scores, stop reasons and the carried state (except
    for rows whose first output is EOS: greedy_batch leaves those after the start step, here they keep the start).
    An utterance stops once its best finished hypothesis (its K-th best when N-best lists are returned)
    can't be beaten by any live beam, so the result equals running every beam to the last frame.
    """
    cfg = cfg or BeamConfig()
    batch_size, beam, device = encoder_out.size(0), cfg.beam_size, encoder_out.device
    rows = batch_size * beam
    limit = encoder_out_lens.to(device).long()
    if cfg.max_tokens is not None:
        limit = limit.clamp(max=cfg.max_tokens)
    max_steps = int(limit.max()) if batch_size else 0
    # Finished ranks needed before an utterance may stop: the best suffices unless N-best lists are returned.
    needed = 1 if cfg.return_best_hypothesis else beam

    encoder_proj = joint.project_encoder(encoder_out[:, :max_steps]).unsqueeze(2)  # (B, S, 1, J), shared by beams
    lstm = None if state is None or state.lstm is None else tuple(s.repeat_interleave(beam, 1) for s in state.lstm)
    prev = None if state is None or state.last_tokens is None else state.last_tokens.repeat_interleave(beam)
    init_lstm, init_prev = lstm, prev

    done = limit == 0
    scores = torch.full((batch_size, beam), NEG_INF, device=device)
    scores[:, 0] = torch.where(done, NEG_INF, 0.0)  # one live beam at step 0, so no duplicate hypotheses
    history = torch.full((batch_size, beam, max_steps), eos_id, dtype=torch.long, device=device)
    empty = torch.zeros((batch_size, beam), dtype=torch.long, device=device)
    pool = _Finished(  # utterances without frames get one empty hypothesis with score 0, as in greedy
        rank=scores.new_full((batch_size, beam), NEG_INF),
        scores=torch.zeros((batch_size, beam), device=device),
        tokens=history.clone(),
        lengths=empty,
        ended_with_eos=empty.bool(),
        lstm=None,
        last_tokens=(init_prev.view(batch_size, beam) if init_prev is not None else empty + eos_id),
    )
    pool.rank[:, 0] = torch.where(done, 0.0, NEG_INF)
    row_base = torch.arange(batch_size, device=device).unsqueeze(1) * beam  # (B, 1) first row of each utterance

    for step in range(max_steps):
        if bool(done.all()):
            break
        pred_out, new_lstm = prediction_step(decoder, prev, lstm, rows)  # (B*K, 1, H)
        logits = joint_step(joint, encoder_proj[:, step], pred_out.view(batch_size, beam, -1))  # (B, K, V1)
        log_probs = debias_log_probs(torch.log_softmax(logits.float(), dim=-1), cfg.debias)
        num_classes = log_probs.size(-1)
        candidates = (scores.unsqueeze(-1) + log_probs).view(batch_size, beam * num_classes)
        top_scores, top_idx = candidates.topk(beam, dim=1)  # (B, K)
        src, tok = top_idx // num_classes, top_idx % num_classes
        valid = torch.isfinite(top_scores) & ~done.unsqueeze(1)
        ends = valid & (tok == eos_id)
        out_of_frames = valid & ~ends & (step + 1 >= limit).unsqueeze(1)
        live = valid & ~ends & ~out_of_frames

        src_rows = (row_base + src).view(-1)  # (B*K,) backpointers into the flattened rows
        history = _take(history, src, 1)
        history[:, :, step] = tok
        new_lstm = tuple(s.index_select(1, src_rows) for s in new_lstm)
        finished = ends | out_of_frames
        if bool(finished.any()):
            # EOS consumes nothing: keep the state before this step; a last real token is left unconsumed.
            old_lstm = (
                tuple(s.index_select(1, src_rows) for s in lstm)
                if lstm is not None
                else tuple(map(torch.zeros_like, new_lstm))
            )
            old_prev = prev[src_rows].view(batch_size, beam) if prev is not None else torch.full_like(tok, eos_id)
            ends_rows = ends.view(1, rows, 1)
            fin_lstm = tuple(
                torch.where(ends_rows, o, n).view(n.size(0), batch_size, beam, -1)
                for o, n in zip(old_lstm, new_lstm, strict=True)
            )
            if pool.lstm is None:
                start = init_lstm if init_lstm is not None else tuple(map(torch.zeros_like, new_lstm))
                pool.lstm = tuple(s.reshape(s.size(0), batch_size, beam, -1) for s in start)
            rank = top_scores / (step + 1) if cfg.length_norm else top_scores  # step + 1 = tokens + EOS
            pool.add(
                rank=torch.where(finished, rank, NEG_INF),
                scores=top_scores,
                tokens=history,
                lengths=torch.where(ends, step, step + 1),
                ended_with_eos=ends,
                lstm=fin_lstm,
                last_tokens=torch.where(ends, old_prev, tok),
            )

        scores = torch.where(live, top_scores, NEG_INF)
        lstm, prev = new_lstm, tok.view(-1)
        # Log-probs are <= 0, so a live beam can only lose score; with length_norm its best case is to stretch
        # over all remaining frames (score / limit). Stop once that bound can't reach the needed rank.
        bound = scores.max(dim=1).values
        if cfg.length_norm:
            bound = bound / limit.clamp(min=1)
        done |= pool.rank[:, needed - 1] >= bound

    num_hyps = torch.isfinite(pool.rank).sum(dim=1)
    u_max = int(pool.lengths.max()) if pool.lengths.numel() else 0
    hyps = BeamHyps(
        tokens=pool.tokens[:, :, :u_max],
        lengths=pool.lengths,
        scores=torch.where(torch.isfinite(pool.rank), pool.scores, NEG_INF),
        ended_with_eos=pool.ended_with_eos,
        num_hyps=num_hyps,
    )
    if pool.lstm is None:  # no step was taken: the input state is unchanged
        return hyps, DecoderState(lstm=state.lstm if state else None, last_tokens=state.last_tokens if state else None)
    return hyps, DecoderState(lstm=tuple(s[:, :, 0] for s in pool.lstm), last_tokens=pool.last_tokens[:, 0])
