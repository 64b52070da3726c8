"""Batch-level utterance concatenation (paper sec. 5: ~15% of each batch joined into ~2x-long examples).

B: batch size, S: audio samples, U: tokens.

Aligners, like AED, lose accuracy on test utterances longer than any seen in training; joining random
pairs inside the batch shows the encoder longer alignments at no data-pipeline cost. SentencePiece
token sequences concatenate cleanly because every sentence starts with a word-initial piece.
With Lhotse, `concatenate_samples: true` does the same at the sampler level.
"""

from __future__ import annotations

import torch

__all__ = ["concatenate_pairs", "reverse_within_length"]


def reverse_within_length(audio: torch.Tensor, audio_lens: torch.Tensor) -> torch.Tensor:
    """(B, S) -> each row's first ``audio_lens[b]`` samples reversed, padding left in place.

    For the paper's reverse-alignment experiment: text is still emitted left to right, so the encoder
    must learn an anti-diagonal alignment.
    """
    positions = torch.arange(audio.size(1), device=audio.device).unsqueeze(0)
    lens = audio_lens.to(audio.device).long().unsqueeze(1)
    source = torch.where(positions < lens, lens - 1 - positions, positions)
    return audio.gather(1, source)


def concatenate_pairs(
    audio: torch.Tensor,
    audio_lens: torch.Tensor,
    tokens: torch.Tensor,
    token_lens: torch.Tensor,
    fraction: float,
    gap_samples: int = 0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Join ``round(fraction * B / 2)`` random disjoint pairs of rows into single rows.

    Args:
        audio: (B, S) padded audio; audio_lens: (B,).
        tokens: (B, U) padded token ids; token_lens: (B,).
        fraction: share of the batch's utterances that end up in a concatenated row.
        gap_samples: silence inserted between the two utterances.

    Returns:
        The new (B', S'), (B',), (B', U'), (B',) with B' = B - number of pairs; untouched rows keep their order.
    """
    batch = audio.size(0)
    num_pairs = min(int(round(fraction * batch / 2)), batch // 2)
    if num_pairs == 0:
        return audio, audio_lens, tokens, token_lens
    order = torch.randperm(batch, generator=generator).tolist()
    firsts, seconds = order[:num_pairs], order[num_pairs : 2 * num_pairs]
    paired = set(firsts) | set(seconds)
    rows = [(i, None) for i in range(batch) if i not in paired] + list(zip(firsts, seconds, strict=True))

    new_audio, new_audio_lens, new_tokens, new_token_lens = [], [], [], []
    gap = audio.new_zeros(gap_samples)
    for first, second in rows:
        a = audio[first, : audio_lens[first]]
        t = tokens[first, : token_lens[first]]
        if second is not None:
            a = torch.cat([a, gap, audio[second, : audio_lens[second]]])
            t = torch.cat([t, tokens[second, : token_lens[second]]])
        new_audio.append(a)
        new_tokens.append(t)
        new_audio_lens.append(a.numel())
        new_token_lens.append(t.numel())
    pad = torch.nn.utils.rnn.pad_sequence
    return (
        pad(new_audio, batch_first=True),
        torch.tensor(new_audio_lens, device=audio_lens.device, dtype=audio_lens.dtype),
        pad(new_tokens, batch_first=True),
        torch.tensor(new_token_lens, device=token_lens.device, dtype=token_lens.dtype),
    )
