"""Running the training recipe with faults (through fault_recipe.py), for the end-to-end reliability tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fault_helpers import subprocess_env

from conftest import REPO, TINY_ARCH_OVERRIDES

HERE = Path(__file__).resolve().parent
# The recipe shrunk to a model that trains in seconds, deterministic (no dropout, dither, SpecAugment or
# concatenation), with a per-step lr schedule: conftest's tiny architecture plus zero prediction-network
# and joint dropout.
RECIPE_OVERRIDES = [
    *TINY_ARCH_OVERRIDES,
    "model.decoder.prednet.dropout=0.0",
    "model.joint.jointnet.dropout=0.0",
    "model.concat_utterances.fraction=0",
    "model.optim.lr=0.05",  # NoamAnnealing: peak 0.05 / sqrt(64 * 5) = 2.8e-3
    "model.optim.weight_decay=0.0",
    "model.optim.sched.warmup_steps=5",
    "model.optim.sched.min_lr=1e-5",
    "model.train_ds.batch_size=2",
    "model.train_ds.shuffle=false",
    "model.train_ds.num_workers=0",
    "model.validation_ds.num_workers=0",
    "model.test_ds.num_workers=0",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "trainer.log_every_n_steps=1",
    "trainer.check_val_every_n_epoch=1",
    "exp_manager.create_tensorboard_logger=false",
    "+seed=0",
]


def run_recipe(
    exp_dir: Path,
    manifest: Path,
    tokenizer_dir: Path,
    *overrides: str,
    env: dict | None = None,
    timeout: int = 600,
    prefix: list[str] | None = None,
) -> subprocess.CompletedProcess:
    """recipes/train_aligner.py through tests/reliability/fault_recipe.py (faults from ``env``); not checked."""
    command = [
        *(prefix or []),
        sys.executable,
        str(HERE / "fault_recipe.py"),
        "--config-path=../configs",
        "--config-name=aligner_conformer_bpe",
        f"model.train_ds.manifest_filepath={manifest}",
        f"model.validation_ds.manifest_filepath={manifest}",
        f"model.tokenizer.dir={tokenizer_dir}",
        f"exp_manager.exp_dir={exp_dir}",
        *RECIPE_OVERRIDES,
        *overrides,
    ]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=subprocess_env(env), timeout=timeout)
