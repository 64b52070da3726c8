"""Training under mixed precision (issue 26): ``bf16-mixed`` on CPU trains the tiny model with finite losses, saves a
.nemo that restores in fp32 and transcribes as the trained model does, and the non-finite guard
(``checks.NonFiniteGuard``, in ``on_before_optimizer_step``) drops a poisoned step under autocast and counts it.

fp16 (``16-mixed``, with loss scaling) runs on CUDA. On CPU, Lightning turns ``precision="16-mixed"`` into
``bf16-mixed`` (with a warning), and handed the ``MixedPrecision("16-mixed", "cpu")`` plugin itself it fails in the
prediction network: torch's CPU LSTM (oneDNN) has no fp16 kernel ("could not create a primitive descriptor for the
LSTM forward propagation primitive", torch 2.13). The fp16 tests run on CPU when a probe LSTM runs under fp16
autocast, and are skipped with that message otherwise. The guard runs after the scaler unscales; it drops a step
the scaler also skips.
"""

from __future__ import annotations

import math

import fault_helpers
import lightning.pytorch as pl
import pytest
import torch
from fault_helpers import read_manifest, write_manifest
from lightning.pytorch.plugins.precision import MixedPrecision

from conftest import tiny_cfg
from nemo_aligner_plugin import AlignerEncoderModel

messy_audio = fault_helpers.messy_audio  # the fixture

AUTOCAST_DTYPE = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def fp16_device() -> str:
    """Where fp16 autocast trains the model: CUDA, else CPU if an LSTM runs under it there; else skip the test."""
    if torch.cuda.is_available():
        return "cuda"
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            torch.nn.LSTM(4, 4, batch_first=True)(torch.zeros(1, 2, 4))
    except RuntimeError as err:
        pytest.skip(f"no fp16 autocast training on CPU: torch's LSTM under it fails ({str(err).split('.')[0]})")
    return "cpu"


class StepRecorder(pl.Callback):
    """Each training step's loss, whether autocast was on (and its dtype) in the encoder, and the guard's verdict."""

    def __init__(self):
        self.losses: list[float] = []
        self.autocast: list[tuple[bool, torch.dtype]] = []
        self.skipped: list[bool] = []

    def on_train_start(self, trainer, pl_module):
        device = pl_module.device.type

        def note_autocast(module, args):
            self.autocast.append((torch.is_autocast_enabled(device), torch.get_autocast_dtype(device)))

        pl_module.encoder.register_forward_pre_hook(note_autocast)
        guard = pl_module.nonfinite_guard
        skip = guard.skip_if_nonfinite

        def recorded_skip(*args, **kwargs):
            self.skipped.append(skip(*args, **kwargs))
            return self.skipped[-1]

        guard.skip_if_nonfinite = recorded_skip

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


def fit(tmp_path, manifest, tokenizer_dir, precision: str, max_steps: int = 4, poison_step: int | None = None):
    """A Lightning fit of the tiny model on ``manifest`` (4 utterances a batch, in order) under ``precision``;
    ``poison_step``: that step's loss is multiplied by inf. Returns (model, trainer, recorder)."""
    train_ds = {"manifest_filepath": str(manifest), "batch_size": 4, "shuffle": False}
    cfg = tiny_cfg(tokenizer_dir, model={"train_ds": train_ds, "concat_utterances": {"fraction": 0.0}})
    del cfg.model.optim["sched"]
    recorder = StepRecorder()
    device = fp16_device() if precision == "16-mixed" else "cpu"
    # Lightning would run "16-mixed" on CPU as bf16: there, give it the fp16 plugin (autocast + GradScaler) itself.
    on_cpu_fp16 = precision == "16-mixed" and device == "cpu"
    precision_args = {"plugins": [MixedPrecision("16-mixed", "cpu")]} if on_cpu_fp16 else {"precision": precision}
    trainer = pl.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        max_steps=max_steps,
        logger=False,
        gradient_clip_val=1.0,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[recorder],
        **precision_args,
    )
    torch.manual_seed(0)
    model = AlignerEncoderModel(cfg.model, trainer=trainer)
    if poison_step is not None:
        compute_loss = model.compute_loss

        def poisoned(*args, **kwargs):
            loss = compute_loss(*args, **kwargs)
            return loss * math.inf if model.training and trainer.global_step == poison_step else loss

        model.compute_loss = poisoned
    trainer.fit(model)
    return model, trainer, recorder


def texts_and_tokens(model, files: list[str]) -> list[tuple[str, list[int]]]:
    with torch.inference_mode():
        hyps = model.transcribe(files, batch_size=4, return_hypotheses=True, verbose=False)
    return [(h.text, h.y_sequence.tolist()) for h in hyps]


@pytest.mark.unit
def test_bf16_trains_and_restores_in_fp32(tmp_path, tone_manifest, tokenizer_dir):
    model, trainer, recorder = fit(tmp_path, tone_manifest, tokenizer_dir, "bf16-mixed", max_steps=8)
    assert len(recorder.losses) == 8 and all(math.isfinite(loss) for loss in recorder.losses), recorder.losses
    assert recorder.losses[6] < recorder.losses[0], recorder.losses  # it trains: batch 0 again, 3 epochs later
    assert set(recorder.autocast) == {(True, torch.bfloat16)}
    assert recorder.skipped == [False] * 8 and model.nonfinite_guard.num_skipped == 0
    params = dict(model.named_parameters())
    assert {p.dtype for p in params.values()} == {torch.float32}  # bf16 autocast keeps fp32 master weights
    assert all(torch.isfinite(p).all() for p in params.values())

    path = tmp_path / "bf16.nemo"
    model.save_to(str(path))
    restored = AlignerEncoderModel.restore_from(str(path), map_location="cpu").eval()
    saved = restored.state_dict()
    assert {v.dtype for v in saved.values() if v.is_floating_point()} == {torch.float32}
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    files = [row["audio_filepath"] for row in read_manifest(tone_manifest)]
    assert texts_and_tokens(restored, files) == texts_and_tokens(model.eval(), files)


@pytest.mark.unit
@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_guard_drops_an_inf_loss_step_under_autocast(tmp_path, tone_manifest, tokenizer_dir, precision):
    model, trainer, recorder = fit(tmp_path, tone_manifest, tokenizer_dir, precision, max_steps=4, poison_step=1)
    assert set(recorder.autocast) == {(True, AUTOCAST_DTYPE[precision])}
    assert recorder.skipped[1] is True and math.isinf(recorder.losses[1])
    assert_dropped_steps(model, trainer, recorder, precision)


@pytest.mark.unit
@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_guard_drops_a_nan_audio_step_under_autocast(tmp_path, tone_manifest, tokenizer_dir, messy_audio, precision):
    rows = read_manifest(tone_manifest)
    rows[0]["audio_filepath"] = messy_audio["nan"]  # in batch 0 of each epoch: steps 0 and 2
    manifest = write_manifest(tmp_path / "nan.json", rows)
    model, trainer, recorder = fit(tmp_path, manifest, tokenizer_dir, precision, max_steps=4)
    assert recorder.skipped[0] is True and recorder.skipped[2] is True
    assert math.isnan(recorder.losses[0]) and math.isnan(recorder.losses[2])
    assert_dropped_steps(model, trainer, recorder, precision)


def assert_dropped_steps(model, trainer, recorder: StepRecorder, precision: str) -> None:
    """Every dropped step counted and left out of the optimizer's step count, the weights finite. bf16: exactly the
    steps with a non-finite loss are dropped. fp16: those, and clean steps only where the scaler found an overflow
    too (it halves its scale for each step it skips, and grows it only after 2,000 clean ones)."""
    skipped = sum(recorder.skipped)
    assert model.nonfinite_guard.num_skipped == skipped
    assert all(torch.isfinite(p).all() for p in model.parameters())
    steps = trainer.optimizers[0].state[next(model.parameters())]["step"].item()
    assert steps == len(recorder.skipped) - skipped, (recorder.skipped, steps)
    nonfinite = [not math.isfinite(loss) for loss in recorder.losses]
    assert all(s for s, bad in zip(recorder.skipped, nonfinite, strict=True) if bad), (recorder.skipped, nonfinite)
    if precision == "16-mixed":
        assert trainer.precision_plugin.scaler.get_scale() == 2.0**16 * 0.5**skipped, recorder.skipped
    else:
        assert recorder.skipped == nonfinite, recorder.losses
