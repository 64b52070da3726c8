"""Which audio ``transcribe()`` sends through long-form, and the one warning where over-length audio cannot go.

``longform.enabled``: true routes audio longer than ``chunk_seconds``; "auto" (the default) audio longer than the
model's trained length (``trained_seconds``); false never, but warns once per model when audio is longer than
the trained length. Audio that must take the plain path (manifests, ``timestamps=True``, ``override_config``,
channel selection, augmentation) gets the same single warning when it is too long.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Optional

import numpy as np
import torch
from nemo.collections.asr.parts.utils.rnnt_utils import Hypothesis
from nemo.utils import logging

from nemo_aligner_plugin.audio import AudioInput, audio_seconds
from nemo_aligner_plugin.config import LongformConfig
from nemo_aligner_plugin.decoding import strategy_options
from nemo_aligner_plugin.longform.transcribe import longform_config, model_longform_config, transcribe_longform

__all__ = ["routable_audio", "trained_seconds", "routing_seconds", "longform_items", "transcribe_routed"]

_WARNED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> warning kinds already given
_ENABLE_HINT = (
    "Enable long-form with model.cfg.longform.enabled = True (Python) or longform.enabled=true "
    "(recipes/transcribe_aligner.py); docs/longform.md"
)


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


def trained_seconds(model) -> tuple[Optional[float], str]:
    """The longest audio the model was trained on, and where that number comes from: its longest training
    utterance (``train_durations.max_seconds``, written when training starts), else ``train_ds.max_duration``.
    Not a percentile: on the demo's dev split, routing the 1% of utterances above the 99th percentile through
    long-form cost 1.5 WER points (docs/results/2026-12-04-reshape-demo.md)."""
    durations = model.cfg.get("train_durations") or {}
    if durations.get("max_seconds"):
        return float(durations["max_seconds"]), "train_durations.max_seconds"
    max_duration = (model.cfg.get("train_ds") or {}).get("max_duration")
    if max_duration:
        return float(max_duration), "train_ds.max_duration"
    return None, ""


def routing_seconds(model, cfg: Optional[LongformConfig]) -> Optional[float]:
    """Audio longer than this goes through long-form with ``cfg``; None: none does (off)."""
    if cfg is None or cfg.enabled is False:
        return None
    if cfg.enabled == "auto":
        return trained_seconds(model)[0] or cfg.chunk_seconds
    return cfg.chunk_seconds


def _name(item: AudioInput, index: int) -> str:
    return item if isinstance(item, str) else f"audio[{index}]"


def _warn_once(model, kind: str, message: str) -> None:
    kinds = _WARNED.setdefault(model, set())
    if kind not in kinds:
        kinds.add(kind)
        logging.warning(message)


def _manifest_lengths(path: str) -> list[tuple[str, float]]:
    """(audio path, duration) of each manifest line that states one; unreadable lines and files are left to the
    input checks, which name them."""
    lengths = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                    lengths.append((str(row["audio_filepath"]), float(row["duration"])))
                except (ValueError, KeyError, TypeError):
                    continue
    except (OSError, UnicodeDecodeError):
        return []
    return lengths


def _seconds_or_none(item: AudioInput, sample_rate: int) -> Optional[float]:
    try:
        return audio_seconds(item, sample_rate)
    except Exception:  # missing or unreadable: the input checks name it
        return None


def _lengths(audio: Any, sample_rate: int) -> list[tuple[str, float]]:
    """(name, seconds) of what ``transcribe()`` was given, as far as it can be known cheaply (not DataLoaders)."""
    items = routable_audio(audio)
    if items is not None:
        seconds = [_seconds_or_none(item, sample_rate) for item in items]
        return [(_name(item, i), s) for i, (item, s) in enumerate(zip(items, seconds, strict=True)) if s is not None]
    manifests = [audio] if isinstance(audio, str) else audio if isinstance(audio, (list, tuple)) else []
    return [
        length
        for path in manifests
        if isinstance(path, str) and path.endswith((".json", ".jsonl"))
        for length in _manifest_lengths(path)
    ]


def _warn_too_long(model, audio: Any, kind: str, why: str) -> None:
    """One warning per model and ``kind`` naming the first item longer than the trained length."""
    if kind in _WARNED.get(model, ()):
        return
    limit, source = trained_seconds(model)
    if limit is None:
        limit, source = model_longform_config(model).chunk_seconds, "longform.chunk_seconds"
    for name, seconds in _lengths(audio, int(model.cfg.sample_rate)):
        if seconds > limit:
            _warn_once(
                model,
                kind,
                f"{name} is {seconds:.1f} s, longer than the {limit:.1f} s this model was trained on ({source}): "
                f"an aligner reads such audio badly in one piece, and {why}.",
            )
            return


def longform_items(
    model,
    audio: Any,
    *,
    override_config: Any = None,
    channel_selector: Any = None,
    augmentor: Any = None,
    timestamps: bool = False,
) -> Optional[list]:
    """The ``transcribe()`` input as a list for ``transcribe_routed``, or None: the plain path takes it all.

    None when long-form is off (``enabled: false`` or no ``longform`` section), or the call needs the plain path;
    then over-length audio gets one warning per model saying why it is read in one piece.
    """
    reasons = [
        (override_config is not None, "override_config"),
        (channel_selector is not None, "channel_selector"),
        (augmentor is not None, "augmentor"),
        (bool(timestamps), "timestamps=True (attention timestamps)"),
    ]
    forced = [name for flag, name in reasons if flag]
    cfg = longform_config(model.cfg.get("longform"))
    if cfg is None:
        _warn_too_long(model, audio, "off", f"long-form is off (longform.enabled=false). {_ENABLE_HINT}")
        return None
    items = None if forced else routable_audio(audio)
    if items is None:
        what = ", ".join(forced) if forced else "manifests and DataLoaders"
        why = f"{what} keep it on the plain path; long-form takes audio files or 1-D arrays"
        _warn_too_long(model, audio, "plain", why)
    return items


def _returns_nbest(model) -> bool:
    """Whether the model's decoding returns N-best lists (``return_best_hypothesis=false``) instead of one best."""
    return not getattr(strategy_options(model.cfg.decoding), "return_best_hypothesis", True)


def transcribe_routed(
    model,
    audio: Sequence[AudioInput],
    cfg: Optional[LongformConfig],
    plain_transcribe: Callable[[list], list],
    batch_size: int = 1,
    verbose: bool = True,
) -> list:
    """Items longer than ``routing_seconds`` go to ``transcribe_longform``, the rest to ``plain_transcribe``; order
    kept. ``cfg`` None: the model's own ``longform`` settings. Where the model's decoding returns N-best lists, a
    long-form item comes back as a one-entry list (its best hypothesis), like the plain items."""
    cfg = cfg if cfg is not None else model_longform_config(model)
    limit = routing_seconds(model, cfg)
    sample_rate = int(model.cfg.sample_rate)
    long_items = set()
    if limit is not None:
        long_items = {i for i, item in enumerate(audio) if audio_seconds(item, sample_rate) > limit}
    short_items = [i for i in range(len(audio)) if i not in long_items]
    results: list = [None] * len(audio)
    if short_items:
        for i, hyp in zip(short_items, plain_transcribe([audio[i] for i in short_items]), strict=True):
            results[i] = hyp
    if long_items:
        order = sorted(long_items)
        hyps: list[Hypothesis] = transcribe_longform(
            model, [audio[i] for i in order], cfg, batch_size=batch_size, verbose=verbose
        )
        nbest = _returns_nbest(model)
        for i, hyp in zip(order, hyps, strict=True):
            results[i] = [hyp] if nbest else hyp
    return results
