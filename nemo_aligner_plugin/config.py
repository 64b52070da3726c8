"""Every option dataclass of the plugin: the one place their defaults live.

The YAMLs in configs/ list the same keys with a comment each; ``from_asr_model`` and the model read their
sections through these classes, so a default changes here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional, Union

from omegaconf import DictConfig, OmegaConf

# Long-form start states (what the prediction network knows at a chunk start): see longform.states.
LONGFORM_MODES = ("prime", "reset_only", "carry_state")
# longform.enabled: true (audio longer than chunk_seconds is chunked), false (never), "auto" (audio longer than
# the model was trained on: train_durations.max_seconds, else train_ds.max_duration, else chunk_seconds)
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


# ---------------------------------------------------------------------------------------------- model sections
@dataclass
class LossConfig:
    label_smoothing: float = 0.1  # paper: 0.1 in every run
    smoothing_mode: str = "batch_prior"  # batch_prior (the batch's token unigram prior, paper) | uniform
    prior_include_eos: bool = False  # count EOS in the prior (paper: word-pieces only)
    reduction: str = "mean_token"  # mean_token | mean_utterance | sum


@dataclass
class AuxCTCConfig:
    weight: float = 0.0  # > 0 adds weight * CTC loss from a linear head on an encoder layer
    layer: int = -1  # -1: the final encoder output; k: output of encoder.layers[k]


@dataclass
class AuxAlignerConfig:
    weight: float = 0.0  # > 0 adds weight * the aligner loss on an intermediate layer's frames
    layer: Optional[int] = None  # k: output of encoder.layers[k]; required when weight > 0


@dataclass
class NonARAuxConfig:
    weight: float = 0.0  # > 0 adds weight * the per-frame classifier loss (its head can decode: nonar_greedy)


@dataclass
class ChunkwiseConfig:
    """The Chunkwise Aligner's chunking (``aligner_type: chunkwise``, docs/streaming.md); it also sets the encoder's
    cache-aware attention (``att_context_size``, ``chunked_limited``, causal convolutions and subsampling)."""

    chunk_size: int = 16  # encoder frames per chunk: the attention chunk and the unit labels are read in
    left_chunks: int = 4  # chunks of left context each chunk's self-attention sees (bounds the streaming caches)
    max_labels_per_chunk: Optional[int] = None  # labels one chunk can hold (its first frames); None: chunk_size

    def __post_init__(self) -> None:
        if self.chunk_size < 1 or self.left_chunks < 0:
            raise ValueError(
                f"model.chunkwise: chunk_size={self.chunk_size} must be >= 1 and left_chunks={self.left_chunks} >= 0"
            )
        if self.max_labels_per_chunk is not None and not 1 <= self.max_labels_per_chunk <= self.chunk_size:
            raise ValueError(
                f"model.chunkwise.max_labels_per_chunk={self.max_labels_per_chunk}: must be in 1..chunk_size "
                f"({self.chunk_size}), or null for chunk_size"
            )

    @property
    def labels_per_chunk(self) -> int:
        return self.chunk_size if self.max_labels_per_chunk is None else self.max_labels_per_chunk


@dataclass
class ConcatUtterancesConfig:
    fraction: float = 0.15  # expected share of each batch's utterances joined into longer rows (paper: ~15%)
    gap_seconds: Any = 0.1  # silence between joined utterances: seconds, or [min, max] drawn per join
    mode: str = "in_batch"  # in_batch: joined rows in every batch | whole_batches: all rows of that share of batches
    max_joined: int = 2  # utterances per joined row: 2 = pairs (paper); k > 2 draws 2..k
    start_step: int = 0  # join only from this training step on

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"model.concat_utterances.fraction={self.fraction}: expected a share in [0, 1]")
        if self.mode not in ("in_batch", "whole_batches"):
            raise ValueError(f"model.concat_utterances.mode={self.mode!r}: expected in_batch or whole_batches")
        if self.max_joined < 2:
            raise ValueError(f"model.concat_utterances.max_joined={self.max_joined}: a joined row holds at least 2")
        if self.start_step < 0:
            raise ValueError(f"model.concat_utterances.start_step={self.start_step}: expected a step >= 0")
        seconds_range(self.gap_seconds, "model.concat_utterances.gap_seconds")


@dataclass
class SilencePaddingConfig:
    prob: float = 0.0  # share of training rows given silence at both ends, after joining (0: off)
    min_seconds: float = 0.0  # shortest pad at each end
    max_seconds: float = 0.5  # longest pad at each end
    start_step: int = 0  # pad only from this training step on
    noise: float = 0.0  # share of padded rows padded with noise at the row's own floor instead of zeros

    def __post_init__(self) -> None:
        if not 0.0 <= self.prob <= 1.0:
            raise ValueError(f"model.silence_padding.prob={self.prob}: expected a probability in [0, 1]")
        if not 0.0 <= self.noise <= 1.0:
            raise ValueError(f"model.silence_padding.noise={self.noise}: expected a share in [0, 1]")
        if self.start_step < 0:
            raise ValueError(f"model.silence_padding.start_step={self.start_step}: expected a step >= 0")
        seconds_range([self.min_seconds, self.max_seconds], "model.silence_padding.min/max_seconds")


NONSPEECH_TRAIN_KINDS = ("silence", "white", "pink", "brown", "tone")


@dataclass
class NonSpeechConfig:
    fraction: float = 0.0  # share of each training batch's rows replaced by non-speech with an empty target (0: off)
    kinds: list[str] = field(default_factory=lambda: list(NONSPEECH_TRAIN_KINDS))  # generated kinds, drawn uniformly
    level_dbfs: list[float] = field(default_factory=lambda: [-70.0, -30.0])  # [min, max] RMS level of noise and tones
    min_seconds: float = 0.5  # shortest non-speech row
    max_seconds: Optional[float] = None  # longest non-speech row; null: the batch's longest row (no extra padding)
    manifest_filepath: Optional[str] = None  # a NeMo manifest of your own non-speech audio (noise, music, hold tones)
    manifest_prob: float = 0.5  # with a manifest: share of the non-speech rows cut from its files (rest generated)
    seed: int = 0  # rows drawn from (seed, step, rank): the same on a rerun or resume, different on each DDP rank
    start_step: int = 0  # replace rows only from this training step on

    def __post_init__(self) -> None:
        from nemo_aligner_plugin.nonspeech import KINDS  # lazy: nonspeech imports this module

        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"model.nonspeech.fraction={self.fraction}: expected a share in [0, 1]")
        self.kinds = list(self.kinds)
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown or not self.kinds:
            raise ValueError(f"model.nonspeech.kinds={self.kinds}: expected a non-empty list from {list(KINDS)}")
        self.level_dbfs = [float(x) for x in self.level_dbfs]
        if len(self.level_dbfs) != 2 or not self.level_dbfs[0] <= self.level_dbfs[1] <= 0:
            raise ValueError(f"model.nonspeech.level_dbfs={self.level_dbfs}: expected [min, max] with min <= max <= 0")
        high = self.max_seconds if self.max_seconds is not None else self.min_seconds
        seconds_range([self.min_seconds, high], "model.nonspeech.min/max_seconds")
        if not 0.0 <= self.manifest_prob <= 1.0:
            raise ValueError(f"model.nonspeech.manifest_prob={self.manifest_prob}: expected a share in [0, 1]")
        if self.start_step < 0:
            raise ValueError(f"model.nonspeech.start_step={self.start_step}: expected a step >= 0")


@dataclass
class TrainDurations:
    """What the model was trained on, written into ``model.train_durations`` when training ends."""

    p50_seconds: float  # median training utterance
    p95_seconds: float
    p99_seconds: float
    max_seconds: float  # the longest: long-form `enabled: auto` routes audio longer than this
    num_utterances: int  # utterances the statistics cover


@dataclass
class HeadFlags:
    """The top-level flags of an aligner's ``model`` section."""

    # ar: prediction network + joint (the paper's Aligner) | nonar: per-frame classifier | chunkwise: the streaming
    # Chunkwise Aligner (model.chunkwise)
    aligner_type: str = "ar"
    reverse_audio: bool = False  # the paper's reverse-alignment experiment: audio reversed within its length
    log_prediction: bool = True  # log one reference/prediction pair at validation
    compute_eval_loss: bool = True  # compute val_loss in validation
    use_cer: bool = False  # report CER instead of WER as val_wer

    def __post_init__(self) -> None:
        if self.aligner_type not in ALIGNER_TYPES:
            raise ValueError(f"model.aligner_type must be one of {ALIGNER_TYPES}, got {self.aligner_type!r}")

    @classmethod
    def read(cls, model_cfg: Mapping) -> HeadFlags:
        """The flags as given in ``model_cfg``, defaults for the missing ones."""
        return cls(**{f.name: model_cfg[f.name] for f in fields(cls) if model_cfg.get(f.name) is not None})


@dataclass
class HeadOptions:
    """The sizes of a fresh prediction network and joint (``from_asr_model``)."""

    pred_hidden: int = 640  # prediction-network (LSTM) size: model_defaults.pred_hidden
    joint_hidden: int = 640  # joint hidden size: model_defaults.joint_hidden
    pred_rnn_layers: int = 1  # LSTM layers of the prediction network
    dropout: float = 0.1  # prediction-network and joint dropout


@dataclass
class FinetuneOptim:
    """AdamW with a short warmup to a quarter of the from-scratch peak, cosine decay."""

    lr: float = 5e-4
    weight_decay: float = 1e-3
    warmup_steps: int = 500
    min_lr: float = 1e-6


ALIGNER_TYPES = ("ar", "nonar", "chunkwise")
# Model sections read through a dataclass: key -> class.
SECTIONS = {
    "loss": LossConfig,
    "aux_ctc": AuxCTCConfig,
    "aux_aligner": AuxAlignerConfig,
    "nonar_aux": NonARAuxConfig,
    "chunkwise": ChunkwiseConfig,
    "concat_utterances": ConcatUtterancesConfig,
    "silence_padding": SilencePaddingConfig,
    "nonspeech": NonSpeechConfig,
    "longform": LongformConfig,
}


def seconds_range(value: Any, field_name: str) -> tuple[float, float]:
    """Seconds, or a [min, max] pair drawn from per use -> (min, max), checked and named in errors."""
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{field_name}={value}: expected seconds >= 0")
        return float(value), float(value)
    bounds = list(value)
    if len(bounds) != 2 or not 0 <= bounds[0] <= bounds[1]:
        raise ValueError(f"{field_name}={bounds}: expected seconds, or [min, max] with 0 <= min <= max")
    return float(bounds[0]), float(bounds[1])


def read_section(model_cfg: Mapping, key: str) -> Any:
    """``model.<key>`` as its dataclass: defaults for missing keys; an unknown key or bad value names the field."""
    cls = SECTIONS[key]
    given = model_cfg.get(key) or {}
    given = OmegaConf.to_container(given, resolve=True) if isinstance(given, DictConfig) else dict(given)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ValueError(f"model.{key} has unknown key(s) {unknown}; known: {sorted(known)}")
    return cls(**given)


def section_defaults(key: str) -> dict[str, Any]:
    """The defaults of ``model.<key>`` as a plain dict (what the YAMLs list)."""
    return asdict(SECTIONS[key]())


def head_defaults() -> dict[str, Any]:
    """Every aligner-specific section of a ``model`` config, from the dataclasses above (``from_asr_model``)."""
    from nemo_aligner_plugin.decoding.strategies import AlignerDecodingConfig

    head, optim = HeadOptions(), FinetuneOptim()
    return {
        **asdict(HeadFlags()),
        "model_defaults": {"pred_hidden": head.pred_hidden, "joint_hidden": head.joint_hidden},
        "decoder": {
            "_target_": "nemo.collections.asr.modules.RNNTDecoder",
            "normalization_mode": None,
            "random_state_sampling": False,
            "blank_as_pad": True,
            "prednet": {
                "pred_hidden": "${model_defaults.pred_hidden}",
                "pred_rnn_layers": head.pred_rnn_layers,
                "t_max": None,
                "dropout": head.dropout,
            },
        },
        "joint": {
            "_target_": "nemo.collections.asr.modules.RNNTJoint",
            "log_softmax": None,
            "preserve_memory": False,
            "fuse_loss_wer": False,
            "jointnet": {
                "joint_hidden": "${model_defaults.joint_hidden}",
                "activation": "relu",
                "dropout": head.dropout,
            },
        },
        **{key: section_defaults(key) for key in SECTIONS},
        "decoding": OmegaConf.to_container(OmegaConf.structured(AlignerDecodingConfig)),
        "optim": {
            "name": "adamw",
            "lr": optim.lr,
            "betas": [0.9, 0.98],
            "weight_decay": optim.weight_decay,
            "sched": {
                "name": "CosineAnnealing",
                "warmup_steps": optim.warmup_steps,
                "warmup_ratio": None,
                "min_lr": optim.min_lr,
            },
        },
    }
