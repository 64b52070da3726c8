"""Long-form decoding: chunk after chunk, batched across utterances, through the strategy table.

B: utterances, N: chunks of all utterances, C: encoder frames per chunk, D: encoder dim.

Each chunk is read from its first frame until EOS or its end, then the next chunk of the utterance starts from
the state ``START_STATES[cfg.mode]`` gives. A strategy without a prediction network has no state: its chunks are
independent and decode all at once.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Optional

import torch
from nemo.collections.asr.parts.utils.rnnt_utils import Hypothesis

from nemo_aligner_plugin.config import LongformConfig
from nemo_aligner_plugin.decoding import STRATEGIES, BatchedHyps, chunk_decoder
from nemo_aligner_plugin.decoding.strategies import ChunkDecoder
from nemo_aligner_plugin.eval_mode import eval_mode
from nemo_aligner_plugin.longform.states import START_STATES, ChunkProgress

__all__ = ["ChunkedEncoding", "chunk_search", "chunk_scores", "decode_chunked_batch", "decode_chunked"]


@dataclass
class ChunkedEncoding:
    """Conformer output of every chunk of a batch of utterances (``encode_chunked`` makes it, decoding reads it);
    utterance b owns a contiguous run of chunks."""

    encoder_out: torch.Tensor  # (N, C, D) chunk outputs, zero-padded after encoder_out_lens
    encoder_out_lens: torch.Tensor  # (N,) valid frames per chunk
    num_chunks: torch.Tensor  # (B,) chunks per utterance, in order; sums to N
    # (N,) global encoder frame of each chunk's first frame and (B,) encoder frames per utterance; None: chunks
    # are contiguous (offsets are the running sum of encoder_out_lens)
    chunk_offsets: Optional[torch.Tensor] = None
    frame_lens: Optional[torch.Tensor] = None


def chunk_search(model) -> ChunkDecoder:
    """The model's decoding strategy as ``(chunks (B, C, D), lengths (B,), start state) -> (best hyps, end state)``.

    The strategy's own options with its long-form ``chunk_overrides`` (no per-utterance token cap; a beam search
    keeps only the best hypothesis of each chunk, and the next chunk starts from its tokens and state).
    """
    return chunk_decoder(model, model.cfg.decoding)


def chunk_scores(model, chunks: torch.Tensor, lens: torch.Tensor) -> list[float]:
    """Score (log-probability, EOS included) of each chunk (B, C, D) decoded alone from a fresh state."""
    with eval_mode(model):
        hyps, _ = chunk_search(model)(chunks, lens, None)
    return hyps.scores.tolist()


def decode_chunked_batch(model, encoding: ChunkedEncoding, cfg: LongformConfig) -> list[Hypothesis]:
    """One Hypothesis per utterance (B); token frames are global encoder frames. Text is left empty.

    Step k decodes the k-th chunk of every utterance that has one, with the model's strategy (``chunk_search``);
    its start state comes from ``START_STATES[cfg.mode]`` and the tokens emitted so far.
    """
    num_chunks = encoding.num_chunks.tolist()
    owner = [b for b, n in enumerate(num_chunks) for _ in range(n)]  # utterance of each chunk
    if encoding.chunk_offsets is not None:  # global frame of each chunk's first frame, frames per utterance
        offsets, position = encoding.chunk_offsets.tolist(), encoding.frame_lens.tolist()
    else:  # contiguous chunks
        offsets, position = [], [0] * len(num_chunks)
        for b, length in zip(owner, encoding.encoder_out_lens.tolist(), strict=True):
            offsets.append(position[b])
            position[b] += length
    progress = [ChunkProgress([], [], 0.0, None) for _ in num_chunks]

    def record(chunk_ids: list[int], hyps: BatchedHyps) -> None:
        tokens, lengths, scores, frames = hyps.tokens.cpu(), hyps.lengths.tolist(), hyps.scores.tolist(), hyps.frames
        for i, n in enumerate(chunk_ids):
            p = progress[owner[n]]
            p.tokens += tokens[i, : lengths[i]].tolist()
            p.frames += (frames[i, : lengths[i]].cpu() + offsets[n]).tolist()
            p.score += scores[i]

    search = chunk_search(model)
    with eval_mode(model):
        if not STRATEGIES[model.cfg.decoding.strategy].uses_prediction_net:  # no state: chunks are independent
            hyps, _ = search(encoding.encoder_out, encoding.encoder_out_lens, None)
            record(list(range(len(owner))), hyps)
        else:
            firsts = list(itertools.accumulate(num_chunks, initial=0))[:-1]  # each utterance's first chunk
            start_state = START_STATES[cfg.mode]
            for k in range(max(num_chunks, default=0)):
                rows = [b for b, n in enumerate(num_chunks) if n > k]
                chunk_ids = [firsts[b] + k for b in rows]
                index = torch.tensor(chunk_ids, dtype=torch.long, device=encoding.encoder_out.device)
                state = start_state(model, [progress[b] for b in rows], cfg)
                lens = encoding.encoder_out_lens[index.to(encoding.encoder_out_lens.device)]
                hyps, end_state = search(encoding.encoder_out[index], lens, state)
                record(chunk_ids, hyps)
                h, c = end_state.lstm  # rows that emitted nothing come back unchanged
                for i, b in enumerate(rows):
                    progress[b].carried = (h[:, i : i + 1], c[:, i : i + 1], end_state.last_tokens[i : i + 1])
    return [
        Hypothesis(
            score=p.score,
            y_sequence=torch.tensor(p.tokens, dtype=torch.long),
            timestamp=torch.tensor(p.frames, dtype=torch.long),
            length=position[b],
        )
        for b, p in enumerate(progress)
    ]


def decode_chunked(model, chunks: torch.Tensor, chunk_lens: torch.Tensor, cfg: LongformConfig) -> Hypothesis:
    """Decode one utterance's chunks (N, C, D) with lengths (N,), in order; see ``decode_chunked_batch``."""
    encoding = ChunkedEncoding(chunks, chunk_lens, torch.tensor([chunks.size(0)]))
    return decode_chunked_batch(model, encoding, cfg)[0]
