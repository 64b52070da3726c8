"""The training loop every recipe shares: seed, Lightning trainer, exp_manager, fit, test, final .nemo, summary.

Recipes differ only in how they build the model (from a YAML, or from a pretrained NeMo model) and in
extra callbacks, so that is all they pass in.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import lightning.pytorch as pl
from nemo.utils import logging
from nemo.utils.exp_manager import exp_manager
from nemo.utils.trainer_utils import resolve_trainer_cfg
from omegaconf import DictConfig, OmegaConf

from nemo_aligner_plugin import checks

__all__ = ["run_training"]


def run_training(
    cfg: DictConfig,
    build_model: Callable[[pl.Trainer, Optional[Path]], Any],
    callbacks: Optional[list[pl.Callback]] = None,
    summary_extra: Optional[dict[str, Any]] = None,
) -> Optional[dict[str, Any]]:
    """Train ``build_model(trainer, log_dir)`` as configured; returns the summary written next to the .nemo."""
    logging.info(f"Hydra config:\n{OmegaConf.to_yaml(cfg)}")
    checks.check_training_config(cfg)
    checks.check_dataset_manifests(cfg.model)  # before anything reads or writes them: file:line errors, nothing written
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    trainer = pl.Trainer(**resolve_trainer_cfg(cfg.trainer), callbacks=callbacks or None)
    log_dir = exp_manager(trainer, cfg.get("exp_manager", None))
    log_dir = Path(log_dir) if log_dir is not None else None
    model = build_model(trainer, log_dir)
    checks.check_dataset_manifests(model.cfg, tokenizer=model.tokenizer)  # again with the tokenizer: unknown chars
    start = time.perf_counter()
    trainer.fit(model)
    train_seconds = time.perf_counter() - start
    if cfg.model.get("test_ds") and cfg.model.test_ds.get("manifest_filepath"):
        if model.prepare_test(trainer):
            trainer.test(model)
    if log_dir is None or not cfg.get("save_final_nemo", True):
        return None
    final = log_dir / f"{cfg.name}.nemo"
    model.save_to(str(final))
    logging.info(f"Saved final model to {final}")
    max_steps = cfg.trainer.get("max_steps", -1)
    summary = {
        "nemo_path": str(final),
        "global_step": trainer.global_step,
        "epochs": trainer.current_epoch,
        "minutes": train_seconds / 60,
        "stop_reason": "max_steps" if max_steps > 0 and trainer.global_step >= max_steps else "max_time/max_epochs",
        # aligner models count these; NeMo baselines (recipes/train_baseline.py) do not
        "skipped_unalignable_utterances": getattr(getattr(model, "skipped_train", None), "total", None),
        "nonfinite_steps_skipped": getattr(getattr(model, "nonfinite_guard", None), "num_skipped", None),
        **(summary_extra or {}),
    }
    (log_dir / "training_summary.json").write_text(json.dumps(summary, indent=2))
    return summary
