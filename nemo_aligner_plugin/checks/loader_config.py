"""Config fixes that keep NeMo's loaders and Lightning's trainer from failing deep inside torch or NeMo.

Each fix edits the config in place with a warning that names the key, or refuses with an error that does:
multi-channel audio reaches the model as mono (B, T); CPU runs drop SyncBatchNorm; Lhotse data gets the
sampler and batch size settings it needs.
"""

from __future__ import annotations

from typing import Any

import torch
from nemo.utils import logging
from omegaconf import DictConfig, open_dict

__all__ = ["check_training_config", "downmix_lhotse_dataset", "mono_audio_config"]

DATASET_KEYS = ("train_ds", "validation_ds", "test_ds")
LHOTSE_BATCH_KEYS = ("batch_size", "batch_duration", "bucket_batch_size", "batch_tokens")


def mono_audio_config(config: DictConfig) -> DictConfig:
    """Make a ``*_ds``/transcribe loader config yield mono (B, T) audio (edits ``config`` in place).

    NeMo's legacy datasets keep every channel unless ``channel_selector`` is set, and then collation or the
    model's input type check fails on (B, T, C): default it to ``'average'``. Lhotse's ``channel_selector``
    takes an int or the name of a cut field, so there ``'average'`` means "none": ``downmix_lhotse_dataset``
    averages instead.
    """
    selector = config.get("channel_selector")
    with open_dict(config):
        if config.get("use_lhotse"):
            if selector == "average":
                config.channel_selector = None
        elif selector is None:
            config.channel_selector = "average"
    return config


def downmix_lhotse_dataset(dataset: Any) -> Any:
    """Average multi-channel audio to mono in every Lhotse batch. Lhotse does it only for batches that mix mono
    and multi-channel cuts; a batch of multi-channel cuts alone comes out (B, C, T) and fails in the model."""
    load_audio = getattr(dataset, "load_audio", None)
    if load_audio is not None and hasattr(load_audio, "mono_downmix"):
        load_audio.mono_downmix = True
    return dataset


def _datasets_with_lhotse(model_cfg: DictConfig) -> list[str]:
    return [key for key in DATASET_KEYS if (model_cfg.get(key) or {}).get("use_lhotse")]


def check_training_config(cfg: DictConfig) -> list[str]:
    """Fix (in place, with a warning) or refuse, naming the key, settings that fail deep in torch/Lightning/NeMo.

    - ``trainer.sync_batchnorm`` on CPU: torch's SyncBatchNorm needs GPUs ("SyncBatchNorm layers only work with
      GPU modules"). Set to false; each CPU process then normalizes over its own batch.
    - Lhotse data with ``trainer.use_distributed_sampler: true``: Lhotse shards by rank itself, and Lightning
      fails on its sampler. Set to false.
    - Lhotse data without ``batch_size``/``batch_duration``/``bucket_batch_size``/``batch_tokens``: ValueError.
    - ``model.skip_nan_grad: true``: NeMo's NaN-gradient zeroing; the plugin's ``NonFiniteGuard`` already drops
      every such step, so the key is ignored (said once here).
    Returns the warnings.
    """
    warnings = []
    trainer = cfg.get("trainer") or {}
    accelerator = str(trainer.get("accelerator", "auto")).lower()
    on_cpu = accelerator == "cpu" or (accelerator in ("auto", "none") and not torch.cuda.is_available())
    with open_dict(cfg):
        if on_cpu and trainer.get("sync_batchnorm"):
            cfg.trainer.sync_batchnorm = False
            warnings.append(
                "trainer.sync_batchnorm=true needs GPUs (torch: 'SyncBatchNorm layers only work with GPU "
                "modules'); set to false for this CPU run: each process normalizes over its own batch."
            )
        lhotse = _datasets_with_lhotse(cfg.model)
        if lhotse and trainer.get("use_distributed_sampler", True):
            cfg.trainer.use_distributed_sampler = False
            warnings.append(
                f"model.{lhotse[0]}.use_lhotse=true needs trainer.use_distributed_sampler=false (Lhotse shards the "
                "data by rank itself); set to false."
            )
    if cfg.model.get("skip_nan_grad"):
        warnings.append(
            "model.skip_nan_grad=true is ignored: the plugin drops every optimizer step with a NaN/inf loss or "
            "gradient on all ranks and counts it in train_nonfinite_steps (docs/troubleshooting.md)."
        )
    for key in lhotse:
        ds = cfg.model[key]
        if ds.get("manifest_filepath") is None and ds.get("input_cfg") is None and ds.get("shar_path") is None:
            continue  # not used (e.g. validation_ds without data)
        if not any(ds.get(k) for k in LHOTSE_BATCH_KEYS):
            raise ValueError(
                f"model.{key}: use_lhotse=true needs a batch size: set model.{key}.batch_size (utterances per "
                f"batch) or model.{key}.batch_duration (seconds of audio per batch)."
            )
    for message in warnings:
        logging.warning(message)
    return warnings
