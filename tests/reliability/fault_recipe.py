"""Run recipes/train_aligner.py as a user does, with one fault injected (for the reliability tests).

    python tests/reliability/fault_recipe.py --config-path=../configs <the recipe's hydra overrides...>

Faults come from environment variables, which Lightning's DDP child processes inherit (they re-run this
script with the same arguments):

- ``FAULT_KILL_AT_STEP=N``: SIGKILL this process once ``global_step`` reaches N (a crash, an OOM kill).
- ``FAULT_KILL_IN_NEMO_SAVE=K``: SIGKILL in the middle of writing the K-th ``.nemo`` (1-based): the file at
  the path being written is left truncated, as a kill during NeMo's ``save_to`` leaves it.
- ``FAULT_NAN_AT_STEPS=N,M`` (+ ``FAULT_NAN_RANK=r``, default every rank): the batch audio at those steps
  becomes NaN before the training step, as a float WAV with NaN samples makes it.
- ``FAULT_FILL_DISK_AT_STEP=N``: after step N, fill the experiment directory's file system up to
  ``FAULT_FILL_LEAVE_BYTES`` (default 64 KiB) free, so the next checkpoint write meets ENOSPC. Refused unless
  that file system is smaller than 256 MiB (a test tmpfs): it can never fill a real disk.
- ``FAULT_RECORD=run.json``: at the end write the trainer state (step, lr, optimizer step count, weight
  checksums, per-step loss / lr / token lengths / logged counters) and the flat weights to ``run.pt``; under
  DDP one pair per rank (``run.rank<r>.json``).
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "train_aligner.py"
SMALL_FS_BYTES = 256 * 2**20
LOGGED = ("train_loss", "train_skipped_utts", "train_nonfinite_steps")


def _steps(name: str) -> set[int]:
    return {int(s) for s in os.environ.get(name, "").split(",") if s.strip()}


def fill_file_system(directory: Path, leave_bytes: int) -> Path:
    """Write a filler file so that only ``leave_bytes`` stay free on ``directory``'s (small) file system."""
    stat = os.statvfs(directory)
    if stat.f_blocks * stat.f_frsize > SMALL_FS_BYTES:
        raise RuntimeError(f"refusing to fill {directory}: its file system is not a small test tmpfs")
    filler = directory / "filler.bin"
    with filler.open("wb") as f:
        f.write(b"\0" * max(stat.f_bavail * stat.f_frsize - leave_bytes, 0))
    return filler


class FaultInjector(pl.Callback):
    def __init__(self) -> None:
        self.kill_at = int(os.environ.get("FAULT_KILL_AT_STEP", "-1"))
        self.nan_steps = _steps("FAULT_NAN_AT_STEPS")
        self.nan_rank = int(os.environ.get("FAULT_NAN_RANK", "-1"))
        self.fill_at = int(os.environ.get("FAULT_FILL_DISK_AT_STEP", "-1"))
        self.record = os.environ.get("FAULT_RECORD")
        self.steps: dict[int, dict] = {}  # global step of the update -> what the step saw and logged

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step in self.nan_steps and self.nan_rank in (-1, trainer.global_rank):
            batch[0].fill_(float("nan"))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step - 1
        self.steps[step] = {
            "loss": float(outputs["loss"]) if isinstance(outputs, dict) else None,
            "lr": trainer.optimizers[0].param_groups[0]["lr"],
            "token_lens": batch[3].tolist(),
            "epoch": trainer.current_epoch,
            "batch_idx": batch_idx,
            **{k: float(v) for k, v in trainer.callback_metrics.items() if k in LOGGED},
        }
        if self.kill_at >= 0 and trainer.global_step >= self.kill_at:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        if self.fill_at >= 0 and trainer.global_step == self.fill_at and trainer.is_global_zero:
            leave = int(os.environ.get("FAULT_FILL_LEAVE_BYTES", 65536))
            fill_file_system(Path(trainer.log_dir or trainer.default_root_dir), leave)
            self.fill_at = -1

    def on_train_end(self, trainer, pl_module):
        if not self.record:
            return
        optimizer = trainer.optimizers[0]
        state = next(iter(optimizer.state.values()), {})
        weights = torch.cat([p.detach().reshape(-1).double() for p in pl_module.parameters()])
        record = Path(self.record)
        if trainer.world_size > 1:
            record = record.with_suffix(f".rank{trainer.global_rank}.json")
        torch.save(weights, record.with_suffix(".pt"))
        guard = getattr(pl_module, "nonfinite_guard", None)
        summary = {
            "global_step": trainer.global_step,
            "lr": optimizer.param_groups[0]["lr"],
            "optimizer_step": float(state.get("step", 0)),
            "weights_sum": float(weights.sum()),
            "weights_finite": bool(torch.isfinite(weights).all()),
            "nonfinite_steps": guard.num_skipped if guard is not None else None,
            "skipped_utts_total": pl_module.skipped_train.total,
            "world_size": trainer.world_size,
            "steps": self.steps,
        }
        record.write_text(json.dumps(summary))


_trainer_init = pl.Trainer.__init__


def _trainer_init_with_faults(self, *args, callbacks=None, **kwargs):
    callbacks = list(callbacks or []) + [FaultInjector()]
    sys.argv[0] = __file__  # runpy set it to the recipe: make Lightning's DDP children re-run this wrapper
    _trainer_init(self, *args, callbacks=callbacks, **kwargs)


def _kill_in_nemo_save(kill_at: int) -> None:
    from nemo.core.connectors.save_restore_connector import SaveRestoreConnector

    make_nemo_file = SaveRestoreConnector._make_nemo_file_from_folder
    calls = []

    def make_nemo_file_then_die(filename, source_dir):
        make_nemo_file(filename, source_dir)
        calls.append(filename)
        if len(calls) == kill_at:
            os.truncate(filename, os.path.getsize(filename) // 2)
            os.kill(os.getpid(), signal.SIGKILL)

    SaveRestoreConnector._make_nemo_file_from_folder = staticmethod(make_nemo_file_then_die)


if __name__ == "__main__":
    pl.Trainer.__init__ = _trainer_init_with_faults
    if os.environ.get("FAULT_KILL_IN_NEMO_SAVE"):
        _kill_in_nemo_save(int(os.environ["FAULT_KILL_IN_NEMO_SAVE"]))
    runpy.run_path(str(RECIPE), run_name="__main__")
