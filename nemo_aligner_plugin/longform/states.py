"""What the prediction network knows at a long-form chunk start: the ``mode`` policies.

B: utterances decoded in this step, L: LSTM layers, H: prediction-network dim.

``prime`` (the paper's best: reset, then feed the last emitted tokens), ``reset_only`` (each chunk a new
utterance) or ``carry_state`` (the previous chunk's state, as if there were no boundary; the paper saw deletions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

import torch

from nemo_aligner_plugin.config import LongformConfig
from nemo_aligner_plugin.decoding import DecoderState

__all__ = ["START_STATES", "ChunkProgress"]

# One row's state: h (L, 1, H), c (L, 1, H), the token not yet fed (1,)
RowState = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass
class ChunkProgress:
    """One utterance's decoding record across its chunks."""

    tokens: list[int]  # emitted token ids so far
    frames: list[int]  # global encoder frame of each token
    score: float  # summed log-probabilities (EOS included where emitted)
    carried: Optional[RowState]  # state after the last decoded chunk


def _stack_states(parts: list[RowState]) -> DecoderState:
    """Rows' (h (L, 1, H), c (L, 1, H), pending token (1,)) -> one batched DecoderState."""
    hs, cs, lasts = zip(*parts, strict=True)
    return DecoderState(lstm=(torch.cat(hs, dim=1), torch.cat(cs, dim=1)), last_tokens=torch.cat(lasts))


def _fresh_part(decoder, eos_id: int, device: torch.device) -> RowState:
    """Zero LSTM state + the start token: with ``blank_as_pad`` the blank (= EOS) id embeds to the SOS zero vector."""
    h, c = decoder.initialize_state(torch.zeros(1, device=device, dtype=next(decoder.parameters()).dtype))
    return h, c, torch.full((1,), eos_id, dtype=torch.long, device=device)


def _reset_state(model, progress: list[ChunkProgress], cfg: LongformConfig) -> Optional[DecoderState]:
    """reset_only: every chunk starts from the zero state and the start token, like a new utterance."""
    return None


def _primed_state(model, progress: list[ChunkProgress], cfg: LongformConfig) -> Optional[DecoderState]:
    """prime: reset, then feed SOS + the last ``prime_tokens`` tokens (rows grouped by how many they have).

    The last of them stays pending as ``last_tokens`` (the decoder feeds it at its first step), so the
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


def _carried_state(model, progress: list[ChunkProgress], cfg: LongformConfig) -> Optional[DecoderState]:
    """carry_state: continue the previous chunk's LSTM state and pending token, as if there were no boundary."""
    if all(p.carried is None for p in progress):
        return None
    device = next(model.decoder.parameters()).device
    parts = [p.carried if p.carried is not None else _fresh_part(model.decoder, model.eos_id, device) for p in progress]
    return _stack_states(parts)


# mode -> function (model, progress of the utterances in this step, cfg) -> start state (None: fresh)
START_STATES: dict[str, Callable[..., Optional[DecoderState]]] = {
    "prime": _primed_state,
    "reset_only": _reset_state,
    "carry_state": _carried_state,
}
