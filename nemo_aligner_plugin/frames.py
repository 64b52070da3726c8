"""Seconds per frame, the one place the plugin turns seconds into frames and back.

Two frame units run through the plugin: feature frames (the preprocessor's hop, ``window_stride``, 10 ms) and
encoder frames (after the conv subsampling: ``subsampling_factor`` feature frames, 40 ms). Names say which:
``_feat_frames`` and ``_frames``.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["feature_frame_seconds", "encoder_frame_seconds", "seconds_to_frames", "seconds_to_feat_frames"]

# NeMo's defaults where a config leaves the keys out (AudioToMelSpectrogramPreprocessor, ConformerEncoder).
_DEFAULT_WINDOW_STRIDE = 0.01
_DEFAULT_SUBSAMPLING_FACTOR = 4


def _cfg(model_or_cfg: Any) -> Any:
    return model_or_cfg.cfg if isinstance(model_or_cfg, torch.nn.Module) else model_or_cfg


def feature_frame_seconds(model_or_cfg: Any) -> float:
    """Seconds per feature frame (the preprocessor's hop) of a model or its config."""
    return float(_cfg(model_or_cfg).preprocessor.get("window_stride", _DEFAULT_WINDOW_STRIDE))


def encoder_frame_seconds(model_or_cfg: Any) -> float:
    """Seconds per encoder frame: subsampling factor x feature hop (NeMo's timestamp convention, same float)."""
    if isinstance(model_or_cfg, torch.nn.Module):
        factor = model_or_cfg.encoder.subsampling_factor
    else:
        factor = model_or_cfg.encoder.get("subsampling_factor", _DEFAULT_SUBSAMPLING_FACTOR)
    return float(factor) * feature_frame_seconds(model_or_cfg)


def seconds_to_frames(model_or_cfg: Any, seconds: float) -> int:
    """Encoder frames in ``seconds``, at least one (10 ms hop x4 -> 25 frames per second)."""
    return max(1, round(seconds / encoder_frame_seconds(model_or_cfg)))


def seconds_to_feat_frames(model_or_cfg: Any, seconds: float) -> int:
    """Feature frames in ``seconds`` (rounded; 0 for 0 s)."""
    return round(seconds / feature_frame_seconds(model_or_cfg))
