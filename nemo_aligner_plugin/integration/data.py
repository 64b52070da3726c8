"""Data loaders: NeMo's own BPE datasets (legacy manifests, tarred, Lhotse) with no changes.

Batches are ``(audio, audio_lens, tokens, token_lens)``; token padding is 0, a real token id, so
everything downstream masks by length.

Utterances with more tokens+1 than encoder frames cannot be aligned. The loss skips and counts
them; to keep them out of training altogether use Lhotse's token-rate filter, e.g. with 40 ms
frames (25 frames/s) ``max_tps: 20`` leaves a safety margin for EOS and subsampling edge frames.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from nemo.collections.asr.data import audio_to_text_dataset
from nemo.collections.asr.data.audio_to_text_dali import AudioToBPEDALIDataset
from nemo.collections.asr.data.audio_to_text_lhotse import LhotseSpeechToTextBpeDataset
from nemo.collections.common.data.lhotse.dataloader import get_lhotse_dataloader_from_config
from omegaconf import DictConfig

from nemo_aligner_plugin import checks
from nemo_aligner_plugin.config import TrainDurations

__all__ = ["build_dataloader", "train_durations"]


def build_dataloader(
    config: DictConfig,
    tokenizer: Any,
    *,
    global_rank: int,
    world_size: int,
    local_rank: int,
    preprocessor_cfg: Optional[DictConfig] = None,
) -> Optional[torch.utils.data.DataLoader]:
    """Build a train/validation/test/transcribe loader from a NeMo ``*_ds`` config."""
    checks.mono_audio_config(config)
    if config.get("use_lhotse"):
        dataset = LhotseSpeechToTextBpeDataset(tokenizer=tokenizer, return_cuts=config.get("do_transcribe", False))
        return get_lhotse_dataloader_from_config(
            config,
            global_rank=global_rank,
            world_size=world_size,
            dataset=checks.downmix_lhotse_dataset(dataset),
            tokenizer=tokenizer,
        )

    dataset = audio_to_text_dataset.get_audio_to_text_bpe_dataset_from_config(
        config=config,
        local_rank=local_rank,
        global_rank=global_rank,
        world_size=world_size,
        tokenizer=tokenizer,
        preprocessor_cfg=preprocessor_cfg,
    )
    if dataset is None or isinstance(dataset, AudioToBPEDALIDataset):  # DALI is its own loader
        return dataset

    shuffle = config.get("shuffle", False) and not isinstance(dataset, torch.utils.data.IterableDataset)
    collate_fn = dataset.collate_fn if hasattr(dataset, "collate_fn") else dataset.datasets[0].collate_fn
    return torch.utils.data.DataLoader(
        dataset=dataset,
        batch_size=config["batch_size"],
        collate_fn=collate_fn,
        drop_last=config.get("drop_last", False),
        shuffle=shuffle,
        num_workers=config.get("num_workers", 0),
        pin_memory=config.get("pin_memory", False),
    )


def train_durations(train_ds: Optional[DictConfig]) -> Optional[TrainDurations]:
    """Length statistics of the training utterances a ``train_ds`` config admits (its min/max_duration filter).

    Read from the plain manifests (tarred and sharded inputs list the same manifests); None when none can be read.
    """
    if not train_ds:
        return None
    low, high = train_ds.get("min_duration") or 0.0, train_ds.get("max_duration") or float("inf")
    seconds = []
    for path in checks.manifest_paths(train_ds.get("manifest_filepath")):
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                duration = float(json.loads(line)["duration"])
            except (ValueError, KeyError, TypeError):
                continue
            if low <= duration <= high:
                seconds.append(duration)
    if not seconds:
        return None
    p50, p95, p99 = np.percentile(seconds, [50, 95, 99]).tolist()
    return TrainDurations(p50, p95, p99, max(seconds), len(seconds))
