"""The chunkwise loss: lattice log-probabilities from NeMo's joint, and the negative log-likelihood over chunk splits.

B: batch size, T: encoder frames, D: encoder dim, U: max target tokens, H: prediction-network dim, J: joint hidden
dim, V1: vocabulary + EOC, C: chunk size in encoder frames, N: chunks (ceil(T / C)), K: label slots per chunk,
P: lattice points computed.

Chunk c's slot j is its frame c*C + j; a lattice point (c, j, u) meets that frame with prediction state u, and
only two of its V1 log-probabilities are read: the next label y_{u+1} and EOC.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from nemo.collections.asr.modules import RNNTJoint
from nemo.core.classes import Loss, typecheck
from nemo.core.neural_types import LengthsType, LogprobsType, LossType, NeuralType
from torch.utils.checkpoint import checkpoint

from nemo_aligner_plugin.chunkwise.lattice import chunk_slot_counts, chunkwise_log_likelihood
from nemo_aligner_plugin.loss import REDUCTIONS, smoothing_distribution

__all__ = ["ChunkwiseLoss", "LatticeLogProbs", "lattice_log_probs", "lattice_points"]


class LatticeLogProbs(NamedTuple):
    """What ``ChunkwiseLoss`` reads; entries off every path of an utterance are 0 (not computed)."""

    label_logp: torch.Tensor  # (B, N, K, U+1) log P(y_{u+1} | chunk c, slot j, prediction state u)
    eoc_logp: torch.Tensor  # (B, N, K, U+1) log P(EOC | chunk c, slot j, prediction state u)
    chunk_slots: torch.Tensor  # (B, N) usable slots of each chunk, 0 past the utterance's end


def lattice_points(
    chunk_slots: torch.Tensor, target_lengths: torch.Tensor | None, max_labels: int, num_states: int
) -> torch.Tensor:
    """(B, N) slots, (B,) U_b -> (B, N, K, U+1) bool: the points that lie on at least one complete split.

    Before chunk c at most ``sum(S[:c])`` labels can have been emitted, and after it at most ``sum(S[c+1:])`` can
    follow, so slot j of chunk c only meets prediction states u in
    ``[max(j, U_b - sum(S[c:]) + j), min(sum(S[:c]) + j, U_b)]``; the other points never reach the likelihood.
    Without ``target_lengths`` only the upper bound is used (u <= sum(S[:c]) + j holds for every U_b).
    """
    slots = chunk_slots.long()
    before = (slots.cumsum(1) - slots).unsqueeze(-1)  # (B, N, 1) slots of the earlier chunks
    j = torch.arange(max_labels, device=slots.device)
    low, high = j.expand_as(before + j), before + j  # (B, N, K)
    if target_lengths is not None:
        lengths = target_lengths.long().view(-1, 1, 1)
        from_here = slots.sum(1).view(-1, 1, 1) - before  # slots of this chunk and the later ones
        low, high = torch.maximum(low, lengths - from_here + j), torch.minimum(high, lengths)
    low = low.masked_fill(j >= slots.unsqueeze(-1), num_states)  # empty range for unusable slots
    u = torch.arange(num_states, device=slots.device)
    return (u >= low.unsqueeze(-1)) & (u <= high.unsqueeze(-1))


def _two_log_probs(
    joint: RNNTJoint,
    enc_proj: torch.Tensor,
    pred_proj: torch.Tensor,
    rows: torch.Tensor,
    picks: torch.Tensor,
    smoothing: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """(P, 2) float32 log-probabilities of the ``picks`` classes where ``enc_proj[rows[:, 0]]`` meets
    ``pred_proj[rows[:, 1]]``. The (P, J) sum is made here, not passed in: NeMo's joint applies its ReLU in place.

    ``smoothing`` (V1,), the label-smoothing weight times its distribution: the label column becomes
    ``(1 - eps) log p(label) + sum_v smoothing_v log p(v)`` (eps = smoothing.sum()); EOC stays as it is."""
    hidden = enc_proj.index_select(0, rows[:, 0]) + pred_proj.index_select(0, rows[:, 1])
    log_probs = joint.joint_net(hidden).float().log_softmax(dim=-1)
    values = log_probs.gather(-1, picks)
    if smoothing is None:
        return values
    smoothed = (1.0 - smoothing.sum()) * values[:, 0] + log_probs @ smoothing
    return torch.stack([smoothed, values[:, 1]], dim=1)


def lattice_log_probs(
    joint: RNNTJoint,
    encoder_out: torch.Tensor,
    pred_out: torch.Tensor,
    targets: torch.Tensor,
    chunk_size: int,
    max_labels: int,
    eoc_id: int,
    *,
    encoder_lengths: torch.Tensor | None = None,
    target_lengths: torch.Tensor | None = None,
    prune: bool = True,
    group_points: int | None = None,
    smoothing: Optional[torch.Tensor] = None,
) -> LatticeLogProbs:
    """Label and EOC log-probabilities at the first K frames of every chunk, for every prediction state.

    The joint is NeMo's (``project_encoder`` + ``project_prednet`` -> ``joint_net``, log-softmax in float32), as in
    ``modules.joint.diagonal_logits``, but evaluated at (B, N, K, U+1) points instead of the diagonal.

    Args:
        joint: NeMo RNNTJoint whose last class (``eoc_id``) is EOC.
        encoder_out: (B, T, D); padded with zero frames up to N*C.
        pred_out: (B, U+1, H) prediction-network outputs, state u conditioned on tokens < u.
        targets: (B, U) token ids (padding may hold any value: it is never read as a label).
        chunk_size: C.
        max_labels: K, labels per chunk at most (K <= C).
        eoc_id: the EOC class.
        encoder_lengths, target_lengths: (B,) per-utterance lengths (default: the padded T; no target bound). With
            them the chunk slots are per utterance and pruning skips more points: pass them when training.
        prune: compute only the points on some complete split (``lattice_points``); the rest stay 0. At the
            paper's shape (T=300, U=100, C=16, K=8) that is about a third of the points.
        group_points: evaluate the joint on this many points at a time, each group under activation
            checkpointing (peak memory of one group, one more joint forward in backward). Default: all at once.
        smoothing: (V1,) label smoothing on the label arcs, its weight times its distribution (see
            ``smoothing_distribution``); every split has exactly U label arcs, so it does not favour one split over
            another, and the EOC arcs, which choose the split, are left unsmoothed. None: the exact likelihood.

    Returns:
        ``LatticeLogProbs(label_logp, eoc_logp, chunk_slots)``, log-probs in float32.
    """
    if not 1 <= max_labels <= chunk_size:
        raise ValueError(f"chunkwise: max_labels_per_chunk must be in [1, chunk_size={chunk_size}], got {max_labels}")
    batch, frames, _ = encoder_out.shape
    states = pred_out.size(1)
    chunks = max(1, -(-frames // chunk_size))
    if encoder_lengths is None:
        encoder_lengths = torch.full((batch,), frames, dtype=torch.long, device=encoder_out.device)
    chunk_slots = chunk_slot_counts(encoder_lengths, chunks, chunk_size, max_labels)
    if prune:
        needed = lattice_points(chunk_slots, target_lengths, max_labels, states)
    else:
        needed = torch.ones(batch, chunks, max_labels, states, dtype=torch.bool, device=encoder_out.device)

    padded = torch.nn.functional.pad(encoder_out, (0, 0, 0, chunks * chunk_size - frames))
    slot_frames = padded.view(batch, chunks, chunk_size, -1)[:, :, :max_labels]  # (B, N, K, D)
    enc_proj = joint.project_encoder(slot_frames).reshape(batch * chunks * max_labels, -1)
    pred_proj = joint.project_prednet(pred_out).reshape(batch * states, -1)

    flat = needed.reshape(-1).nonzero().squeeze(1)  # (P,) row-major over (b, c, j, u)
    u = flat % states
    slot_row = flat // states  # (b * N + c) * K + j
    b = slot_row // (chunks * max_labels)
    rows = torch.stack([slot_row, b * states + u], dim=1)  # (P, 2) rows of enc_proj and pred_proj
    labels = torch.cat([targets.long(), targets.new_zeros(batch, 1).long()], dim=1).clamp(0, eoc_id)
    picks = torch.stack([labels[b, u], torch.full_like(u, eoc_id)], dim=1)  # (P, 2) classes read at each point
    if group_points is None:
        values = _two_log_probs(joint, enc_proj, pred_proj, rows, picks, smoothing)
    else:
        groups = [(rows[i : i + group_points], picks[i : i + group_points]) for i in range(0, len(rows), group_points)]
        parts = [
            checkpoint(_two_log_probs, joint, enc_proj, pred_proj, *g, smoothing, use_reentrant=False) for g in groups
        ]
        values = torch.cat(parts) if parts else enc_proj.new_zeros(0, 2, dtype=torch.float32)
    dense = values.new_zeros(needed.numel(), 2).index_copy(0, flat, values)
    dense = dense.view(batch, chunks, max_labels, states, 2)
    return LatticeLogProbs(dense[..., 0], dense[..., 1], chunk_slots)


class ChunkwiseLoss(Loss):
    """Negative log-likelihood of the targets summed over every split across chunks (``chunkwise_log_likelihood``).

    Reductions: ``mean_token`` divides the summed NLL by sum(U_b + chunks_b) over the kept utterances: every
    utterance makes U_b label decisions and one end-of-chunk decision per chunk (EOC or the forced advance of a
    full chunk), the chunkwise counterpart of AlignerLoss's U+1 positions (tokens + EOS), and the count does not
    depend on the alignment, so the loss scale is comparable across batches and with the offline aligner.
    ``mean_utterance`` divides by the kept utterances, ``sum`` does not divide.

    Label smoothing (``label_smoothing`` > 0, the paper's batch prior by default) applies to the label arcs only
    (``smoothing`` of ``lattice_log_probs``, which this class computes for a batch): every split has exactly U_b
    label arcs, while smoothing the EOC arcs would pull splits towards ending chunks early or late.

    An utterance with more tokens than its chunks have slots (U_b > sum_c min(K, frames of chunk c)) has no
    split: it is dropped (never NaN or inf) and ``num_skipped_last`` counts the ones the last call dropped.
    """

    @property
    def input_types(self):
        log_probs, lengths = NeuralType(("B", "T", "T", "T"), LogprobsType()), NeuralType(tuple("B"), LengthsType())
        return {"label_logp": log_probs, "eoc_logp": log_probs, "target_lengths": lengths, "encoder_lengths": lengths}

    @property
    def output_types(self):
        return {"loss": NeuralType(elements_type=LossType())}

    def __init__(
        self,
        eoc_id: int,
        chunk_size: int,
        max_labels_per_chunk: int | None = None,
        reduction: str = "mean_token",
        label_smoothing: float = 0.0,
        smoothing_mode: str = "batch_prior",
        prior_include_eos: bool = False,
    ):
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"loss.label_smoothing must be in [0, 1), got {label_smoothing}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"chunkwise loss.reduction must be one of {REDUCTIONS}, got {reduction!r}")
        max_labels = chunk_size if max_labels_per_chunk is None else max_labels_per_chunk
        if chunk_size < 1 or not 1 <= max_labels <= chunk_size:
            raise ValueError(
                f"chunkwise: need chunk_size >= 1 and 1 <= max_labels_per_chunk <= chunk_size, "
                f"got chunk_size={chunk_size}, max_labels_per_chunk={max_labels_per_chunk}"
            )
        self.eoc_id = eoc_id
        self.chunk_size = chunk_size
        self.max_labels = max_labels
        self.reduction = reduction
        self.label_smoothing, self.smoothing_mode, self.prior_include_eos = (
            label_smoothing,
            smoothing_mode,
            prior_include_eos,
        )
        self.num_skipped_last = 0  # utterances the last call left out (more tokens than chunk slots)

    def smoothing(
        self, targets: torch.Tensor, target_lengths: torch.Tensor, num_classes: int
    ) -> Optional[torch.Tensor]:
        """(V1,) label-smoothing weights for ``lattice_log_probs`` from a batch's (B, U) targets; None when off."""
        if self.label_smoothing == 0:
            return None
        mask = torch.arange(targets.size(1), device=targets.device) < target_lengths.unsqueeze(1)
        prior = smoothing_distribution(
            targets.long(), mask, num_classes, self.eoc_id, self.smoothing_mode, self.prior_include_eos
        )
        return self.label_smoothing * prior

    @typecheck()
    def forward(self, label_logp, eoc_logp, target_lengths, encoder_lengths):
        """label_logp, eoc_logp: (B, N, K, U+1) (``lattice_log_probs``); lengths: (B,) tokens and encoder frames."""
        _, chunks, slots, _ = label_logp.shape
        if slots != self.max_labels:
            raise ValueError(f"chunkwise loss: log-probs have {slots} slots per chunk, expected K={self.max_labels}")
        encoder_lengths, target_lengths = encoder_lengths.long(), target_lengths.long()
        if int(encoder_lengths.max()) > chunks * self.chunk_size:
            raise ValueError(
                f"chunkwise loss: {chunks} chunks of {self.chunk_size} frames cannot hold {int(encoder_lengths.max())}"
                " encoder frames"
            )
        chunk_slots = chunk_slot_counts(encoder_lengths, chunks, self.chunk_size, self.max_labels)
        kept = target_lengths <= chunk_slots.sum(1)
        self.num_skipped_last = int((~kept).sum())
        log_likelihood = chunkwise_log_likelihood(label_logp, eoc_logp, target_lengths, chunk_slots)
        nll = torch.where(kept, -log_likelihood, torch.zeros_like(log_likelihood))
        total = nll.sum()
        if self.reduction == "sum":
            return total
        if self.reduction == "mean_utterance":
            return total / kept.sum().clamp(min=1)
        chunks_per_utt = -(-encoder_lengths // self.chunk_size)
        return total / ((target_lengths + chunks_per_utt) * kept).sum().clamp(min=1)
