"""Every option dataclass of the plugin: the one place their defaults live.

The YAMLs in configs/ list the same keys with a comment each; ``from_asr_model`` and the model read their
sections through these classes, so a default changes here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

# Long-form start states (what the prediction network knows at a chunk start): see longform.states.
LONGFORM_MODES = ("prime", "reset_only", "carry_state")
# longform.enabled: true (audio longer than chunk_seconds is chunked), false (never), "auto" (audio longer than
# the model was trained on: train_durations.p99_seconds, else train_ds.max_duration, else chunk_seconds)
LONGFORM_ENABLED = (True, False, "auto")
# boundary -> meaning; see LongformConfig.boundary
BOUNDARIES = {
    "fixed": "a cut every chunk_seconds (the paper)",
    "pause": "each cut at the end of the quietest stretch in the chunk's last pause_search_seconds",
    "every_pause": "a cut at every pause, where speech resumes; longer stretches cut as with pause",
}
# Seconds of audio before a candidate cut whose mean loudness scores it: a pause must be this wide to win over
# the short closure of a stop consonant.
PAUSE_WIDTH_SECONDS = 0.2
# split_margin: no half of a split chunk shorter than this (about the shortest training sentence).
SPLIT_SIDE_SECONDS = 0.8


@dataclass
class LongformConfig:
    enabled: Union[bool, str] = "auto"  # when transcribe() chunks audio: one of LONGFORM_ENABLED
    chunk_seconds: float = 15.0  # chunk length; keep it within the training utterance length
    mode: str = "prime"  # prediction-network state at a chunk start: one of LONGFORM_MODES
    prime_tokens: int = 10  # prime mode: how many previously emitted tokens to feed after the reset
    chunk_batch_size: int = 8  # chunks run through the Conformer layers at once (bounds activation memory)
    pre_encode_seconds: Optional[float] = 30.0  # conv subsampling in overlapping windows this long; None: all at once
    boundary: str = "fixed"  # where chunks end: a key of BOUNDARIES
    pause_search_seconds: float = 2.0  # boundary=pause: how far before a chunk's end to look (capped at chunk_seconds)
    chunk_features: bool = False  # each chunk's audio through the preprocessor and encoder as an utterance of its own
    trim_pauses: bool = False  # drop each chunk's trailing pause (its frames decode nothing, as a trimmed utterance)
    onset_lead_seconds: float = 0.0  # every_pause: start each chunk this long before the detected speech onset
    # Split a chunk at one of its quiet points when decoding the two halves alone scores more than this many nats
    # (log-probability, EOS included) above decoding it whole: two sentences read on without a pause; None: off.
    split_margin: Optional[float] = None
    split_min_seconds: float = 2.0  # split_margin: chunks shorter than this are read whole
    split_candidates: int = 6  # split_margin: the quietest points of a chunk tried as its cut

    def __post_init__(self) -> None:
        if isinstance(self.enabled, str) and self.enabled.lower() in ("true", "false"):  # a quoted CLI value
            self.enabled = self.enabled.lower() == "true"
        if self.enabled not in LONGFORM_ENABLED:
            raise ValueError(f"longform enabled={self.enabled!r}; choose true, false or auto")
        if self.mode not in LONGFORM_MODES:
            raise ValueError(f"longform mode={self.mode!r}; choose one of {sorted(LONGFORM_MODES)}")
        if self.boundary not in BOUNDARIES:
            raise ValueError(f"longform boundary={self.boundary!r}; choose one of {sorted(BOUNDARIES)}")
        if self.chunk_seconds <= 0 or self.prime_tokens < 0 or self.chunk_batch_size < 1:
            raise ValueError(f"invalid long-form config: {self}")
        if not 0.0 <= self.onset_lead_seconds <= PAUSE_WIDTH_SECONDS:
            raise ValueError(
                f"longform onset_lead_seconds={self.onset_lead_seconds} must lie in [0, {PAUSE_WIDTH_SECONDS}] "
                "(within the pause that precedes the onset)"
            )
        if self.pause_search_seconds <= 0:
            raise ValueError(f"longform pause_search_seconds={self.pause_search_seconds} must be positive")
        if self.pre_encode_seconds is not None and self.pre_encode_seconds <= 0:
            raise ValueError(f"pre_encode_seconds must be positive or None, got {self.pre_encode_seconds}")
        if self.split_margin is not None and self.split_margin < 0:
            raise ValueError(f"longform split_margin={self.split_margin} must be >= 0 (nats) or null (off)")
        if self.split_min_seconds < 2 * SPLIT_SIDE_SECONDS:
            raise ValueError(
                f"longform split_min_seconds={self.split_min_seconds} must be >= {2 * SPLIT_SIDE_SECONDS} "
                f"(each half of a split is at least {SPLIT_SIDE_SECONDS} s)"
            )
        if self.split_candidates < 1:
            raise ValueError(f"longform split_candidates={self.split_candidates} must be >= 1")
