"""Seconds per frame, the one place the plugin turns seconds into frames and back.

Two frame units run through the plugin: feature frames (the preprocessor's hop, ``window_stride``, 10 ms) and
encoder frames (after the conv subsampling: ``subsampling_factor`` feature frames, 40 ms). Names say which:
``_feat_frames`` and ``_frames``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

__all__ = [
    "feature_frame_seconds",
    "encoder_frame_seconds",
    "attention_chunk_seconds",
    "seconds_to_frames",
    "seconds_to_feat_frames",
]

# NeMo's defaults where a config leaves the keys out (AudioToMelSpectrogramPreprocessor, ConformerEncoder).
_DEFAULT_WINDOW_STRIDE = 0.01
_DEFAULT_SUBSAMPLING_FACTOR = 4


def _is_cfg(model_or_cfg: Any) -> bool:
    return isinstance(model_or_cfg, (DictConfig, Mapping))


def _cfg(model_or_cfg: Any) -> Any:
    return model_or_cfg if _is_cfg(model_or_cfg) else model_or_cfg.cfg


def feature_frame_seconds(model_or_cfg: Any) -> float:
    """Seconds per feature frame (the preprocessor's hop) of a model or its config."""
    return float(_cfg(model_or_cfg)["preprocessor"].get("window_stride", _DEFAULT_WINDOW_STRIDE))


def encoder_frame_seconds(model_or_cfg: Any) -> float:
    """Seconds per encoder frame: subsampling factor x feature hop (NeMo's timestamp convention, same float)."""
    if _is_cfg(model_or_cfg):
        factor = model_or_cfg["encoder"].get("subsampling_factor", _DEFAULT_SUBSAMPLING_FACTOR)
    else:  # a model: its encoder's own factor
        factor = model_or_cfg.encoder.subsampling_factor
    return float(factor) * feature_frame_seconds(model_or_cfg)


def attention_chunk_seconds(model: Any) -> float:
    """Audio per attention chunk of a cache-aware encoder (``chunked_limited``: ``att_context_size[1] + 1`` frames)."""
    return encoder_frame_seconds(model) * (int(model.encoder.att_context_size[1]) + 1)


def seconds_to_frames(model_or_cfg: Any, seconds: float) -> int:
    """Encoder frames in ``seconds``, at least one (10 ms hop x4 -> 25 frames per second)."""
    return max(1, round(seconds / encoder_frame_seconds(model_or_cfg)))


def seconds_to_feat_frames(model_or_cfg: Any, seconds: float) -> int:
    """Feature frames in ``seconds`` (rounded; 0 for 0 s)."""
    return round(seconds / feature_frame_seconds(model_or_cfg))
