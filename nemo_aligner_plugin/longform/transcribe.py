"""``transcribe_longform``: audio files or arrays -> chunked encoding -> chunked decoding -> text.

B: utterances of a batch, S: audio samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Optional

import torch
from nemo.collections.asr.parts.utils.rnnt_utils import Hypothesis
from tqdm.auto import tqdm

from nemo_aligner_plugin.audio import AudioInput, load_audio
from nemo_aligner_plugin.config import LongformConfig
from nemo_aligner_plugin.longform.decode import decode_chunked_batch
from nemo_aligner_plugin.longform.encoding import encode_chunked

__all__ = ["longform_config", "model_longform_config", "transcribe_longform"]


def longform_config(section: Optional[Mapping]) -> Optional[LongformConfig]:
    """A ``longform:`` config section -> LongformConfig (checked), or None when absent or ``enabled: false``."""
    if not section:
        return None
    cfg = LongformConfig(**dict(section))
    return None if cfg.enabled is False else cfg


def model_longform_config(model) -> LongformConfig:
    """The model's own long-form settings (its ``longform`` section, whatever ``enabled`` says), else defaults."""
    section = model.cfg.get("longform")
    return LongformConfig(**dict(section)) if section else LongformConfig()


def transcribe_longform(
    model,
    audio: Sequence[AudioInput],
    cfg: Optional[LongformConfig] = None,
    batch_size: int = 1,
    verbose: bool = True,
) -> list[Hypothesis]:
    """Chunked transcription of long audio files or 1-D arrays; ``batch_size`` utterances are decoded together.

    ``cfg`` None: the model's own ``longform`` settings (tuned for it where it was trained with them). Decoding is
    the model's ``decoding.strategy``; one Hypothesis per item (a beam search's best). ``verbose``: a progress bar
    over batches. Peak memory: the features and subsampled frames of one batch of utterances, plus one group of
    ``cfg.chunk_batch_size`` chunks' Conformer activations, instead of O(T^2) attention over whole files.
    """
    cfg = cfg if cfg is not None else model_longform_config(model)
    sample_rate = int(model.cfg.sample_rate)
    results: list[Hypothesis] = []
    starts = range(0, len(audio), batch_size)
    for start in tqdm(starts, total=len(starts), desc="Long-form", unit="batch", disable=not verbose):
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
