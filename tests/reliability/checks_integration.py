"""The integration of ``nemo_aligner_plugin.checks`` proposed for model.py, data.py and training.py, applied by
patching so that the reliability tests exercise it before it lands. Each patch is skipped once the real code
has it, so the tests keep testing the real thing afterwards.

The code each patch stands for (what goes into the real files) is quoted in its docstring.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, Optional

from omegaconf import open_dict

from nemo_aligner_plugin import checks

ENV = "FAULT_INTEGRATION"  # set to 1: fault_recipe.py applies the integration in the recipe process(es)


def _setter(monkeypatch) -> Callable[[Any, str, Any], None]:
    return monkeypatch.setattr if monkeypatch is not None else setattr


def integrate_model(monkeypatch=None) -> bool:
    """model.py::

    from nemo_aligner_plugin import checks

    # __init__, inside the `with open_dict(cfg):` block before super().__init__:
        cfg.nemo_aligner_plugin_version = checks.plugin_version_stamp(cfg.get("nemo_aligner_plugin_version"))
    # __init__, last line:
    self.nonfinite_guard = checks.NonFiniteGuard()

    # training_step, after `loss_value = self.add_auxiliary_losses(loss_value)`:
    self.nonfinite_guard.note_loss(loss_value)

    def on_before_optimizer_step(self, optimizer) -> None:
        \"\"\"A NaN/inf loss or gradient on any rank drops this optimizer step on every rank.\"\"\"
        super().on_before_optimizer_step(optimizer)
        self.nonfinite_guard.skip_if_nonfinite(self.parameters(), optimizer, step=self.trainer.global_step)
        self.log("train_nonfinite_steps", float(self.nonfinite_guard.num_skipped))

    def save_to(self, save_path: str) -> None:
        \"\"\"ModelPT.save_to, atomic: a kill or a full disk never leaves a half-written .nemo.\"\"\"
        with checks.atomic_output(save_path) as partial_path:
            super().save_to(partial_path)

    @classmethod
    def restore_from(cls, restore_path: str, *args, **kwargs):
        \"\"\"ModelPT.restore_from, with a clear error for a truncated .nemo or one missing its tokenizer.\"\"\"
        checks.check_nemo_archive(restore_path)
        return super().restore_from(restore_path, *args, **kwargs)

    # transcribe(), right after `items = None if longform is None or plain_only else routable_audio(audio)`:
    checks.check_transcribe_inputs(self, audio, check_duration=items is None)  # long-form takes long items
    """
    from nemo_aligner_plugin.model import AlignerEncoderModel as M

    if "on_before_optimizer_step" in M.__dict__:
        return False
    setattr_ = _setter(monkeypatch)
    init, training_step, transcribe = M.__init__, M.training_step, M.transcribe

    @functools.wraps(init)
    def __init__(self, cfg, trainer=None):
        with open_dict(cfg):
            cfg.nemo_aligner_plugin_version = checks.plugin_version_stamp(cfg.get("nemo_aligner_plugin_version"))
        init(self, cfg, trainer)
        self.nonfinite_guard = checks.NonFiniteGuard()

    @functools.wraps(training_step)
    def training_step_(self, batch, batch_nb):
        out = training_step(self, batch, batch_nb)
        self.nonfinite_guard.note_loss(out["loss"])
        return out

    def on_before_optimizer_step(self, optimizer) -> None:
        super(M, self).on_before_optimizer_step(optimizer)  # noqa: UP008 (defined outside the class)
        self.nonfinite_guard.skip_if_nonfinite(self.parameters(), optimizer, step=self.trainer.global_step)
        self.log("train_nonfinite_steps", float(self.nonfinite_guard.num_skipped))

    def save_to(self, save_path: str) -> None:
        with checks.atomic_output(save_path) as partial_path:
            super(M, self).save_to(partial_path)  # noqa: UP008

    def restore_from(cls, restore_path: str, *args, **kwargs):
        checks.check_nemo_archive(restore_path)
        return super(M, cls).restore_from(restore_path, *args, **kwargs)

    @functools.wraps(transcribe)
    def transcribe_(self, audio, *args, **kwargs):
        from nemo_aligner_plugin.longform import longform_config, routable_audio

        routed = longform_config(self.cfg.get("longform")) is not None and routable_audio(audio) is not None
        checks.check_transcribe_inputs(self, audio, check_duration=not routed)
        return transcribe(self, audio, *args, **kwargs)

    setattr_(M, "__init__", __init__)
    setattr_(M, "training_step", training_step_)
    setattr_(M, "on_before_optimizer_step", on_before_optimizer_step)
    setattr_(M, "save_to", save_to)
    setattr_(M, "restore_from", classmethod(restore_from))
    setattr_(M, "transcribe", transcribe_)
    return True


def integrate_data(monkeypatch=None) -> bool:
    """data.py, in build_dataloader::

    checks.mono_audio_config(config)  # first line: mono (B, T) audio from every loader
    ...
    dataset = LhotseSpeechToTextBpeDataset(tokenizer=..., return_cuts=...)
    checks.downmix_lhotse_dataset(dataset)  # before get_lhotse_dataloader_from_config(..., dataset=dataset)
    """
    from nemo_aligner_plugin import data, model

    if hasattr(data, "checks"):
        return False
    setattr_ = _setter(monkeypatch)
    build, lhotse_dataset = data.build_dataloader, data.LhotseSpeechToTextBpeDataset

    class DownmixedLhotseDataset(lhotse_dataset):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            checks.downmix_lhotse_dataset(self)

    @functools.wraps(build)
    def build_dataloader(config, *args, **kwargs):
        return build(checks.mono_audio_config(config), *args, **kwargs)

    setattr_(data, "LhotseSpeechToTextBpeDataset", DownmixedLhotseDataset)
    setattr_(data, "build_dataloader", build_dataloader)
    setattr_(model, "build_dataloader", build_dataloader)
    return True


def integrate_training(monkeypatch=None) -> bool:
    """training.py, in run_training::

    checks.check_training_config(cfg)  # first line: CPU sync_batchnorm, Lhotse sampler / batch size
    ...
    model = build_model(trainer, log_dir)
    checks.check_dataset_manifests(model.cfg, tokenizer=model.tokenizer)  # before trainer.fit(model)
    ...
    # summary: "nonfinite_steps_skipped": model.nonfinite_guard.num_skipped,
    """
    from nemo_aligner_plugin import training

    if hasattr(training, "checks"):
        return False
    run = training.run_training

    @functools.wraps(run)
    def run_training(cfg, build_model, *args, **kwargs):
        checks.check_training_config(cfg)

        def build_and_check(trainer, log_dir):
            model = build_model(trainer, log_dir)
            checks.check_dataset_manifests(model.cfg, tokenizer=model.tokenizer)
            return model

        return run(cfg, build_and_check, *args, **kwargs)

    _setter(monkeypatch)(training, "run_training", run_training)
    return True


def integrate(monkeypatch=None) -> dict[str, bool]:
    """Apply every proposed integration not yet in the code; which ones were patched."""
    return {
        "model": integrate_model(monkeypatch),
        "data": integrate_data(monkeypatch),
        "training": integrate_training(monkeypatch),
    }


def requested() -> Optional[dict[str, bool]]:
    """In a subprocess: integrate when ``FAULT_INTEGRATION=1``."""
    return integrate() if os.environ.get(ENV) == "1" else None


def integrate_transcribe_recipe(recipe_module) -> bool:
    """recipes/transcribe_aligner.py, first lines of read_manifest(path)::

        errors = [p for p in checks.validate_manifest(path, ("audio_filepath",)) if p.severity == "error"]
        if errors:
            raise ValueError("\\n".join(str(p) for p in errors[:10]))

    (main() already turns ValueError into a logged error and exit status 2; the model's transcribe() check
    raises AudioInputError / AudioTooLongError, both ValueErrors.)
    """
    if hasattr(recipe_module, "checks"):
        return False
    read_manifest = recipe_module.read_manifest

    def read_checked_manifest(path):
        errors = [p for p in checks.validate_manifest(path, ("audio_filepath",)) if p.severity == "error"]
        if errors:
            raise ValueError("\n".join(str(p) for p in errors[:10]))
        return read_manifest(path)

    recipe_module.read_manifest = read_checked_manifest
    return True
