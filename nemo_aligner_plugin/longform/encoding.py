"""Long-form encoding: whole-utterance features and conv subsampling, the Conformer layers per chunk.

B: utterances, S: audio samples, F: feature bins, M: feature frames, T: encoder frames of an utterance,
N: chunks of all utterances, C: encoder frames per chunk, G: chunks encoded together, D: encoder dim.

Features and the conv subsampling see the whole audio (no boundary effects, global feature normalization); the
Conformer layers see chunks of subsampled frames (batched, full context inside a chunk), or with
``chunk_features`` each chunk's audio goes through the preprocessor and encoder as an utterance of its own.
"""

from __future__ import annotations

import functools
from typing import Optional

import torch

from nemo_aligner_plugin.augment import reverse_within_length
from nemo_aligner_plugin.config import PAUSE_WIDTH_SECONDS, LongformConfig
from nemo_aligner_plugin.eval_mode import eval_mode
from nemo_aligner_plugin.frames import feature_frame_seconds, seconds_to_feat_frames, seconds_to_frames
from nemo_aligner_plugin.longform.cuts import (
    MIN_CHUNK_SECONDS,
    TRIM_MARGIN_SECONDS,
    chunk_cuts,
    chunk_spans,
    frame_means,
    pause_cuts,
    speech_ends,
)
from nemo_aligner_plugin.longform.decode import ChunkedEncoding
from nemo_aligner_plugin.longform.search import split_search

__all__ = ["chunk_frames", "pre_encode", "encode_chunked"]

# Subsampled frames of overlap on each side of a pre-encode window: far more than any conv stack's receptive field.
_PRE_ENCODE_CONTEXT_FRAMES = 8

Span = tuple[int, int, int]  # (utterance, first encoder frame in the model's frame order, length in frames)


def chunk_frames(model, chunk_seconds: float) -> int:
    """Encoder frames in ``chunk_seconds``, at least one (10 ms hop x4 -> 25 frames per second)."""
    return seconds_to_frames(model, chunk_seconds)


def pre_encode(
    encoder, features: torch.Tensor, feature_lens: torch.Tensor, window_feat_frames: Optional[int] = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """NeMo's conv subsampling over whole utterances: features (B, F, M) -> (B, T, D), lengths (B,).

    With ``window_feat_frames`` the convolutions run over windows of that many feature frames that overlap by
    ``_PRE_ENCODE_CONTEXT_FRAMES`` subsampled frames on each side, and only the exact centre outputs are kept:
    the result equals the one-shot subsampling, but the conv activations (d_model channels x M/2 x F/2,
    gigabytes for an hour of audio) stay bounded by the window.
    """
    x = features.transpose(1, 2)  # (B, M, F), as ConformerEncoder.forward_internal feeds pre_encode
    lens = feature_lens.long()
    if isinstance(encoder.pre_encode, torch.nn.Linear):
        return encoder.pre_encode(x), lens
    factor = encoder.subsampling_factor
    context_feat_frames = _PRE_ENCODE_CONTEXT_FRAMES * factor
    if window_feat_frames is None or x.size(1) <= window_feat_frames + 2 * context_feat_frames:
        out, out_lens = encoder.pre_encode(x=x, lengths=lens)
        return out, out_lens.long()
    step_frames = max(1, window_feat_frames // factor)  # subsampled frames kept per window
    pieces, out_lens = [], torch.zeros_like(lens)
    first = 0  # first subsampled frame of this window
    while True:
        start = max(0, first * factor - context_feat_frames)  # a multiple of the factor: frame j is j + start/f
        stop = min(x.size(1), (first + step_frames) * factor + context_feat_frames)
        slice_lens = (lens - start).clamp(min=0, max=stop - start)
        out, lens_w = encoder.pre_encode(x=x[:, start:stop], lengths=slice_lens)
        skip = first - start // factor
        last = stop == x.size(1)
        pieces.append(out[:, skip:] if last else out[:, skip : skip + step_frames])
        # Conv output lengths are affine in the input length for factor-aligned offsets: shift back to global.
        out_lens = torch.where(slice_lens > 0, torch.maximum(out_lens, lens_w.long() + start // factor), out_lens)
        if last:
            return torch.cat(pieces, dim=1), out_lens
        first += step_frames


def _feature_loudness(
    features: torch.Tensor, feature_lens: torch.Tensor, lengths_frames: list[int], factor: int, reverse: bool
) -> list[list[float]]:
    """Mean feature value of each feature frame, ``factor`` per subsampled frame, per utterance in time order: low
    in pauses (log-mel).

    Features, not audio, so that ``processed_signal`` input works too. Subsampled frame t holds feature frames
    [t * factor, (t + 1) * factor) (the last value repeats where the conv subsampling rounds the length up);
    a reverse-audio model's frames are then put back in time order.
    """
    per_frame = features.float().mean(dim=1)  # (B, M)
    out = []
    for b, (m, t) in enumerate(zip(feature_lens.tolist(), lengths_frames, strict=True)):
        values = per_frame[b, :m]
        pad = t * factor - values.numel()
        if pad > 0:
            values = torch.cat([values, values[-1:].expand(pad)])
        values = values[: t * factor]
        out.append((values.flip(0) if reverse else values).tolist())
    return out


def _boundary_cuts(
    model, cfg: LongformConfig, loudness: Optional[list[list[float]]], lengths_frames: list[int]
) -> tuple[list[list[int]], Optional[tuple[int, int, int]]]:
    """Each utterance's chunk ends by ``cfg.boundary`` (before the split search), and the split search's ``force``."""
    factor = model.encoder.subsampling_factor
    size_frames, width_frames = chunk_frames(model, cfg.chunk_seconds), chunk_frames(model, PAUSE_WIDTH_SECONDS)
    if cfg.boundary == "fixed":
        cuts = [list(range(size_frames, n, size_frames)) + [n] if n else [] for n in lengths_frames]
        return cuts, None
    search_frames = min(size_frames, chunk_frames(model, cfg.pause_search_seconds))
    if cfg.boundary == "pause":
        cuts = [
            chunk_cuts(frame_means(values, factor).tolist(), size_frames, search_frames, width_frames)
            for values in loudness
        ]
        return cuts, None
    shortest_frames = chunk_frames(model, MIN_CHUNK_SECONDS)
    lead_feat_frames = seconds_to_feat_frames(model, cfg.onset_lead_seconds)
    # with the split search, stretches longer than a chunk are cut by it, not at the quietest point
    cap_frames = max(lengths_frames, default=0) + 1 if cfg.split_margin is not None else size_frames
    cuts = [
        pause_cuts(values, factor, cap_frames, search_frames, width_frames, shortest_frames, lead_feat_frames)
        for values in loudness
    ]
    return cuts, (size_frames, search_frames, width_frames)


def encode_chunked(
    model,
    cfg: LongformConfig,
    input_signal: Optional[torch.Tensor] = None,
    input_signal_length: Optional[torch.Tensor] = None,
    processed_signal: Optional[torch.Tensor] = None,
    processed_signal_length: Optional[torch.Tensor] = None,
) -> ChunkedEncoding:
    """Audio (B, S) or features (B, F, M) -> Conformer outputs of chunks of subsampled frames.

    Chunks of all utterances share batches of ``cfg.chunk_batch_size`` through the Conformer layers, called
    as NeMo's ``encoder(..., bypass_pre_encode=True)`` (positional encoding, padding masks, layers, output
    projection exactly as in ``forward_internal``). A batch is padded only to its longest chunk, so audio
    that fits one chunk is encoded exactly like ``model.forward``.
    """
    if (input_signal is None) == (processed_signal is None):
        raise ValueError("Pass exactly one of input_signal or processed_signal.")
    if cfg.chunk_features and input_signal is None:
        raise ValueError("longform chunk_features=true cuts the audio: pass input_signal, not processed_signal")
    with eval_mode(model):
        device = next(model.parameters()).device
        reverse = bool(getattr(model, "reverse_audio", False))
        if processed_signal is None:
            input_signal = input_signal.to(device)
            if input_signal_length is None:
                input_signal_length = torch.full((input_signal.size(0),), input_signal.size(1), dtype=torch.long)
            if reverse:  # as model.forward does; features passed in are taken as already reversed, as there
                input_signal = reverse_within_length(input_signal, input_signal_length)
            processed_signal, processed_signal_length = model.preprocessor(
                input_signal=input_signal, length=input_signal_length.to(device)
            )
        processed_signal = processed_signal.to(device)
        if processed_signal_length is None:
            processed_signal_length = torch.full(
                (processed_signal.size(0),), processed_signal.size(2), dtype=torch.long
            )
        window_feat_frames = None
        if cfg.pre_encode_seconds is not None:
            window_feat_frames = seconds_to_feat_frames(model, cfg.pre_encode_seconds)
        frames, frame_lens = pre_encode(
            model.encoder, processed_signal, processed_signal_length.to(device), window_feat_frames
        )
        lengths_frames, factor = frame_lens.tolist(), model.encoder.subsampling_factor
        loudness = None
        if cfg.boundary != "fixed" or cfg.trim_pauses or cfg.split_margin is not None:
            loudness = _feature_loudness(processed_signal, processed_signal_length, lengths_frames, factor, reverse)
        del processed_signal
        cuts, force = _boundary_cuts(model, cfg, loudness, lengths_frames)
        if cfg.split_margin is not None:
            encode = functools.partial(
                _encode_spans, model, cfg, frames=frames, signal=input_signal, signal_lens=input_signal_length
            )
            cuts = split_search(model, cfg, cuts, loudness, lengths_frames, reverse, encode, force)
        kept = None
        if cfg.trim_pauses:
            margin_feat_frames = seconds_to_feat_frames(model, TRIM_MARGIN_SECONDS)
            width_frames = chunk_frames(model, PAUSE_WIDTH_SECONDS)
            kept = [
                speech_ends(values, factor, ends, width_frames, margin_feat_frames)
                for values, ends in zip(loudness, cuts, strict=True)
            ]

        spans = chunk_spans(cuts, lengths_frames, reverse, kept)
        # global first frame of each chunk, in the order decoding counts them (as if chunks were contiguous)
        offsets = [start for ends in cuts for start in ([0] + ends[:-1] if ends else [])]
        num_chunks = torch.bincount(torch.tensor([b for b, _, _ in spans], dtype=torch.long), minlength=len(frame_lens))
        outputs = _encode_spans(model, cfg, spans, frames, input_signal, input_signal_length)
        if not outputs:
            empty = frames.new_zeros(0, 0, model.cfg.model_defaults.enc_hidden)
            return ChunkedEncoding(empty, torch.zeros(0, dtype=torch.long), num_chunks)
        return ChunkedEncoding(
            encoder_out=torch.nn.utils.rnn.pad_sequence(outputs, batch_first=True),
            encoder_out_lens=torch.tensor([o.size(0) for o in outputs], dtype=torch.long, device=device),
            num_chunks=num_chunks,
            chunk_offsets=torch.tensor(offsets, dtype=torch.long),
            frame_lens=torch.tensor(lengths_frames, dtype=torch.long),
        )


def _encode_spans(
    model,
    cfg: LongformConfig,
    spans: list[Span],
    frames: torch.Tensor,
    signal: Optional[torch.Tensor],
    signal_lens: Optional[torch.Tensor],
) -> list[torch.Tensor]:
    """Conformer output (n, D) of each span, ``cfg.chunk_batch_size`` at a time: its audio alone
    (``chunk_features``) or its slice of the subsampled ``frames`` (B, T, D)."""
    outputs: list[torch.Tensor] = []
    for group_start in range(0, len(spans), cfg.chunk_batch_size):
        group = spans[group_start : group_start + cfg.chunk_batch_size]
        if cfg.chunk_features:
            outputs.extend(_encode_chunk_audio(model, signal, signal_lens, group))
            continue
        lens = torch.tensor([n for _, _, n in group], dtype=torch.long, device=frames.device)
        chunks = frames.new_zeros(len(group), int(lens.max()), frames.size(2))  # (G, C, D)
        for i, (b, start, n) in enumerate(group):
            chunks[i, :n] = frames[b, start : start + n]
        out, out_lens = model.encoder(audio_signal=chunks, length=lens, bypass_pre_encode=True)  # (G, D, C)
        outputs.extend(o[:, :n].transpose(0, 1) for o, n in zip(out, out_lens.tolist(), strict=True))
    return outputs


def _encode_chunk_audio(
    model, signal: torch.Tensor, signal_lens: torch.Tensor, group: list[Span]
) -> list[torch.Tensor]:
    """chunk_features: each span's audio (encoder frame f = samples [f * step, (f + 1) * step)) through the
    preprocessor and the whole encoder, as ``model.forward`` would take it alone -> (n, D) each.

    Each chunk gets its own feature normalization and no audio outside it, like a (trimmed) training utterance.
    The conv subsampling rounds up, so a chunk's extra last frame is dropped to keep global timestamps exact.
    """
    samples_per_feat_frame = round(feature_frame_seconds(model) * int(model.cfg.sample_rate))
    step = samples_per_feat_frame * model.encoder.subsampling_factor  # samples per encoder frame
    pieces = []
    for b, start, n in group:
        stop = min((start + n) * step, int(signal_lens[b]))
        pieces.append(signal[b, min(start * step, max(0, stop - step)) : stop])  # at least one frame's samples
    lens = torch.tensor([p.numel() for p in pieces], dtype=torch.long, device=signal.device)
    features, feature_lens = model.preprocessor(
        input_signal=torch.nn.utils.rnn.pad_sequence(pieces, batch_first=True), length=lens
    )
    out, out_lens = model.encoder(audio_signal=features, length=feature_lens)  # (G, D, C)
    return [o[:, : min(k, n)].transpose(0, 1) for o, k, (_, _, n) in zip(out, out_lens.tolist(), group, strict=True)]
