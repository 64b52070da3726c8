"""The torch side of the numpy feature extractor: NeMo's preprocessor -> settings (config.json) and arrays.

F: mel features, K: FFT bins (n_fft // 2 + 1), W: window samples.

``feature_spec`` reads a model's ``AudioToMelSpectrogramPreprocessor`` and refuses, by name, every setting that
``features.LogMel`` does not reproduce, so an export never ships a front end that differs from PyTorch's.
Training-only settings (dither, narrow-band augmentation) are left out: inference never applies them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from nemo.collections.asr.parts.preprocessing.features import FilterbankFeatures

__all__ = ["feature_spec"]


def _refuse(name: str, value: object) -> ValueError:
    return ValueError(f"preprocessor.{name}={value!r} is not supported by the ONNX runtime's feature extractor")


def _normalize_type(normalize: object) -> str | None:
    """NeMo's ``normalize``: per_feature and all_features normalize; fixed mean/std is refused; any other string
    (e.g. "NA") and falsy values leave the features as they are, exactly as ``normalize_batch`` falls through."""
    if not normalize:
        return None
    if isinstance(normalize, Mapping) or ("fixed_mean" in normalize and "fixed_std" in normalize):
        raise _refuse("normalize", dict(normalize) if isinstance(normalize, Mapping) else normalize)
    return normalize if normalize in ("per_feature", "all_features") else None


def _log_guard(value: float | str) -> float:
    """'tiny' and 'eps' resolve against float32, the dtype NeMo's features are computed in."""
    if isinstance(value, str):
        if value not in ("tiny", "eps"):
            raise _refuse("log_zero_guard_value", value)
        return float(getattr(np.finfo(np.float32), value))
    return float(value)


def feature_spec(preprocessor: torch.nn.Module) -> tuple[dict, dict[str, np.ndarray]]:
    """``AudioToMelSpectrogramPreprocessor`` -> (JSON-serializable settings, {"window": (W,), "filterbank": (F, K)}).

    The arrays are the module's own buffers (float32), so the numpy side uses the very window and filterbank
    NeMo multiplies by. Raises ValueError naming the first setting the numpy extractor does not reproduce.
    """
    featurizer = getattr(preprocessor, "featurizer", None)
    if type(featurizer) is not FilterbankFeatures:
        raise ValueError(
            f"preprocessor {type(preprocessor).__name__} (featurizer {type(featurizer).__name__}) is not supported by "
            "the ONNX runtime's feature extractor: it reproduces AudioToMelSpectrogramPreprocessor only"
        )
    if featurizer.frame_splicing != 1:
        raise _refuse("frame_splicing", featurizer.frame_splicing)
    if featurizer.exact_pad:
        raise _refuse("exact_pad", featurizer.exact_pad)
    if featurizer.use_grads:  # adds a guard inside the magnitude's square root
        raise _refuse("use_grads", featurizer.use_grads)
    if featurizer.window is None:  # window "none": NeMo's own stft fails on it
        raise _refuse("window", "none")
    if not isinstance(featurizer.pad_to, int):  # "max" fails inside NeMo's own constructor
        raise _refuse("pad_to", featurizer.pad_to)
    # featurizer.dither and featurizer.nb_augmentation_prob act only in training mode: inference ignores them.
    settings = {
        "sample_rate": int(featurizer.sample_rate),
        "n_fft": int(featurizer.n_fft),
        "win_length": int(featurizer.win_length),
        "hop_length": int(featurizer.hop_length),
        "center": True,  # torch.stft(center=True, pad_mode="constant") whenever exact_pad is off
        "exact_pad": False,
        "frame_splicing": 1,
        "preemph": None if featurizer.preemph is None else float(featurizer.preemph),
        "mag_power": float(featurizer.mag_power),
        "features": int(featurizer.nfilt),
        "log": bool(featurizer.log),
        "log_zero_guard_type": str(featurizer.log_zero_guard_type),
        "log_zero_guard_value": _log_guard(featurizer.log_zero_guard_value),
        "normalize": _normalize_type(featurizer.normalize),
        "pad_to": int(featurizer.pad_to),
        "pad_value": float(featurizer.pad_value),
    }
    arrays = {
        "window": featurizer.window.detach().cpu().to(torch.float32).numpy().copy(),
        "filterbank": featurizer.fb.detach().cpu().to(torch.float32).numpy().reshape(settings["features"], -1).copy(),
    }
    return settings, arrays
