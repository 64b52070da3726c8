"""The chunk x label lattice of the Chunkwise Aligner: log-likelihood of a label sequence summed over its chunk splits.

B: batch size, N: chunks, K: label slots per chunk (max_labels_per_chunk), U: max target tokens,
s: labels emitted before the current chunk (the lattice state, 0..U).

In chunk c with S = chunk_slots[b, c] usable slots, the lattice emits k in [0, S] labels y_{s+1..s+k} at slots
0..k-1 (slot j reads prediction state s+j), then EOC at slot k with prediction state s+k when k < S; k == S is a
forced advance with no EOC term. Chunks with S = 0 (past the utterance's end) pass the state through unchanged.

The recursion over chunks is ``alpha_{c+1}[s'] = logsumexp_k(alpha_c[s'-k] + P[c, k, s'-k] + E[c, k, s'])`` with
``P[c, k, s] = sum_{j<k} label_logp[c, j, s+j]`` (a cumulative sum along the diagonal) and ``E`` the EOC term (0 for
the forced advance, -inf for k > S). P and E are gathered for all chunks at once; the loop over chunks is one
shifted log-sum-exp over K+1 terms.
"""

from __future__ import annotations

import torch

__all__ = ["chunk_slot_counts", "chunkwise_log_likelihood", "safe_logsumexp"]


def safe_logsumexp(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``torch.logsumexp`` whose gradient stays finite (zero) where every term is -inf.

    torch's backward computes ``exp(x - result)``, which is NaN for -inf - (-inf); here the all -inf case takes a
    ``where`` branch that receives no gradient, and the log never sees 0.
    """
    peak = x.detach().amax(dim, keepdim=True)
    peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    total = (x - peak).exp().sum(dim)
    some = total > 0
    out = torch.where(some, total, torch.ones_like(total)).log() + peak.squeeze(dim)
    return torch.where(some, out, torch.full_like(out, float("-inf")))


def chunk_slot_counts(encoder_lengths: torch.Tensor, num_chunks: int, chunk_size: int, max_labels: int) -> torch.Tensor:
    """(B,) encoder frames -> (B, N) usable slots per chunk: min(K, frames of chunk c), 0 past the end."""
    starts = torch.arange(num_chunks, device=encoder_lengths.device) * chunk_size
    frames = (encoder_lengths.long().unsqueeze(1) - starts).clamp(0, chunk_size)
    return frames.clamp(max=max_labels)


def _diagonal_prefix(label_logp: torch.Tensor) -> torch.Tensor:
    """(B, N, K, U+1) -> P (B, N, K+1, U+1): P[.., k, s] = sum_{j<k} label_logp[.., j, s+j] (0 for k = 0).

    Entries with s+j > U are clamped reads; they only feed states past U, which do not exist.
    """
    slots, states = label_logp.shape[-2:]
    index = torch.arange(states, device=label_logp.device) + torch.arange(slots, device=label_logp.device)[:, None]
    index = index.clamp(max=states - 1).expand(*label_logp.shape[:2], slots, states)
    diagonal = label_logp.gather(-1, index)  # D[b, c, j, s] = label_logp[b, c, j, s + j]
    zeros = label_logp.new_zeros(*label_logp.shape[:2], 1, states)
    return torch.cat([zeros, diagonal.cumsum(dim=2)], dim=2)


def _shift_right(x: torch.Tensor, shifts: int, fill: float) -> torch.Tensor:
    """(..., K+1, S) -> out[..., k, s] = x[..., k, s - k], ``fill`` where s < k (k = 0..shifts)."""
    states = x.size(-1)
    padded = torch.nn.functional.pad(x, (shifts, 0), value=fill)  # (..., K+1, S+K)
    index = torch.arange(states, device=x.device) - torch.arange(shifts + 1, device=x.device)[:, None] + shifts
    return padded.gather(-1, index.expand(*x.shape[:-1], states))


def _transition_weights(label_logp: torch.Tensor, eoc_logp: torch.Tensor, chunk_slots: torch.Tensor) -> torch.Tensor:
    """W (B, N, K+1, U+1): W[b, c, k, s'] = log-weight of entering state s' by emitting k labels in chunk c."""
    slots = label_logp.size(2)
    prefix = _shift_right(_diagonal_prefix(label_logp), slots, float("-inf"))  # P[c, k, s' - k]
    eoc = torch.cat([eoc_logp, eoc_logp.new_zeros(*eoc_logp.shape[:2], 1, eoc_logp.size(-1))], dim=2)
    k = torch.arange(slots + 1, device=label_logp.device)[:, None]  # (K+1, 1)
    usable = chunk_slots.unsqueeze(-1).unsqueeze(-1)  # (B, N, 1, 1)
    zeros, never = torch.zeros_like(eoc), torch.full_like(eoc, float("-inf"))
    return prefix + torch.where(k < usable, eoc, torch.where(k == usable, zeros, never))


def chunkwise_log_likelihood(
    label_logp: torch.Tensor, eoc_logp: torch.Tensor, target_lengths: torch.Tensor, chunk_slots: torch.Tensor
) -> torch.Tensor:
    """log P(y | x) summed over every split of each label sequence across chunks.

    Args:
        label_logp: (B, N, K, U+1) log P(y_{u+1} | chunk c, slot j, prediction state u); read for u < U_b only.
        eoc_logp: (B, N, K, U+1) log P(EOC | chunk c, slot j, prediction state u); read for u <= U_b only.
        target_lengths: (B,) U_b.
        chunk_slots: (B, N) usable slots of each chunk (``chunk_slot_counts``), 0 past the utterance's end.

    Returns:
        (B,) log-likelihoods; -inf where no split exists (U_b > the utterance's slots). Entries outside the
        lattice (slot >= S, state past U_b) are never read: whatever they hold (even NaN) gets zero gradient.
    """
    batch, chunks, slots, states = label_logp.shape
    target_lengths = target_lengths.long()
    chunk_slots = chunk_slots.long()
    in_chunk = torch.arange(slots, device=label_logp.device) < chunk_slots.unsqueeze(-1)  # (B, N, K)
    state = torch.arange(states, device=label_logp.device)
    lengths = target_lengths.view(batch, 1, 1, 1)
    label_ok = in_chunk.unsqueeze(-1) & (state < lengths)
    eoc_ok = in_chunk.unsqueeze(-1) & (state <= lengths)
    label_logp = label_logp.masked_fill(~label_ok, 0.0)
    eoc_logp = eoc_logp.masked_fill(~eoc_ok, 0.0)
    weights = _transition_weights(label_logp, eoc_logp, chunk_slots)  # (B, N, K+1, U+1)

    alpha = torch.full((batch, states), float("-inf"), dtype=weights.dtype, device=weights.device)
    alpha[:, 0] = 0.0
    for c in range(chunks):
        shifted = _shift_right(alpha.unsqueeze(1).expand(batch, slots + 1, states), slots, float("-inf"))
        alpha = safe_logsumexp(shifted + weights[:, c], dim=1)
    return (
        alpha.gather(1, target_lengths.clamp(max=states - 1).unsqueeze(1))
        .squeeze(1)
        .where(target_lengths < states, alpha.new_full((batch,), float("-inf")))
    )
