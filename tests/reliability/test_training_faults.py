"""Training faults: NaN/inf steps, a process killed mid-epoch and resumed, a full disk while saving.

Measured before the checks integration:
- a float WAV with NaN (or inf) samples: that batch's loss is NaN and, after one optimizer step, every weight
  is NaN for good (both loaders; gradient clipping does not help). NeMo's ``skip_nan_grad: true`` (false in the
  configs) drops such a step too (its ``zero_grad()`` sets gradients to None), but looks at gradients only,
  counts nothing and syncs with the host once per parameter;
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

import errno
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import reliability_helpers
import torch
from checks_integration import integrate
from nemo.core.connectors.save_restore_connector import SaveRestoreConnector
from reliability_helpers import output, read_manifest, run_recipe, write_manifest

from conftest import tiny_cfg
from nemo_aligner_plugin import AlignerEncoderModel, checks

messy_audio = reliability_helpers.messy_audio  # the fixture
NEMO_NAME = "AlignerEncoder-Conformer-BPE"


# ---------------------------------------------------------------------------------------------- NaN / inf
@pytest.mark.unit
def test_guard_drops_the_step_and_leaves_optimizer_state_alone():
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=0.1)
    guard = checks.NonFiniteGuard()

    def step(x, loss_scale=1.0):
        optimizer.zero_grad()
        loss = layer(x).sum() * loss_scale
        loss.backward()
        guard.note_loss(loss)
        skipped = guard.skip_if_nonfinite(layer.parameters(), optimizer)
        optimizer.step()
        return skipped

    assert step(torch.ones(1, 3)) is False
    before = [p.detach().clone() for p in layer.parameters()]
    state = {k: v.clone() for k, v in optimizer.state[layer.weight].items()}
    assert step(torch.tensor([[1.0, float("nan"), 0.0]])) is True  # NaN gradients
    assert step(torch.ones(1, 3), loss_scale=float("inf")) is True  # inf loss (and gradients)
    assert all(torch.equal(a, b) for a, b in zip(before, layer.parameters(), strict=True))
    assert all(torch.equal(state[k], v) for k, v in optimizer.state[layer.weight].items())  # step count, moments
    assert guard.num_skipped == 2
    assert step(torch.ones(1, 3)) is False and optimizer.state[layer.weight]["step"].item() == 2.0


@pytest.mark.unit
@pytest.mark.parametrize("use_lhotse", [False, True], ids=["legacy", "lhotse"])
def test_nan_audio_skipped_not_poisoning_the_weights(
    tmp_path, tone_manifest, tokenizer_dir, messy_audio, use_lhotse, monkeypatch
):
    """A real Lightning fit: the NaN batch's step is dropped, counted, logged; the other steps train."""
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    integrate(monkeypatch)
    rows = read_manifest(tone_manifest)
    rows[0]["audio_filepath"] = messy_audio["nan"]
    manifest = write_manifest(tmp_path / "nan.json", rows)
    train_ds = {"manifest_filepath": str(manifest), "batch_size": 4, "shuffle": False, "use_lhotse": use_lhotse}
    cfg = tiny_cfg(tokenizer_dir, model={"train_ds": train_ds, "concat_utterances": {"fraction": 0.0}})
    del cfg.model.optim["sched"]
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=4,  # 2 epochs of 2 batches; the NaN utterance is in batch 0 of each
        logger=CSVLogger(tmp_path),
        log_every_n_steps=1,
        gradient_clip_val=1.0,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=not use_lhotse,
    )
    torch.manual_seed(0)
    model = AlignerEncoderModel(cfg.model, trainer=trainer)
    initial = [p.detach().clone() for p in model.parameters()]
    trainer.fit(model)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert model.nonfinite_guard.num_skipped == 2
    assert trainer.optimizers[0].state[next(model.parameters())]["step"].item() == 2.0  # 4 steps, 2 applied
    assert any(not torch.equal(a, b) for a, b in zip(initial, model.parameters(), strict=True))
    logged = (Path(trainer.logger.log_dir) / "metrics.csv").read_text().splitlines()
    column = logged[0].split(",").index("train_nonfinite_steps")
    assert [float(line.split(",")[column]) for line in logged[1:] if line.split(",")[column]] == [1.0, 1.0, 2.0, 2.0]


# ---------------------------------------------------------------------------------------------- full disk
@pytest.fixture
def saved_model(tmp_path, tokenizer_dir, monkeypatch):
    integrate(monkeypatch)
    model = AlignerEncoderModel(tiny_cfg(tokenizer_dir).model)
    path = tmp_path / "ckpt" / f"{NEMO_NAME}.nemo"
    model.save_to(str(path))
    return model, path


def disk_fills_up(monkeypatch):
    """The tar write of the next .nemo stops half-way with ENOSPC, as on a full disk."""

    def write_half_then_fail(filename, source_dir):
        Path(filename).write_bytes(b"\0" * 4096)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(SaveRestoreConnector, "_make_nemo_file_from_folder", staticmethod(write_half_then_fail))


@pytest.mark.unit
def test_disk_full_on_save_keeps_the_previous_nemo(saved_model, monkeypatch):
    model, path = saved_model
    previous = path.read_bytes()
    disk_fills_up(monkeypatch)
    with pytest.raises(OSError) as err:
        model.save_to(str(path))
    assert err.value.errno == errno.ENOSPC
    assert f"No space left on device while writing {path} (" in str(err.value)
    assert f"Nothing was half-written; the previous model is {path}." in str(err.value)
    assert path.read_bytes() == previous and sorted(p.name for p in path.parent.iterdir()) == [path.name]
    checks.check_nemo_archive(path)


@pytest.mark.unit
def test_disk_full_in_nemo_checkpoint_callback_flow(saved_model, monkeypatch):
    """NeMoModelCheckpoint renames X.nemo to X-v1.nemo, then saves X.nemo: X.nemo must stay loadable."""
    model, path = saved_model
    backup = path.with_name(f"{NEMO_NAME}-v1.nemo")
    path.rename(backup)  # what _backup_existing_nemo_ckpt does
    disk_fills_up(monkeypatch)
    with pytest.raises(OSError, match=f"the previous model is {path}"):
        model.save_to(str(path))
    monkeypatch.undo()
    integrate(monkeypatch)
    assert path.read_bytes() == backup.read_bytes()
    assert AlignerEncoderModel.restore_from(str(path)).cfg.nemo_aligner_plugin_version


@pytest.mark.slow
def test_disk_full_during_training_on_a_real_tmpfs(tmp_path, tone_manifest, tokenizer_dir):
    """The recipe with its experiment dir on a 40 MB tmpfs (private mount namespace) that fills up after step 6."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"]).returncode != 0:
        pytest.skip("needs unshare -rm (user + mount namespaces) for a private tmpfs")
    mount, copy = tmp_path / "mnt", tmp_path / "exp"
    mount.mkdir()
    env = {"FAULT_INTEGRATION": "1", "FAULT_FILL_DISK_AT_STEP": "6"}
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
        env={"FAULT_INTEGRATION": "1", "FAULT_RECORD": str(record)},
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
    env = {"FAULT_INTEGRATION": "1", "FAULT_KILL_IN_NEMO_SAVE": "3"}  # the third .nemo write (epoch 1)
    proc = run_recipe(exp, tone_manifest, tokenizer_dir, *RESUME, env=env)
    assert proc.returncode == -9, output(proc)
    nemo = exp / NEMO_NAME / "checkpoints" / f"{NEMO_NAME}.nemo"
    checks.check_nemo_archive(nemo)
    assert AlignerEncoderModel.restore_from(str(nemo))
    proc = run_recipe(exp, tone_manifest, tokenizer_dir, *RESUME, env={"FAULT_INTEGRATION": "1"})
    assert proc.returncode == 0, output(proc)
    assert not list(nemo.parent.glob("*.partial-*"))  # the killed writer's leftover is cleaned up
    assert AlignerEncoderModel.restore_from(str(nemo))
