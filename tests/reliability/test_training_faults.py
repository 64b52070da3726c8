"""Training faults end to end, through the training recipe: a full disk while saving, a process killed mid-epoch
and resumed, a kill while NeMo writes the .nemo. (The NaN-step guard and the atomic save on their own:
tests/checks/test_nonfinite.py, tests/checks/test_archive.py.)

Measured before the checks:
- SIGKILL mid-epoch + ``exp_manager.resume_if_exists=true``: resumes from the last ``*-last.ckpt`` with the
  optimizer, scheduler, step and weights restored; no step before it is lost. Lightning 2.4 then runs one
  extra batch for the epoch the checkpoint ended (the loader restarts, batch_idx does not); with ``max_steps``
  training it always does. ``save_on_train_epoch_end: true`` + ``max_epochs`` gives a bit-exact resume;
- a kill while NeMo writes ``X.nemo``: NeMo first renames the old one to ``X-v1.nemo``, then writes ``X.nemo`` in
  place, so ``X.nemo`` is left truncated (``tarfile.ReadError: unexpected end of data``, no file name);
- ENOSPC while saving: ``OSError: [Errno 28] No space left on device`` from ``tarfile`` inside
  NeMoModelCheckpoint, ``X.nemo`` truncated, the previous model at ``X-v1.nemo``; the .ckpt files are intact
  (Lightning writes them atomically, NeMo marks unfinished ones) and a resume after freeing space works.
"""

import json
import shutil
import subprocess

import pytest
import torch
from fault_helpers import output
from reliability_helpers import run_recipe

from nemo_aligner_plugin import AlignerEncoderModel, checks

NEMO_NAME = "AlignerEncoder-Conformer-BPE"


# ---------------------------------------------------------------------------------------------- full disk
@pytest.mark.slow
def test_disk_full_during_training_on_a_real_tmpfs(tmp_path, tone_manifest, tokenizer_dir):
    """The recipe with its experiment dir on a 40 MB tmpfs (private mount namespace) that fills up after step 6."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"]).returncode != 0:
        pytest.skip("needs unshare -rm (user + mount namespaces) for a private tmpfs")
    mount, copy = tmp_path / "mnt", tmp_path / "exp"
    mount.mkdir()
    env = {"FAULT_FILL_DISK_AT_STEP": "6"}
    script = f'mount -t tmpfs -o size=40m tmpfs {mount} && "$@"; rc=$?; cp -a {mount}/exp {copy}; exit $rc'
    proc = run_recipe(
        mount / "exp",
        tone_manifest,
        tokenizer_dir,
        "trainer.max_steps=24",
        "exp_manager.resume_if_exists=true",
        "exp_manager.resume_ignore_no_checkpoint=true",
        env=env,
        prefix=["unshare", "-rm", "bash", "-c", script, "_"],
    )
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    final = mount / "exp" / NEMO_NAME / "checkpoints" / f"{NEMO_NAME}.nemo"
    assert f"No space left on device while writing {final}" in text, output(proc)
    checkpoints = copy / NEMO_NAME / "checkpoints"
    assert AlignerEncoderModel.restore_from(str(checkpoints / f"{NEMO_NAME}.nemo"))  # the epoch-0 model, whole
    assert not list(checkpoints.glob("*.partial-*"))
    (copy / NEMO_NAME / "filler.bin").unlink()  # space freed: resume where the last checkpoint left off
    record = tmp_path / "resumed.json"
    proc = run_recipe(
        copy,
        tone_manifest,
        tokenizer_dir,
        "trainer.max_steps=24",
        "exp_manager.resume_if_exists=true",
        "exp_manager.resume_ignore_no_checkpoint=true",
        env={"FAULT_RECORD": str(record)},
    )
    assert proc.returncode == 0, output(proc)
    run = json.loads(record.read_text())
    assert (min(map(int, run["steps"])), run["global_step"]) == (4, 24)


# ---------------------------------------------------------------------------------------------- kill + resume
RESUME = [
    "trainer.max_steps=-1",
    "trainer.max_epochs=6",  # 4 steps per epoch: 24 steps
    "+exp_manager.checkpoint_callback_params.save_on_train_epoch_end=true",
    "exp_manager.resume_if_exists=true",
    "exp_manager.resume_ignore_no_checkpoint=true",
]


@pytest.mark.slow
def test_killed_mid_epoch_then_resumed_matches_an_uninterrupted_run(tmp_path, tone_manifest, tokenizer_dir):
    full, resumed = tmp_path / "full.json", tmp_path / "resumed.json"
    proc = run_recipe(tmp_path / "full", tone_manifest, tokenizer_dir, *RESUME, env={"FAULT_RECORD": str(full)})
    assert proc.returncode == 0, output(proc)
    exp = tmp_path / "killed"
    proc = run_recipe(exp, tone_manifest, tokenizer_dir, *RESUME, env={"FAULT_KILL_AT_STEP": "10"})
    assert proc.returncode == -9, output(proc)  # SIGKILL in epoch 2 (steps 8-11); last checkpoint: step 8
    checkpoints = exp / NEMO_NAME / "checkpoints"
    assert AlignerEncoderModel.restore_from(str(checkpoints / f"{NEMO_NAME}.nemo"))
    proc = run_recipe(exp, tone_manifest, tokenizer_dir, *RESUME, env={"FAULT_RECORD": str(resumed)})
    assert proc.returncode == 0, output(proc)
    assert "Resuming training from checkpoint" in proc.stdout + proc.stderr
    a, b = json.loads(full.read_text()), json.loads(resumed.read_text())
    assert min(map(int, b["steps"])) == 8  # nothing before the checkpoint is redone or lost
    assert b["steps"]["8"] == a["steps"]["8"]  # same weights, lr and batch at the first resumed step
    assert (b["global_step"], b["lr"], b["optimizer_step"]) == (a["global_step"], a["lr"], a["optimizer_step"])
    assert torch.equal(torch.load(tmp_path / "full.pt"), torch.load(tmp_path / "resumed.pt"))


@pytest.mark.slow
def test_kill_while_writing_the_nemo_leaves_a_loadable_one(tmp_path, tone_manifest, tokenizer_dir):
    exp = tmp_path / "exp"
    env = {"FAULT_KILL_IN_NEMO_SAVE": "3"}  # the third .nemo write (epoch 1)
    proc = run_recipe(exp, tone_manifest, tokenizer_dir, *RESUME, env=env)
    assert proc.returncode == -9, output(proc)
    nemo = exp / NEMO_NAME / "checkpoints" / f"{NEMO_NAME}.nemo"
    checks.check_nemo_archive(nemo)
    assert AlignerEncoderModel.restore_from(str(nemo))
    proc = run_recipe(exp, tone_manifest, tokenizer_dir, *RESUME)
    assert proc.returncode == 0, output(proc)
    assert not list(nemo.parent.glob("*.partial-*"))  # the killed writer's leftover is cleaned up
    assert AlignerEncoderModel.restore_from(str(nemo))
