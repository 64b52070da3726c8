"""Greedy decoding of a Chunkwise Aligner, chunk by chunk.

B: batch size, T: encoder frames, D: encoder dim, C: chunk size (frames), K: label slots per chunk.

Inside a chunk the aligner reads label j off the chunk's frame j until it reads EOC (the EOS/blank slot), or its
K slots run out; then it moves to the next chunk with the prediction-network state carried over. Each chunk is
thus exactly the offline aligner's greedy search (``greedy_batch``) over the chunk's first K frames, started
from the previous chunk's end state: the same function serves offline decoding of whole files and streaming
decoding of one chunk at a time, so both give the same tokens from the same encoder frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from nemo.collections.asr.modules import RNNTDecoder, RNNTJoint

from nemo_aligner_plugin.decoding.greedy import GreedyBatchConfig, greedy_batch
from nemo_aligner_plugin.decoding.types import BatchedHyps, DecoderState

__all__ = ["ChunkwiseGreedyConfig", "chunkwise_greedy", "chunk_slots"]


@dataclass
class ChunkwiseGreedyConfig:
    max_tokens: Optional[int] = None  # cap on tokens per utterance; None: bounded by the chunks' label slots
    chunk_size: Optional[int] = None  # set by the model from model.chunkwise.chunk_size (encoder frames per chunk)
    max_labels_per_chunk: Optional[int] = None  # set by the model from model.chunkwise; None: chunk_size

    def __post_init__(self) -> None:
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ValueError(f"decoding.chunkwise.chunk_size={self.chunk_size}: must be >= 1")


def chunk_slots(encoder_out_lens: torch.Tensor, start: int, chunk_size: int, max_labels: int) -> torch.Tensor:
    """(B,) label slots of the chunk starting at frame ``start``: its frames, at most ``max_labels``; 0 past the end."""
    return (encoder_out_lens.long() - start).clamp(min=0, max=min(chunk_size, max_labels))


@torch.no_grad()
def chunkwise_greedy(
    decoder: RNNTDecoder,
    joint: RNNTJoint,
    encoder_out: torch.Tensor,
    encoder_out_lens: torch.Tensor,
    eos_id: int,
    cfg: Optional[ChunkwiseGreedyConfig] = None,
    state: Optional[DecoderState] = None,
) -> tuple[BatchedHyps, DecoderState]:
    """Decode (B, T, D) chunk by chunk; ``frames`` of the result are absolute encoder frames (chunk start + slot).

    ``state`` is the decoder state the first chunk starts from (None: start of sequence); the returned state
    continues the next call, so a stream decoded one chunk per call gives the tokens of one call on all chunks.
    """
    cfg = cfg or ChunkwiseGreedyConfig()
    if cfg.chunk_size is None:
        raise ValueError("chunkwise decoding needs decoding.chunkwise.chunk_size (the model sets it from its config)")
    chunk, slots_cap = cfg.chunk_size, cfg.max_labels_per_chunk or cfg.chunk_size
    batch_size, device = encoder_out.size(0), encoder_out.device
    lens = encoder_out_lens.to(device).long()
    total = int(lens.max()) if batch_size else 0
    tokens, frames, valid = [], [], []
    scores = torch.zeros(batch_size, device=device)
    ended = torch.zeros(batch_size, dtype=torch.bool, device=device)
    for start in range(0, total, chunk):
        slots = chunk_slots(lens, start, chunk, slots_cap)
        piece = encoder_out[:, start : start + int(slots.max())]
        hyps, state = greedy_batch(decoder, joint, piece, slots, eos_id, GreedyBatchConfig(), state)
        steps = torch.arange(hyps.tokens.size(1), device=device)
        tokens.append(hyps.tokens)
        frames.append(hyps.frames + start)
        valid.append(steps.unsqueeze(0) < hyps.lengths.unsqueeze(1))
        scores += hyps.scores
        ended = torch.where(slots > 0, hyps.ended_with_eos, ended)
    if state is None:  # no frames at all: the start state
        state = DecoderState(lstm=decoder.initialize_state(encoder_out), last_tokens=torch.full_like(lens, eos_id))
    return _joined(tokens, frames, valid, scores, ended, eos_id, cfg.max_tokens, batch_size, device), state


def _joined(tokens, frames, valid, scores, ended, eos_id, max_tokens, batch_size, device) -> BatchedHyps:
    """Per-chunk token blocks (B, u_c) -> one EOS-padded row per utterance, chunk order kept."""
    if not tokens:
        empty = torch.zeros(batch_size, 0, dtype=torch.long, device=device)
        return BatchedHyps(empty, torch.zeros(batch_size, dtype=torch.long, device=device), scores, empty, ended)
    tokens, frames, valid = torch.cat(tokens, 1), torch.cat(frames, 1), torch.cat(valid, 1)
    order = torch.sort((~valid).to(torch.uint8), dim=1, stable=True).indices  # valid entries first, in order
    lengths = valid.sum(1)
    if max_tokens is not None:
        lengths = lengths.clamp(max=max_tokens)
    width = int(lengths.max()) if batch_size else 0
    keep = torch.arange(width, device=device).unsqueeze(0) < lengths.unsqueeze(1)
    tokens = tokens.gather(1, order[:, :width]).masked_fill(~keep, eos_id)
    frames = frames.gather(1, order[:, :width]).masked_fill(~keep, 0)
    return BatchedHyps(tokens, lengths, scores, frames, ended)
