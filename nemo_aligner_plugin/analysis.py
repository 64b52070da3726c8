"""Reading the alignment out of an Aligner-Encoder's self-attention.

B: batch size, H: attention heads, T: encoder frames (the paper's T'), U: tokens of a hypothesis
(EOS excluded, so output positions are 0..U with U the EOS position), R: rows of an attention block.

Stooke et al. (sec. 6) observe that one encoder layer ("the aligning layer") makes output position i
draw from the input frames of token i: its head-averaged attention is a monotonic band in the top-left
(U+1) x T block. This module captures the maps with forward hooks (NeMo has no return-attention API),
scores every layer for that band, and turns the aligning layer's rows into token/word/segment
timestamps in the format NeMo's RNN-T models put into ``Hypothesis.timestamp``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Optional, Union

import torch
from nemo.collections.asr.parts.submodules.multi_head_attention import RelPositionMultiHeadAttentionLongformer
from nemo.collections.asr.parts.utils.timestamp_utils import get_segment_offsets, get_words_offsets

from nemo_aligner_plugin.eval_mode import eval_mode
from nemo_aligner_plugin.frames import encoder_frame_seconds

__all__ = [
    "AttentionMaps",
    "attention_timestamps",
    "capture_attention",
    "diagonality",
    "find_aligning_layer",
    "frame_seconds",
    "layer_scores",
    "recording_attention",
    "timestamps_from_maps",
    "token_frames",
    "token_times_seconds",
]


@dataclass
class AttentionMaps:
    """Self-attention probabilities of one encoder forward pass."""

    probs: list[torch.Tensor]  # per captured layer (B, H, T, T) post-softmax, CPU float32; H=1 if head-averaged
    encoded_len: torch.Tensor  # (B,) valid encoder frames; T (padded axis) may exceed the longest by a frame
    layers: list[int]  # encoder layer index of each entry of ``probs``

    def block(self, index: int, b: int, rows: int, head: Optional[int] = None) -> torch.Tensor:
        """(min(rows, T_b), T_b) top-left block of utterance ``b`` in ``probs[index]``: head-averaged, or ``head``."""
        enc_len = int(self.encoded_len[b])
        heads = self.probs[index][b, :, : min(rows, enc_len), :enc_len]
        return heads.mean(0) if head is None else heads[head]


# ---------------------------------------------------------------------------------------------- capture
@contextmanager
def recording_attention(
    encoder: torch.nn.Module, layers: Optional[Sequence[int]] = None, head_average: bool = False
) -> Iterator[dict[int, torch.Tensor]]:
    """Record post-softmax attention of ``encoder.layers[i].self_attn`` during the forwards inside the block.

    Yields a dict ``layer -> (B, H, T, T)`` filled by each forward (the last forward wins). NeMo's
    non-SDPA path feeds the softmax output to ``self_attn.dropout``, so a hook there sees it; the SDPA
    path never materializes it, so ``use_pytorch_sdpa`` is switched off per layer for the block and
    restored afterwards, also on error. ``head_average`` stores (B, 1, T, T) to save memory.
    """
    indices = list(range(len(encoder.layers))) if layers is None else list(layers)
    records: dict[int, torch.Tensor] = {}
    handles, sdpa_flags = [], []

    def hook(index: int):
        def store(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            probs = inputs[0].detach().float()
            records[index] = (probs.mean(1, keepdim=True) if head_average else probs).cpu()

        return store

    try:
        for i in indices:
            attn = encoder.layers[i].self_attn
            if isinstance(attn, RelPositionMultiHeadAttentionLongformer):
                raise ValueError(f"encoder layer {i}: local (Longformer) attention has no full T x T map to analyse")
            sdpa_flags.append((attn, attn.use_pytorch_sdpa))
            attn.use_pytorch_sdpa = False
            handles.append(attn.dropout.register_forward_hook(hook(i)))
        yield records
    finally:
        for handle in handles:
            handle.remove()
        for attn, flag in sdpa_flags:
            attn.use_pytorch_sdpa = flag


@torch.no_grad()
def capture_attention(
    model: torch.nn.Module,
    audio: torch.Tensor,
    audio_lens: torch.Tensor,
    layers: Optional[Sequence[int]] = None,
    head_average: bool = False,
) -> AttentionMaps:
    """Run the encoder on audio (B, samples) with lengths (B,) in eval mode and return its attention maps."""
    device = next(model.parameters()).device
    with eval_mode(model, no_grad=False), recording_attention(model.encoder, layers, head_average) as records:
        _, encoded_len = model(input_signal=audio.to(device), input_signal_length=audio_lens.to(device))
    order = sorted(records) if layers is None else list(layers)
    return AttentionMaps(probs=[records[i] for i in order], encoded_len=encoded_len.cpu(), layers=order)


# ---------------------------------------------------------------------------------------------- scores
def _row_block(probs: torch.Tensor, num_tokens: int, enc_len: int) -> torch.Tensor:
    """(H, T, T) or (T, T) -> head-averaged (R, T') block, R = min(U+1, T'), rows renormalized."""
    block = probs.float().mean(0) if probs.dim() == 3 else probs.float()
    block = block[: min(num_tokens + 1, enc_len), :enc_len]
    return block / block.sum(-1, keepdim=True).clamp_min(1e-12)


def diagonality(probs: torch.Tensor, num_tokens: int, enc_len: int, reverse: bool = False) -> float:
    """How much the output rows 0..U attend to monotonically moving input frames spanning the utterance.

    Let A be the head-averaged top-left block, rows 0..R-1 (R = min(U+1, T')) and columns 0..T'-1,
    each row renormalized to sum 1, and p_i = argmax_j A_ij the peak input frame of row i. Then

    - monotonic ``m``: length of the longest non-decreasing subsequence of p (non-increasing when
      reversed), divided by R. Ties count: the word pieces of one word often read the same frames. A
      subsequence rather than consecutive pairs, so that a few rows whose peak sits on an attention sink
      (trained layers often park attention on the first frames) cost only their own share;
    - sharpness ``k``: 1 - mean_i max(0, entropy(A_i) - log(T'/R)) / log R, clipped to [0, 1]: 0 for
      uniform rows, 1 for rows spread over at most their fair share of T'/R frames (a token may cover
      several frames without penalty; only attention wider than an even split of the utterance costs);
    - span ``s``: distance between the first and last peak of that subsequence / (T' - 1);

    and diagonality = m * k * s in [0, 1]. Peaks rather than expected positions, because trained
    layers keep a diffuse background over all frames that drags expected positions to the middle.
    All three factors are needed: a uniform map has k = 0; a "local" layer (row i attends near frame
    i) is sharp and monotonic but its U+1 rows only reach frame U, so s ~ U / T'; a clean staircase
    over the whole utterance scores close to 1. ``reverse=True`` expects the anti-diagonal (models
    trained on reversed audio). Fewer than two rows or frames give 0.0 (no ordering evidence).

    Args:
        probs: (H, T, T) attention of one utterance in one layer, or its head average (T, T).
        num_tokens: U, tokens of the hypothesis without EOS.
        enc_len: T', valid encoder frames of the utterance.
        reverse: score the anti-diagonal direction.
    """
    block = _row_block(probs, num_tokens, enc_len)
    rows, frames = block.shape
    if rows < 2 or frames < 2:
        return 0.0
    peaks = block.argmax(-1).tolist()
    ordered = _longest_non_decreasing([-p for p in peaks] if reverse else peaks)
    monotonic = len(ordered) / rows
    entropy = -(block * block.clamp_min(1e-12).log()).sum(-1)
    excess = (entropy - math.log(frames / rows)).clamp_min(0.0)
    sharpness = min(max(1.0 - float(excess.mean()) / math.log(rows), 0.0), 1.0)
    span = min((ordered[-1] - ordered[0]) / (frames - 1), 1.0)
    return monotonic * sharpness * span


def _longest_non_decreasing(values: Sequence[int]) -> list[int]:
    """The longest non-decreasing subsequence (patience sorting, O(n log n))."""
    tails: list[int] = []  # tails[k]: index of the smallest last value of a run of length k+1
    tail_values: list[int] = []
    previous = [-1] * len(values)
    for i, value in enumerate(values):
        k = bisect.bisect_right(tail_values, value)
        previous[i] = tails[k - 1] if k else -1
        if k == len(tails):
            tails.append(i)
            tail_values.append(value)
        else:
            tails[k], tail_values[k] = i, value
    run, i = [], tails[-1] if tails else -1
    while i >= 0:
        run.append(values[i])
        i = previous[i]
    return run[::-1]


def layer_scores(maps: AttentionMaps, token_lengths: Sequence[int], reverse: bool = False) -> list[float]:
    """Per captured layer, the batch mean of ``diagonality`` of each utterance's head-averaged map."""
    lengths = [int(u) for u in token_lengths]
    return [
        sum(diagonality(probs[b].mean(0), lengths[b], int(maps.encoded_len[b]), reverse) for b in range(len(lengths)))
        / max(len(lengths), 1)
        for probs in maps.probs
    ]


def find_aligning_layer(maps: AttentionMaps, token_lengths: Sequence[int], reverse: bool = False) -> int:
    """Encoder layer index (as in ``maps.layers``) with the highest mean diagonality."""
    scores = layer_scores(maps, token_lengths, reverse)
    return maps.layers[max(range(len(scores)), key=scores.__getitem__)]


# ---------------------------------------------------------------------------------------------- timing
def token_frames(attn: torch.Tensor, rel_threshold: float = 0.5) -> list[tuple[int, int]]:
    """(start_frame, end_frame) per row of a head-averaged (R, T') block; end is exclusive like NeMo's.

    A row's frames are the contiguous run around its most attended frame whose attention stays at or
    above ``rel_threshold`` times that peak (a "full width at half maximum"). The peak run is used
    rather than mass quantiles because aligning layers keep a diffuse background over all frames,
    which would drag quantiles towards the middle of the utterance. Rows are not forced to be
    monotonic here, so callers can check the model's own ordering.
    """
    spans = []
    for row in attn.float():
        peak = int(row.argmax())
        above = row >= rel_threshold * row[peak]
        start, end = peak, peak + 1
        while start > 0 and bool(above[start - 1]):
            start -= 1
        while end < row.numel() and bool(above[end]):
            end += 1
        spans.append((start, end))
    return spans


def frame_seconds(model: torch.nn.Module) -> float:
    """Seconds per encoder frame: subsampling factor x feature hop (NeMo's timestamp convention)."""
    return encoder_frame_seconds(model)


def token_times_seconds(
    spans: Sequence[tuple[int, int]], subsampling_factor: int, window_stride: float
) -> list[tuple[float, float]]:
    """Frame spans -> (start, end) seconds, computed exactly as NeMo's ``process_timestamp_outputs``.

    Frame j starts at j x window_stride x subsampling_factor (same operation order, so the floats
    match NeMo's RNN-T timestamps bit for bit).
    """
    return [
        (start * window_stride * subsampling_factor, end * window_stride * subsampling_factor) for start, end in spans
    ]


# ---------------------------------------------------------------------------------------------- NeMo format
def _token_ids(hyp: Any) -> list[int]:
    ids = hyp.y_sequence if hasattr(hyp, "y_sequence") else hyp
    return [int(t) for t in (ids.tolist() if isinstance(ids, torch.Tensor) else ids)]


def _timestamp_dict(model: torch.nn.Module, ids: list[int], spans: list[tuple[int, int]]) -> dict[str, list]:
    """NeMo RNN-T ``Hypothesis.timestamp`` layout: timestep, char (per token), word, segment; with seconds."""
    tokenizer, decoding = model.tokenizer, getattr(model, "decoding", None)
    pieces = tokenizer.ids_to_tokens(ids)
    seconds = token_times_seconds(spans, model.encoder.subsampling_factor, model.cfg.preprocessor.window_stride)
    chars, encoded = [], []
    for token_id, piece, (start, end), (start_s, end_s) in zip(ids, pieces, spans, seconds, strict=True):
        times = {"start_offset": start, "end_offset": end, "start": start_s, "end": end_s}
        chars.append({"char": [tokenizer.ids_to_text([token_id])], **times})
        encoded.append({"char": [piece], **times})
    punctuation = getattr(decoding, "supported_punctuation", None) or set()
    words = []
    if chars:
        # NeMo's own word builder: with tokenizer_type="bpe" a piece whose text differs from its
        # detokenized form (a leading "▁") starts a word, and punctuation attaches to the previous word.
        words = get_words_offsets(
            char_offsets=[dict(c) for c in chars],
            encoded_char_offsets=[dict(c) for c in encoded],
            decode_tokens_to_str=tokenizer.tokens_to_text,
            word_delimiter_char=" ",
            tokenizer_type="bpe",
            supported_punctuation=punctuation,
        )
    segments = []
    if words:
        segments = get_segment_offsets(
            [dict(w) for w in words],
            segment_delimiter_tokens=getattr(decoding, "segment_seperators", None) or [".", "?", "!"],
            supported_punctuation=punctuation,
            segment_gap_threshold=getattr(decoding, "segment_gap_threshold", None),
        )
    return {"timestep": [start for start, _ in spans], "char": chars, "word": words, "segment": segments}


def timestamps_from_maps(
    model: torch.nn.Module,
    maps: AttentionMaps,
    hyps: Sequence[Any],
    layer: Optional[int] = None,
    monotonic: bool = True,
    reverse: Optional[bool] = None,
) -> list[dict[str, list]]:
    """Timestamp dicts from already captured maps (e.g. recorded during ``transcribe``'s own forward).

    ``layer`` is an encoder layer index present in ``maps.layers``; None picks the aligning layer of
    this batch. ``reverse`` (default: the model's ``reverse_audio``) means the encoder saw the audio
    reversed: the aligning layer is scored for the anti-diagonal and frame spans are mirrored back to
    time in the original audio. ``monotonic`` clamps each token start to at least the previous one
    (and end > start), so that words never come out of order when the map is noisy.
    """
    reverse = bool(model.cfg.get("reverse_audio", False)) if reverse is None else reverse
    token_ids = [_token_ids(h) for h in hyps]
    lengths = [len(ids) for ids in token_ids]
    layer = find_aligning_layer(maps, lengths, reverse) if layer is None else layer
    position = maps.layers.index(layer)
    results = []
    for b, ids in enumerate(token_ids):
        enc_len = int(maps.encoded_len[b])
        spans = token_frames(maps.block(position, b, len(ids) + 1))[: len(ids)]
        if reverse:
            spans = [(enc_len - end, enc_len - start) for start, end in spans]
        if len(spans) < len(ids):  # hypothesis ran out of frames without EOS: pin leftovers to the end
            spans += [(enc_len - 1, enc_len)] * (len(ids) - len(spans))
        if monotonic:
            fixed, floor = [], 0
            for start, end in spans:
                start = max(start, floor)
                fixed.append((start, max(end, start + 1)))
                floor = start
            spans = fixed
        results.append(_timestamp_dict(model, ids, spans))
    return results


def attention_timestamps(
    model: torch.nn.Module,
    audio: torch.Tensor,
    audio_lens: torch.Tensor,
    hyps: Sequence[Union[Any, Sequence[int]]],
    layer: Optional[int] = None,
    monotonic: bool = True,
    reverse: Optional[bool] = None,
) -> list[dict[str, list]]:
    """NeMo-style timestamps (``timestep``, ``char``, ``word``, ``segment``) for each hypothesis.

    Re-encodes the audio (B, samples) with lengths (B,) while recording attention; ``hyps`` are NeMo
    Hypothesis objects or token-id lists of the same batch. Offsets are encoder frames, ``start``/
    ``end`` seconds (offset x window stride x subsampling factor), as after NeMo's
    ``process_timestamp_outputs``. With ``layer=None`` the aligning layer is found on this batch;
    ``monotonic`` and ``reverse`` as in ``timestamps_from_maps``.
    """
    maps = capture_attention(model, audio, audio_lens, layers=None if layer is None else [layer], head_average=True)
    return timestamps_from_maps(model, maps, hyps, layer=layer, monotonic=monotonic, reverse=reverse)
