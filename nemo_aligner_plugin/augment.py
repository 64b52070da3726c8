"""Batch-level utterance concatenation (paper sec. 5: ~15% of each batch joined into ~2x-long examples).

B: batch size, S: audio samples, U: tokens.

Aligners, like AED, lose accuracy on test utterances longer than any seen in training; joining random
pairs (or larger groups) inside the batch shows the encoder longer alignments at no data-pipeline cost. SentencePiece
token sequences concatenate cleanly because every sentence starts with a word-initial piece.
With Lhotse, `concatenate_samples: true` does the same at the sampler level.
"""

from __future__ import annotations

import math

import torch

from nemo_aligner_plugin.config import ConcatUtterancesConfig, NonSpeechConfig, SilencePaddingConfig, seconds_range
from nemo_aligner_plugin.nonspeech import NonSpeechRows

__all__ = ["BatchAugmentation", "concatenate_utterances", "pad_silence", "reverse_within_length", "stochastic_round"]


def reverse_within_length(audio: torch.Tensor, audio_lens: torch.Tensor) -> torch.Tensor:
    """(B, S) -> each row's first ``audio_lens[b]`` samples reversed, padding left in place.

    For the paper's reverse-alignment experiment: text is still emitted left to right, so the encoder
    must learn an anti-diagonal alignment.
    """
    positions = torch.arange(audio.size(1), device=audio.device).unsqueeze(0)
    lens = audio_lens.to(audio.device).long().unsqueeze(1)
    source = torch.where(positions < lens, lens - 1 - positions, positions)
    return audio.gather(1, source)


def concatenate_utterances(
    audio: torch.Tensor,
    audio_lens: torch.Tensor,
    tokens: torch.Tensor,
    token_lens: torch.Tensor,
    fraction: float,
    gap_samples: int | tuple[int, int] = 0,
    max_joined: int = 2,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Join random disjoint groups of 2..``max_joined`` rows into single rows.

    With ``max_joined=2`` (the paper's pairs) ``fraction * B / 2`` pairs are joined, rounded up or down at random so
    that the expected share is ``fraction`` for any batch size (plain rounding never joins a batch of 6 at 15% and
    always joins one pair in batches of 7-16). Larger groups reach
    further past the training length at the same audio per batch: a pair is at most twice the longest
    utterance, while test audio of three sentences needs alignments longer than any pair.

    Args:
        audio: (B, S) padded audio; audio_lens: (B,).
        tokens: (B, U) padded token ids; token_lens: (B,).
        fraction: share of the batch's utterances that end up in a concatenated row.
        gap_samples: silence inserted between joined utterances; a (min, max) pair draws each gap uniformly, so
            some joins run straight on as continuous speech does (sentences read without a pause).
        max_joined: largest group; each group's size is drawn uniformly from 2..max_joined.

    Returns:
        The new (B', S'), (B',), (B', U'), (B',); untouched rows come first and keep their order.
    """
    if max_joined < 2:
        raise ValueError(f"max_joined={max_joined}: a concatenated row joins at least 2 utterances")
    batch = audio.size(0)
    if max_joined == 2:
        chosen = 2 * min(stochastic_round(fraction * batch / 2, generator), batch // 2)
    else:  # groups can use an odd leftover, so draw utterances, not pairs; a lone one joins nothing
        chosen = min(stochastic_round(fraction * batch, generator), batch)
        if chosen == 1:
            chosen = 2 * stochastic_round(0.5, generator)
    if chosen < 2:
        return audio, audio_lens, tokens, token_lens
    order = torch.randperm(batch, generator=generator).tolist()
    groups, start = [], 0
    while chosen - start >= 2:
        left = chosen - start
        size = 2 if max_joined == 2 else int(torch.randint(2, min(max_joined, left) + 1, (), generator=generator))
        if left - size == 1:  # never leave one utterance alone: grow this group, or shrink it to pair the rest
            size = size + 1 if size < max_joined else size - 1
        groups.append(order[start : start + size])
        start += size
    joined = {i for group in groups for i in group}
    rows = [[i] for i in range(batch) if i not in joined] + groups

    new_audio, new_tokens = [], []
    low, high = (gap_samples, gap_samples) if isinstance(gap_samples, int) else gap_samples
    for group in rows:
        a, t = [], []
        for position, i in enumerate(group):
            if position:
                gap = low if low == high else int(torch.randint(low, high + 1, (), generator=generator))
                a.append(audio.new_zeros(gap))  # a fixed gap draws nothing: runs with one keep their random stream
            a.append(audio[i, : audio_lens[i]])
            t.append(tokens[i, : token_lens[i]])
        new_audio.append(torch.cat(a))
        new_tokens.append(torch.cat(t))
    return (*_pad_rows(new_audio, audio_lens), *_pad_rows(new_tokens, token_lens))


def stochastic_round(value: float, generator: torch.Generator | None = None) -> int:
    """``floor(value)``, plus one with probability ``value - floor(value)``: an integer whose mean is ``value``."""
    whole = math.floor(value)
    if whole == value:  # nothing to draw: the random stream stays as it was
        return whole
    return whole + int(float(torch.rand((), generator=generator)) < value - whole)


def pad_silence(
    audio: torch.Tensor,
    audio_lens: torch.Tensor,
    prob: float,
    min_samples: int,
    max_samples: int,
    generator: torch.Generator | None = None,
    noise: float = 0.0,
    floor_window: int = 160,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Put silence before and after a random share ``prob`` of the rows (B, S) -> (B, S').

    The batch-level twin of NeMo's ``SilencePerturbation``: applied after concatenation, silence lands only at
    the ends of a joined row, so the joins stay continuous speech. Start and end lengths are drawn independently
    from ``min_samples..max_samples``. A share ``noise`` of the padded rows gets, instead of digital zeros,
    Gaussian noise at the row's own floor (the RMS of its quietest ``floor_window`` samples): what a pause
    sounds like in recorded audio, where a chunk of long audio starts or ends.
    """
    batch = audio.size(0)
    chosen = torch.rand(batch, generator=generator) < prob
    if not bool(chosen.any()):
        return audio, audio_lens
    lengths = torch.randint(min_samples, max_samples + 1, (batch, 2), generator=generator) * chosen.unsqueeze(1)
    noisy = torch.rand(batch, generator=generator) < noise
    rows = []
    for b in range(batch):
        start, end = int(lengths[b, 0]), int(lengths[b, 1])
        row = audio[b, : audio_lens[b]]
        if bool(noisy[b]):
            level = noise_floor(row, floor_window)
            pad = torch.randn(start + end, generator=generator).to(row) * level
            rows.append(torch.cat([pad[:start], row, pad[start:]]))
        else:
            rows.append(torch.cat([audio.new_zeros(start), row, audio.new_zeros(end)]))
    return _pad_rows(rows, audio_lens)


def noise_floor(row: torch.Tensor, window: int) -> torch.Tensor:
    """RMS of the quietest whole ``window`` of samples of a 1-D signal (the whole signal when shorter)."""
    frames = row[: row.numel() // window * window].reshape(-1, window) if row.numel() >= window else row[None]
    return frames.float().pow(2).mean(dim=1).min().sqrt()


def _pad_rows(rows: list[torch.Tensor], lens_like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of different lengths -> (B, max) zero-padded and their lengths (with ``lens_like``'s device and dtype)."""
    lens = torch.tensor([r.numel() for r in rows], device=lens_like.device, dtype=lens_like.dtype)
    return torch.nn.utils.rnn.pad_sequence(rows, batch_first=True), lens


class BatchAugmentation:
    """The training-batch augmentations of ``model.nonspeech``, ``model.concat_utterances`` and
    ``model.silence_padding``, in that order: a non-speech row may be joined with speech, as pauses are in real audio.

    B: batch size, S: audio samples, U: tokens.
    """

    def __init__(
        self,
        concat: ConcatUtterancesConfig,
        padding: SilencePaddingConfig,
        sample_rate: int,
        nonspeech: NonSpeechConfig | None = None,
    ):
        self.concat, self.padding = concat, padding
        self.nonspeech = NonSpeechRows(nonspeech or NonSpeechConfig(), sample_rate)
        low, high = seconds_range(concat.gap_seconds, "model.concat_utterances.gap_seconds")
        self.gap_samples = (int(low * sample_rate), int(high * sample_rate))
        if isinstance(concat.gap_seconds, (int, float)):
            self.gap_samples = self.gap_samples[0]  # a fixed gap draws nothing from the random stream
        self.pad_samples = (int(padding.min_seconds * sample_rate), int(padding.max_seconds * sample_rate))

    def __call__(
        self,
        audio: torch.Tensor,
        audio_lens: torch.Tensor,
        tokens: torch.Tensor,
        token_lens: torch.Tensor,
        step: int,
        rank: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, S), (B,), (B, U), (B,) at training step ``step`` on DDP rank ``rank`` -> the augmented batch (rows
        may be fewer)."""
        concat, padding = self.concat, self.padding
        audio, audio_lens, tokens, token_lens = self.nonspeech(audio, audio_lens, tokens, token_lens, step, rank)
        if concat.fraction > 0 and step >= concat.start_step:
            fraction = concat.fraction
            if concat.mode == "whole_batches":  # all rows joined in that share of the batches, none elsewhere
                fraction = 1.0 if float(torch.rand(())) < concat.fraction else 0.0
            audio, audio_lens, tokens, token_lens = concatenate_utterances(
                audio, audio_lens, tokens, token_lens, fraction, self.gap_samples, max_joined=concat.max_joined
            )
        if padding.prob > 0 and step >= padding.start_step:  # after joining: silence at the ends only
            audio, audio_lens = pad_silence(audio, audio_lens, padding.prob, *self.pad_samples, noise=padding.noise)
        return audio, audio_lens, tokens, token_lens
