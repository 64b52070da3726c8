"""Long-form inference by chunking (Stooke et al. 2024, sec. 4.4).

B: utterances, S: audio samples, F: feature bins, M: feature frames, T: encoder frames of an utterance,
N: chunks of all utterances in a batch, C: encoder frames per chunk, D: encoder dim, L: LSTM layers,
H: prediction-network dim.

An aligner can only align up to roughly its training length, and full-context attention costs O(T^2)
memory. So features and the conv subsampling see the whole audio (no boundary effects, global feature
normalization), the Conformer layers see fixed chunks of subsampled frames (batched, full context inside
a chunk), and decoding runs chunk after chunk: each chunk is read from its first frame until EOS or its
end, then the next chunk starts. What the prediction network knows at a chunk start is the ``mode``:
``prime`` (the paper's best: reset, then feed the last emitted tokens), ``reset_only`` or ``carry_state``
(the paper saw deletions with it). Each chunk is decoded with the model's strategy, greedy or beam (beams
end at a chunk's end: the next chunk continues from the best). Audio that fits one chunk gives exactly the
plain result.

Where a chunk ends is the ``boundary``: ``fixed`` (the paper: every ``chunk_seconds``), ``pause`` (the end
of the quietest stretch in the chunk's last ``pause_search_seconds``, so that cuts fall between words and
sentences rather than inside them and the next chunk starts with speech; chunks are at most ``chunk_seconds``)
or ``every_pause`` (a cut at every pause, at the feature frame where speech resumes, so that a chunk is a
sentence or phrase as a training utterance is; stretches without a pause longer than ``chunk_seconds`` are cut
as with ``pause``). With ``chunk_features`` the cuts are found the same way, but each chunk's audio then goes
through the preprocessor and the whole encoder as an utterance of its own (its own normalization, no audio
outside it), as the demo's trimmed training utterances did. With ``split_margin`` a long chunk is cut again at a
quiet dip where the model scores its two halves, decoded alone, above the chunk read whole (``split_search``):
sentences run on without a pause.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import torch
from nemo.collections.asr.parts.preprocessing.segment import AudioSegment
from nemo.collections.asr.parts.utils.rnnt_utils import Hypothesis

from nemo_aligner_plugin.augment import reverse_within_length
from nemo_aligner_plugin.config import BOUNDARIES, PAUSE_WIDTH_SECONDS, SPLIT_SIDE_SECONDS, LongformConfig
from nemo_aligner_plugin.decoding.beam import beam_search
from nemo_aligner_plugin.decoding.greedy import BatchedHyps, DecoderState, GreedyBatchConfig, greedy_batch
from nemo_aligner_plugin.decoding.nonar import nonar_greedy
from nemo_aligner_plugin.decoding.strategies import strategy_options

__all__ = [
    "LongformConfig",
    "ChunkedEncoding",
    "START_STATES",
    "BOUNDARIES",
    "chunk_frames",
    "chunk_cuts",
    "pause_cuts",
    "speech_ends",
    "split_candidates",
    "split_search",
    "pre_encode",
    "encode_chunked",
    "decode_chunked",
    "decode_chunked_batch",
    "chunk_search",
    "load_audio",
    "transcribe_longform",
    "transcribe_routed",
    "longform_config",
    "routable_audio",
]

AudioInput = Union[str, np.ndarray, torch.Tensor]
# Subsampled frames of overlap on each side of a pre-encode window: far more than any conv stack's receptive field.
_PRE_ENCODE_CONTEXT = 8
# Cuts whose score is within this of the quietest count as equally quiet (units of the features, e.g. normalized
# log-mel); the latest of them wins.
_QUIET_TOLERANCE = 0.05
# every_pause: a PAUSE_WIDTH_SECONDS stretch is a pause when its loudness lies within this fraction of the way from
# the utterance's quietest stretch to its median frame...
_PAUSE_LEVEL = 0.1
# ...and speech resumes at the first two feature frames (10 ms) this fraction of the way from the pause's loudness to
# the median. An aligner reads from a chunk's first frame: starting 40 ms into a word or with 0.15 s of the pause
# both cost it words (docs/longform.md), so the onset is found at feature-frame resolution.
_ONSET_LEVEL = 0.2
# every_pause: no chunk shorter than this (a pause right after a cut or before the end is not cut).
_MIN_CHUNK_SECONDS = 1.0
# trim_pauses: audio kept after the last speech frame of a chunk, as the corpus trimming leaves a margin.
_TRIM_MARGIN_SECONDS = 0.05


@dataclass
class ChunkedEncoding:
    """Conformer output of every chunk of a batch of utterances; utterance b owns a contiguous run of chunks."""

    encoder_out: torch.Tensor  # (N, C, D) chunk outputs, zero-padded after encoder_out_lens
    encoder_out_lens: torch.Tensor  # (N,) valid frames per chunk
    num_chunks: torch.Tensor  # (B,) chunks per utterance, in order; sums to N
    # (N,) global encoder frame of each chunk's first frame and (B,) encoder frames per utterance; None: chunks
    # are contiguous (offsets are the running sum of encoder_out_lens)
    chunk_offsets: Optional[torch.Tensor] = None
    frame_lens: Optional[torch.Tensor] = None


@contextmanager
def _inference(model: torch.nn.Module):
    """Eval mode (no dropout, no SpecAugment) and no autograd, restoring the training flag afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def chunk_frames(model, chunk_seconds: float) -> int:
    """Chunk length in subsampled encoder frames (10 ms hop x4 -> 25 frames per second)."""
    frame_seconds = float(model.cfg.preprocessor.window_stride) * model.encoder.subsampling_factor
    return max(1, round(chunk_seconds / frame_seconds))


# ---------------------------------------------------------------------------------------------- encoding
def pre_encode(
    encoder, features: torch.Tensor, feature_lens: torch.Tensor, window_frames: Optional[int] = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """NeMo's conv subsampling over whole utterances: features (B, F, M) -> (B, T, D), lengths (B,).

    With ``window_frames`` the convolutions run over windows of that many feature frames that overlap by
    ``_PRE_ENCODE_CONTEXT`` subsampled frames on each side, and only the exact centre outputs are kept:
    the result equals the one-shot subsampling, but the conv activations (d_model channels x M/2 x F/2,
    gigabytes for an hour of audio) stay bounded by the window.
    """
    x = features.transpose(1, 2)  # (B, M, F), as ConformerEncoder.forward_internal feeds pre_encode
    lens = feature_lens.long()
    if isinstance(encoder.pre_encode, torch.nn.Linear):
        return encoder.pre_encode(x), lens
    factor = encoder.subsampling_factor
    context = _PRE_ENCODE_CONTEXT * factor
    if window_frames is None or x.size(1) <= window_frames + 2 * context:
        out, out_lens = encoder.pre_encode(x=x, lengths=lens)
        return out, out_lens.long()
    step_out = max(1, window_frames // factor)  # subsampled frames kept per window
    pieces, out_lens = [], torch.zeros_like(lens)
    first = 0  # first subsampled frame of this window
    while True:
        start = max(0, first * factor - context)  # a multiple of the factor: window frame j is global j + start/f
        stop = min(x.size(1), (first + step_out) * factor + context)
        slice_lens = (lens - start).clamp(min=0, max=stop - start)
        out, lens_w = encoder.pre_encode(x=x[:, start:stop], lengths=slice_lens)
        skip = first - start // factor
        last = stop == x.size(1)
        pieces.append(out[:, skip:] if last else out[:, skip : skip + step_out])
        # Conv output lengths are affine in the input length for factor-aligned offsets: shift back to global.
        out_lens = torch.where(slice_lens > 0, torch.maximum(out_lens, lens_w.long() + start // factor), out_lens)
        if last:
            return torch.cat(pieces, dim=1), out_lens
        first += step_out


def chunk_cuts(loudness: Sequence[float], size: int, search: int, width: int = 1) -> list[int]:
    """Chunk ends (exclusive frame indices, in time order, the last one = ``len(loudness)``) for one utterance.

    Each chunk is at most ``size`` frames. It ends at the latest cut, among its last ``search`` frames, whose
    ``width`` preceding frames are (within ``_QUIET_TOLERANCE``) the quietest: the end of the pause, so that
    the next chunk starts where speech resumes, as training utterances do. With ``search=1`` this is the
    fixed cut every ``size`` frames.
    """
    total, cuts, start = len(loudness), [], 0
    prefix = list(itertools.accumulate(loudness, initial=0.0))
    while total - start > size:
        candidates = range(max(start + 1, start + size - search + 1), start + size + 1)
        scores = [
            (prefix[cut] - prefix[max(start, cut - width)]) / (cut - max(start, cut - width)) for cut in candidates
        ]
        quietest = min(scores)
        start = max(cut for cut, score in zip(candidates, scores, strict=True) if score <= quietest + _QUIET_TOLERANCE)
        cuts.append(start)
    return cuts + [total] if total else []


def pause_cuts(
    feature_loudness: Sequence[float], factor: int, size: int, search: int, width: int, min_length: int, lead: int = 0
) -> list[int]:
    """Chunk ends (encoder frames, as ``chunk_cuts``) at every pause of one utterance, where speech resumes.

    ``feature_loudness`` has one value per feature frame, ``factor`` per encoder frame (the subsampling). A pause
    is a run of cuts whose ``width`` preceding frames are within ``_PAUSE_LEVEL`` of the way from the quietest to
    the median loudness; it is cut at the encoder frame that holds the speech onset after it (``_speech_onset``),
    or the feature frame ``lead`` frames before that onset.
    No chunk is shorter than ``min_length``; a stretch longer than ``size`` is cut further by ``chunk_cuts``.
    """
    values = np.asarray(feature_loudness, dtype=np.float64)
    frames = _frame_means(values, factor)
    total = len(frames)
    if total == 0:
        return []
    pauses: list[int] = []
    if total > width:
        scores = _stretch_means(frames, width)[:-1]  # cut c = width + i < total: frames [c - width, c)
        quiet = scores <= scores.min() + _PAUSE_LEVEL * (float(np.median(frames)) - scores.min())
        # runs of quiet cuts: [first, last] as cut indices
        edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]])))
        for first, last in zip(edges[::2] + width, edges[1::2] + width - 1, strict=True):
            cut = _speech_onset(values, int(first), int(last), factor, width, lead)
            if cut - (pauses[-1] if pauses else 0) >= min_length and total - cut >= min_length:
                pauses.append(cut)
    cuts, start = [], 0
    for end in pauses + [total]:
        cuts += [start + c for c in chunk_cuts(frames[start:end].tolist(), size, search, width)]
        start = end
    return cuts


def _stretch_means(frames: np.ndarray, width: int) -> np.ndarray:
    """Mean loudness of every run of ``width`` consecutive frames (len(frames) - width + 1 values)."""
    prefix = np.concatenate([[0.0], np.cumsum(frames)])
    return (prefix[width:] - prefix[:-width]) / width


def _frame_means(feature_loudness: Sequence[float], factor: int) -> np.ndarray:
    """Loudness per encoder frame: the mean of its ``factor`` feature frames (a partial last group is dropped)."""
    values = np.asarray(feature_loudness, dtype=np.float64)
    total = len(values) // factor
    return values[: total * factor].reshape(total, factor).mean(axis=1)


def _speech_onset(values: np.ndarray, first: int, last: int, factor: int, width: int, lead: int = 0) -> int:
    """The encoder frame holding the feature frame ``lead`` frames before the first one after the pause (cuts
    ``first``..``last``) where speech resumes; ``last`` (the end of the quiet run) when no rise is found."""
    pause_level = float(np.median(values[factor * (first - width) : factor * first]))
    threshold = pause_level + _ONSET_LEVEL * (float(np.median(values)) - pause_level)
    stop = min(len(values) - 1, factor * (last + width))
    for m in range(factor * (first - width // 2), stop):
        if values[m] >= threshold and values[m + 1] >= threshold:
            return max(0, m - lead) // factor
    return last


def _chunk_spans(
    cuts: list[list[int]], lengths: list[int], reverse: bool, kept: Optional[list[list[int]]] = None
) -> list[tuple[int, int, int]]:
    """(utterance, first frame, length) of every chunk, utterance-major, chunks in the audio's time order.

    ``cuts`` are each utterance's chunk ends in time order; ``kept`` (trim_pauses) the end of each chunk's
    speech, at most its cut: frames between are dropped. A reverse-audio model's frames run backwards in
    time, so its chunks are taken from the end of the sequence: the chunk of audio time [a, b) is frames
    [T - b, T - a), i.e. that stretch reversed, which is what the model was trained on.
    """
    spans = []
    for b, (ends, length) in enumerate(zip(cuts, lengths, strict=True)):
        start = 0
        for i, end in enumerate(ends):
            stop = kept[b][i] if kept is not None else end
            spans.append((b, length - stop if reverse else start, stop - start))
            start = end
    return spans


def speech_ends(feature_loudness: Sequence[float], factor: int, cuts: list[int], width: int, margin: int) -> list[int]:
    """The encoder frame (exclusive) where each chunk's speech ends, ``margin`` feature frames after its last
    speech frame: a chunk cut where speech resumes carries the pause before that onset, which trimmed training
    utterances never had. A chunk without a trailing pause keeps its cut; every chunk keeps its first frame.

    Speech is two feature frames at or above ``_ONSET_LEVEL`` of the way from the quietest ``width``-frame
    stretch to the median loudness, as in ``_speech_onset``.
    """
    values = np.asarray(feature_loudness, dtype=np.float64)
    frames = _frame_means(values, factor)
    if len(frames) <= width:
        return list(cuts)
    quietest = float(_stretch_means(frames, width).min())
    threshold = quietest + _ONSET_LEVEL * (float(np.median(values)) - quietest)
    ends, start = [], 0
    for cut in cuts:
        stop = cut
        for m in range(min(len(values), cut * factor) - 1, start * factor, -1):
            if values[m] >= threshold and values[m - 1] >= threshold:
                stop = min(cut, -(-(m + 1 + margin) // factor))
                break
        ends.append(max(start + 1, stop))
        start = cut
    return ends


def _feature_loudness(
    features: torch.Tensor, feature_lens: torch.Tensor, frame_lens: list[int], factor: int, reverse: bool
) -> list[list[float]]:
    """Mean feature value of each feature frame, ``factor`` per subsampled frame, per utterance in time order: low
    in pauses (log-mel).

    Features, not audio, so that ``processed_signal`` input works too. Subsampled frame t holds feature frames
    [t * factor, (t + 1) * factor) (the last value repeats where the conv subsampling rounds the length up);
    a reverse-audio model's frames are then put back in time order.
    """
    per_frame = features.float().mean(dim=1)  # (B, M)
    out = []
    for b, (m, t) in enumerate(zip(feature_lens.tolist(), frame_lens, strict=True)):
        values = per_frame[b, :m]
        pad = t * factor - values.numel()
        if pad > 0:
            values = torch.cat([values, values[-1:].expand(pad)])
        values = values[: t * factor]
        out.append((values.flip(0) if reverse else values).tolist())
    return out


def encode_chunked(
    model,
    cfg: LongformConfig,
    input_signal: Optional[torch.Tensor] = None,
    input_signal_length: Optional[torch.Tensor] = None,
    processed_signal: Optional[torch.Tensor] = None,
    processed_signal_length: Optional[torch.Tensor] = None,
) -> ChunkedEncoding:
    """Audio (B, S) or features (B, F, M) -> Conformer outputs of fixed chunks of subsampled frames.

    Chunks of all utterances share batches of ``cfg.chunk_batch_size`` through the Conformer layers, called
    as NeMo's ``encoder(..., bypass_pre_encode=True)`` (positional encoding, padding masks, layers, output
    projection exactly as in ``forward_internal``). A batch is padded only to its longest chunk, so audio
    that fits one chunk is encoded exactly like ``model.forward``.
    """
    if (input_signal is None) == (processed_signal is None):
        raise ValueError("Pass exactly one of input_signal or processed_signal.")
    if cfg.chunk_features and input_signal is None:
        raise ValueError("longform chunk_features=true cuts the audio: pass input_signal, not processed_signal")
    with _inference(model):
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
        window = None
        if cfg.pre_encode_seconds is not None:
            window = round(cfg.pre_encode_seconds / float(model.cfg.preprocessor.window_stride))
        frames, frame_lens = pre_encode(model.encoder, processed_signal, processed_signal_length.to(device), window)
        lengths, size = frame_lens.tolist(), chunk_frames(model, cfg.chunk_seconds)
        factor = model.encoder.subsampling_factor
        width = chunk_frames(model, PAUSE_WIDTH_SECONDS)  # frames before a cut that must be quiet
        if cfg.boundary != "fixed" or cfg.trim_pauses or cfg.split_margin is not None:
            loudness = _feature_loudness(processed_signal, processed_signal_length, lengths, factor, reverse)
        if cfg.boundary in ("pause", "every_pause"):
            search = min(size, chunk_frames(model, cfg.pause_search_seconds))
            if cfg.boundary == "every_pause":
                shortest = chunk_frames(model, _MIN_CHUNK_SECONDS)
                lead = round(cfg.onset_lead_seconds / float(model.cfg.preprocessor.window_stride))
                # with the split search, stretches longer than a chunk are cut by it (below), not at the quietest point
                cap = max(lengths, default=0) + 1 if cfg.split_margin is not None else size
                cuts = [pause_cuts(values, factor, cap, search, width, shortest, lead) for values in loudness]
            else:
                cuts = [chunk_cuts(_frame_means(values, factor).tolist(), size, search, width) for values in loudness]
        else:
            cuts = [list(range(size, length, size)) + [length] if length else [] for length in lengths]
        if cfg.split_margin is not None:
            encode = functools.partial(
                _encode_spans, model, cfg, frames=frames, signal=input_signal, signal_lens=input_signal_length
            )
            force = (size, search, width) if cfg.boundary == "every_pause" else None
            cuts = split_search(model, cfg, cuts, loudness, lengths, reverse, encode, force)
        kept = None
        if cfg.trim_pauses:
            margin = round(_TRIM_MARGIN_SECONDS / float(model.cfg.preprocessor.window_stride))
            kept = [
                speech_ends(values, factor, ends, width, margin) for values, ends in zip(loudness, cuts, strict=True)
            ]
        del processed_signal

        spans = _chunk_spans(cuts, lengths, reverse, kept)
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
            frame_lens=torch.tensor(lengths, dtype=torch.long),
        )


def _encode_spans(
    model,
    cfg: LongformConfig,
    spans: list[tuple[int, int, int]],
    frames: torch.Tensor,
    signal: Optional[torch.Tensor],
    signal_lens: Optional[torch.Tensor],
) -> list[torch.Tensor]:
    """Conformer output (n, D) of each (utterance, first frame, length) span, ``cfg.chunk_batch_size`` at a time:
    its audio alone (``chunk_features``) or its slice of the subsampled ``frames`` (B, T, D)."""
    factor = model.encoder.subsampling_factor
    outputs: list[torch.Tensor] = []
    for group_start in range(0, len(spans), cfg.chunk_batch_size):
        group = spans[group_start : group_start + cfg.chunk_batch_size]
        if cfg.chunk_features:
            outputs.extend(_encode_chunk_audio(model, signal, signal_lens, group, factor))
            continue
        lens = torch.tensor([n for _, _, n in group], dtype=torch.long, device=frames.device)
        chunks = frames.new_zeros(len(group), int(lens.max()), frames.size(2))  # (G, C, D)
        for i, (b, start, n) in enumerate(group):
            chunks[i, :n] = frames[b, start : start + n]
        out, out_lens = model.encoder(audio_signal=chunks, length=lens, bypass_pre_encode=True)  # (G, D, C)
        outputs.extend(o[:, :n].transpose(0, 1) for o, n in zip(out, out_lens.tolist(), strict=True))
    return outputs


def split_candidates(frame_loudness: Sequence[float], start: int, end: int, side: int, count: int) -> list[int]:
    """Up to ``count`` cuts inside chunk [start, end) (encoder frames), quietest first: local minima of the
    loudness smoothed over 3 frames, at least ``side`` frames from either end. A cut c starts the second half
    at frame c, the quietest frame of a dip between two words."""
    values = np.asarray(frame_loudness, dtype=np.float64)
    smooth = np.convolve(values, np.ones(3) / 3, mode="same")
    smooth[0], smooth[-1] = values[:2].mean(), values[-2:].mean()  # no zero padding at the ends
    inner = range(max(start + side, 1), min(end - side, len(values) - 1) + 1)
    minima = [c for c in inner if smooth[c] <= smooth[c - 1] and smooth[c] <= smooth[c + 1]]
    # adjacent minima are one flat bottom, a dip only if the frames on both sides are louder (a level stretch is
    # none); the dip is its quietest unsmoothed frame
    runs = np.split(np.asarray(minima, dtype=np.int64), np.flatnonzero(np.diff(minima) > 1) + 1) if minima else []
    dips = [
        int(run[np.argmin(values[run])])
        for run in runs
        if smooth[run[0] - 1] > smooth[run[0]] and smooth[run[-1] + 1] > smooth[run[-1]]
    ]
    return sorted(dips, key=lambda c: (smooth[c], values[c], c))[:count]


def split_search(
    model,
    cfg: LongformConfig,
    cuts: list[list[int]],
    loudness: list[list[float]],
    lengths: list[int],
    reverse: bool,
    encode: Callable[[list[tuple[int, int, int]]], list[torch.Tensor]],
    force: Optional[tuple[int, int, int]] = None,
) -> list[list[int]]:
    """Each utterance's chunk ends (time order) with chunks split where the model reads two halves better.

    A chunk of at least ``split_min_seconds`` is decoded whole and, for each of its ``split_candidates``
    quietest points, as two halves, every piece from a fresh state (as a reset_only chunk, whatever the mode);
    the cut whose halves' scores sum highest is taken when it beats the whole by ``split_margin`` nats, and
    the halves are searched again. An aligner emits token i at frame i of its chunk, so two sentences with no
    pause between them are one long read it often garbles, while each half alone is a training-like utterance.
    Cost: (1 + 2 x candidates) extra chunk encodes and decodes per chunk searched.

    With ``force = (size, search, width)`` (frames) a chunk longer than ``size`` is always cut, at the best of
    twice as many dips (no margin), or where ``chunk_cuts(size, search, width)`` would cut it if it has none:
    the model, not the loudness alone, picks where a long stretch without a pause is cut.
    """
    factor = model.encoder.subsampling_factor
    shortest, side = chunk_frames(model, cfg.split_min_seconds), chunk_frames(model, SPLIT_SIDE_SECONDS)
    frame_loudness = [_frame_means(values, factor) for values in loudness]
    cuts = [list(ends) for ends in cuts]
    scores: dict[tuple[int, int, int], float] = {}  # (utterance, start, end) in time order -> decode score

    def score(segments: list[tuple[int, int, int]]) -> None:
        todo = sorted({seg for seg in segments if seg not in scores})
        spans = [(b, lengths[b] - end if reverse else start, end - start) for b, start, end in todo]
        for group_start in range(0, len(spans), cfg.chunk_batch_size):
            outs = encode(spans[group_start : group_start + cfg.chunk_batch_size])
            lens = torch.tensor([o.size(0) for o in outs], dtype=torch.long, device=outs[0].device)
            values = _chunk_scores(model, torch.nn.utils.rnn.pad_sequence(outs, batch_first=True), lens)
            scores.update(zip(todo[group_start : group_start + len(outs)], values, strict=True))

    size = force[0] if force is not None else None

    def forced(seg: tuple[int, int, int]) -> bool:
        return size is not None and seg[2] - seg[1] > size

    def searched(seg: tuple[int, int, int]) -> bool:
        return forced(seg) or seg[2] - seg[1] >= shortest

    pending = [
        seg
        for b, ends in enumerate(cuts)
        for seg in ((b, start, end) for start, end in zip([0] + ends[:-1], ends, strict=False))
        if searched(seg)
    ]
    while pending:
        tried = []
        for b, a, z in pending:
            count = cfg.split_candidates * (2 if forced((b, a, z)) else 1)
            candidates = split_candidates(frame_loudness[b], a, z, side, count)
            if candidates:
                tried.append(((b, a, z), candidates))
            elif forced((b, a, z)):  # no dip to try: cut as without the search
                stretch = frame_loudness[b][a:z].tolist()
                cuts[b] = sorted(set(cuts[b]) | {a + c for c in chunk_cuts(stretch, *force)})
        score(
            [
                piece
                for (b, a, z), cs in tried
                for piece in ([] if forced((b, a, z)) else [(b, a, z)])
                + [p for c in cs for p in ((b, a, c), (b, c, z))]
            ]
        )
        pending = []
        for (b, a, z), candidates in tried:
            whole = 0.0 if forced((b, a, z)) else scores[(b, a, z)]
            gain, cut = max((scores[(b, a, c)] + scores[(b, c, z)] - whole, c) for c in candidates)
            if forced((b, a, z)) or gain > cfg.split_margin:
                cuts[b] = sorted(cuts[b] + [cut])
                pending += [seg for seg in ((b, a, cut), (b, cut, z)) if searched(seg)]
    return cuts


def _chunk_scores(model, chunks: torch.Tensor, lens: torch.Tensor) -> list[float]:
    """Score (log-probability, EOS included) of each chunk decoded alone from a fresh state."""
    if model.cfg.decoding.strategy == "nonar_greedy":
        hyps, _ = nonar_greedy(None, model.nonar_head, chunks, lens, model.eos_id)
    else:
        hyps, _ = chunk_search(model)(chunks, lens, None)
    return hyps.scores.tolist()


def _encode_chunk_audio(
    model, signal: torch.Tensor, signal_lens: torch.Tensor, group: list[tuple[int, int, int]], factor: int
) -> list[torch.Tensor]:
    """chunk_features: each span's audio (encoder frame f = samples [f * hop * factor, (f + 1) * hop * factor))
    through the preprocessor and the whole encoder, as ``model.forward`` would take it alone -> (n, D) each.

    Each chunk gets its own feature normalization and no audio outside it, like a (trimmed) training utterance.
    The conv subsampling rounds up, so a chunk's extra last frame is dropped to keep global timestamps exact.
    """
    step = round(float(model.cfg.preprocessor.window_stride) * int(model.cfg.sample_rate)) * factor
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


# ---------------------------------------------------------------------------------------------- decoding
@dataclass
class _Progress:
    """Per-utterance decoding record across chunks."""

    tokens: list[int]  # emitted token ids so far
    frames: list[int]  # global encoder frame of each token
    score: float  # summed log-probabilities (EOS included where emitted)
    carried: Optional[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # state after the last emitting chunk


def _stack_states(parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> DecoderState:
    """Rows' (h (L, 1, H), c (L, 1, H), pending token (1,)) -> one batched DecoderState."""
    hs, cs, lasts = zip(*parts, strict=True)
    return DecoderState(lstm=(torch.cat(hs, dim=1), torch.cat(cs, dim=1)), last_tokens=torch.cat(lasts))


def _fresh_part(decoder, eos_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Zero LSTM state + the start token: with ``blank_as_pad`` the blank (= EOS) id embeds to the SOS zero vector."""
    h, c = decoder.initialize_state(torch.zeros(1, device=device, dtype=next(decoder.parameters()).dtype))
    return h, c, torch.full((1,), eos_id, dtype=torch.long, device=device)


def _reset_state(model, progress: list[_Progress], cfg: LongformConfig) -> Optional[DecoderState]:
    """reset_only: every chunk starts from the zero state and the start token, like a new utterance."""
    return None


def _primed_state(model, progress: list[_Progress], cfg: LongformConfig) -> Optional[DecoderState]:
    """prime: reset, then feed SOS + the last ``prime_tokens`` tokens (rows grouped by how many they have).

    The last of them stays pending as ``last_tokens`` (``greedy_batch`` feeds it at its first step), so the
    LSTM has seen exactly SOS + those tokens when the chunk's first frame is read.
    """
    counts = [min(cfg.prime_tokens, len(p.tokens)) for p in progress]
    if not any(counts):
        return None
    decoder, device = model.decoder, next(model.decoder.parameters()).device
    parts: list = [None] * len(progress)
    for count in sorted(set(counts)):
        rows = [r for r, n in enumerate(counts) if n == count]
        if count == 0:
            for r in rows:
                parts[r] = _fresh_part(decoder, model.eos_id, device)
            continue
        history = torch.tensor([progress[r].tokens[-count:] for r in rows], dtype=torch.long, device=device)
        if count == 1:  # only SOS to feed
            _, (h, c) = decoder.predict(None, state=None, add_sos=False, batch_size=len(rows))
        else:
            _, (h, c) = decoder.predict(history[:, :-1], state=None, add_sos=True)
        for i, r in enumerate(rows):
            parts[r] = (h[:, i : i + 1], c[:, i : i + 1], history[i, -1:])
    return _stack_states(parts)


def _carried_state(model, progress: list[_Progress], cfg: LongformConfig) -> Optional[DecoderState]:
    """carry_state: continue the previous chunk's LSTM state and pending token, as if there were no boundary."""
    if all(p.carried is None for p in progress):
        return None
    device = next(model.decoder.parameters()).device
    parts = [p.carried if p.carried is not None else _fresh_part(model.decoder, model.eos_id, device) for p in progress]
    return _stack_states(parts)


# mode -> function (model, progress of the utterances in this step, cfg) -> state for greedy_batch (None: fresh)
START_STATES: dict[str, Callable[..., Optional[DecoderState]]] = {
    "prime": _primed_state,
    "reset_only": _reset_state,
    "carry_state": _carried_state,
}


ChunkSearch = Callable[[torch.Tensor, torch.Tensor, Optional[DecoderState]], tuple[BatchedHyps, DecoderState]]


def chunk_search(model) -> ChunkSearch:
    """The model's decoding strategy as ``(chunks (B, C, D), lengths (B,), start state) -> (hyps, end state)``.

    ``greedy_batch``, or ``beam`` (the config's ``decoding.beam``) keeping only the best hypothesis of each
    chunk: the next chunk starts from its tokens and state, so beams do not cross a chunk boundary. A
    ``max_tokens`` cap is per utterance in plain decoding and has no per-chunk meaning, so none is applied.
    """
    decoder, joint, eos_id = model.decoder, model.joint, model.eos_id
    if model.cfg.decoding.strategy == "beam":
        beam_cfg = dataclasses.replace(
            strategy_options(model.cfg.decoding), max_tokens=None, return_best_hypothesis=True
        )

        def search(chunks: torch.Tensor, lens: torch.Tensor, state: Optional[DecoderState]):
            hyps, end_state = beam_search(decoder, joint, chunks, lens, eos_id, beam_cfg, state)
            return hyps.best(), end_state

        return search
    return lambda chunks, lens, state: greedy_batch(decoder, joint, chunks, lens, eos_id, GreedyBatchConfig(), state)


def decode_chunked_batch(model, encoding: ChunkedEncoding, cfg: LongformConfig) -> list[Hypothesis]:
    """Decoding chunk by chunk, batched across utterances; token frames are global encoder frames.

    Step k decodes the k-th chunk of every utterance that has one, with the model's strategy (``chunk_search``:
    greedy or beam); its start state comes from ``START_STATES[cfg.mode]`` and the tokens emitted so far. A
    model decoding with ``nonar_greedy`` has no prediction network: its chunks are independent, decoded all at
    once, and ``mode`` has no effect. Text is left empty (see ``transcribe_longform``).
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
    progress = [_Progress([], [], 0.0, None) for _ in num_chunks]

    def record(chunk_ids: list[int], hyps) -> None:
        tokens, lengths, scores, frames = hyps.tokens.cpu(), hyps.lengths.tolist(), hyps.scores.tolist(), hyps.frames
        for i, n in enumerate(chunk_ids):
            p = progress[owner[n]]
            p.tokens += tokens[i, : lengths[i]].tolist()
            p.frames += (frames[i, : lengths[i]].cpu() + offsets[n]).tolist()
            p.score += scores[i]

    with _inference(model):
        if model.cfg.decoding.strategy == "nonar_greedy":
            hyps, _ = nonar_greedy(
                None, model.nonar_head, encoding.encoder_out, encoding.encoder_out_lens, model.eos_id
            )
            record(list(range(len(owner))), hyps)
        else:
            firsts = list(itertools.accumulate(num_chunks, initial=0))[:-1]  # each utterance's first chunk
            start_state, search = START_STATES[cfg.mode], chunk_search(model)
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


# ---------------------------------------------------------------------------------------------- transcription
def load_audio(item: AudioInput, sample_rate: int) -> torch.Tensor:
    """A path (read and resampled to the model rate by NeMo's AudioSegment, channels averaged) or a 1-D array
    already at the model rate -> (S,) float32."""
    if isinstance(item, str):
        return torch.from_numpy(AudioSegment.from_file(item, target_sr=sample_rate).samples.astype(np.float32))
    return torch.as_tensor(item, dtype=torch.float32).reshape(-1)


def transcribe_longform(
    model, audio: Sequence[AudioInput], cfg: Optional[LongformConfig] = None, batch_size: int = 1
) -> list[Hypothesis]:
    """Chunked transcription of long audio files or arrays; ``batch_size`` utterances are decoded together.

    Peak memory: the features and subsampled frames of one batch of utterances, plus one group of
    ``cfg.chunk_batch_size`` chunks' Conformer activations, instead of O(T^2) attention over whole files.
    """
    cfg = cfg or LongformConfig()
    sample_rate = int(model.cfg.sample_rate)
    results: list[Hypothesis] = []
    for start in range(0, len(audio), batch_size):
        signals = [load_audio(item, sample_rate) for item in audio[start : start + batch_size]]
        lens = torch.tensor([s.numel() for s in signals], dtype=torch.long)
        batch = torch.nn.utils.rnn.pad_sequence(signals, batch_first=True)
        del signals
        encoding = encode_chunked(model, cfg, input_signal=batch, input_signal_length=lens)
        del batch
        for hyp in decode_chunked_batch(model, encoding, cfg):
            hyp.text = model.tokenizer.ids_to_text(hyp.y_sequence.tolist())
            results.append(hyp)
    return results


def _duration(item: AudioInput, sample_rate: int) -> float:
    """Seconds of a path (header only where soundfile reads the format) or of a 1-D array at the model rate."""
    if isinstance(item, str):
        import soundfile

        try:
            return soundfile.info(item).duration
        except RuntimeError:  # a format only librosa reads (e.g. some mp3): decode it
            return load_audio(item, sample_rate).numel() / sample_rate
    return np.asarray(item).size / sample_rate


def transcribe_routed(
    model,
    audio: Sequence[AudioInput],
    cfg: LongformConfig,
    plain_transcribe: Callable[[list], list],
    batch_size: int = 1,
) -> list[Hypothesis]:
    """Items longer than one chunk go to ``transcribe_longform``, the rest to ``plain_transcribe``; order kept."""
    sample_rate = int(model.cfg.sample_rate)
    long_items = [i for i, item in enumerate(audio) if _duration(item, sample_rate) > cfg.chunk_seconds]
    short_items = [i for i in range(len(audio)) if i not in set(long_items)]
    results: list = [None] * len(audio)
    if short_items:
        for i, hyp in zip(short_items, plain_transcribe([audio[i] for i in short_items]), strict=True):
            results[i] = hyp
    if long_items:
        hyps = transcribe_longform(model, [audio[i] for i in long_items], cfg, batch_size=batch_size)
        for i, hyp in zip(long_items, hyps, strict=True):
            results[i] = hyp
    return results


def longform_config(section: Optional[Mapping]) -> Optional[LongformConfig]:
    """The model's ``longform:`` config section -> LongformConfig, or None when absent or ``enabled: false``."""
    if not section or not section.get("enabled", False):
        return None
    return LongformConfig(**{key: value for key, value in dict(section).items() if key != "enabled"})


def routable_audio(audio) -> Optional[list]:
    """``transcribe()`` input as a list of audio paths / 1-D arrays, or None for what long-form does not take
    (manifests, DataLoaders, multi-channel arrays): those stay on the plain path."""
    items = [audio] if isinstance(audio, (str, np.ndarray, torch.Tensor)) else audio
    if not isinstance(items, (list, tuple)) or not items:
        return None
    for item in items:
        if isinstance(item, str) and item.endswith((".json", ".jsonl")):
            return None
        if not isinstance(item, (str, np.ndarray, torch.Tensor)) or (not isinstance(item, str) and item.ndim != 1):
            return None
    return list(items)
