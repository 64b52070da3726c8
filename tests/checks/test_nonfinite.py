"""checks/nonfinite.py: a NaN/inf step is dropped (weights, moments and step count untouched) and counted, and
it is the model's only NaN-step mechanism (NeMo's ``skip_nan_grad`` stays off).

Measured before the guard: a float WAV with NaN (or inf) samples made that batch's loss NaN and, after one
optimizer step, every weight NaN for good (both loaders; gradient clipping does not help).
"""

from pathlib import Path

import fault_helpers
import pytest
import torch
from fault_helpers import read_manifest, write_manifest

from conftest import tiny_cfg
from nemo_aligner_plugin import AlignerEncoderModel, checks

messy_audio = fault_helpers.messy_audio  # the fixture


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
def test_nan_audio_skipped_not_poisoning_the_weights(tmp_path, tone_manifest, tokenizer_dir, messy_audio, use_lhotse):
    """A real Lightning fit: the NaN batch's step is dropped, counted, logged; the other steps train."""
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

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


@pytest.mark.unit
def test_the_guard_is_the_only_nan_step_mechanism(tokenizer_dir):
    """NeMo's ASRModel.on_after_backward zeroes gradients when ``_skip_nan_grad`` is set (per micro-batch, before
    fp16 unscaling): the model must leave it unset even when a config asks for it, and still guard the step."""
    cfg = tiny_cfg(tokenizer_dir).model
    cfg.skip_nan_grad = True
    model = AlignerEncoderModel(cfg)
    assert not getattr(model, "_skip_nan_grad", False)
    assert isinstance(model.nonfinite_guard, checks.NonFiniteGuard)
    model.weight_probe = torch.nn.Parameter(torch.ones(1))
    model.weight_probe.grad = torch.tensor([float("nan")])
    model.on_after_backward()  # NeMo's hook: with the flag off it leaves the gradient for the guard to judge
    assert model.weight_probe.grad is not None
