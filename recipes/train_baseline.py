"""Train a NeMo baseline (CTC or RNN-T) on exactly the aligner's data, encoder and budget, for side-by-side numbers.

    python recipes/train_baseline.py --config-name=baselines/ctc_demo model.train_ds.manifest_filepath=...
    python recipes/train_baseline.py --config-name=baselines/rnnt_demo model.train_ds.manifest_filepath=...
    (the other overrides are in the YAMLs' headers)

A baseline YAML (configs/baselines/) inherits an aligner config through hydra's defaults list, names the NeMo
model class (``model_class``), removes the aligner-only model sections (``drop_model_sections``) and replaces
the head sections (``head``). ``cpu_rnnt_loss: vectorized`` trains RNN-T on CPU with
nemo_aligner_plugin/rnnt_loss.py instead of NeMo's numba loss (5.4 s a step at the demo shape).
Writes ``<log_dir>/<name>.nemo`` and ``training_summary.json`` like train_aligner.py.
"""

from hydra.utils import get_class
from lightning.pytorch.accelerators import CPUAccelerator
from nemo.core.config import hydra_runner
from omegaconf import DictConfig, OmegaConf, open_dict

from nemo_aligner_plugin.integration.training import run_training
from nemo_aligner_plugin.rnnt_loss import use_vectorized_loss

CPU_RNNT_LOSSES = ("vectorized", None)


def use_cpu_rnnt_loss(model, choice) -> None:
    """Swap the inner loss of NeMo's RNNTLoss for ours (``cpu_rnnt_loss: vectorized``); NeMo's wrapper stays."""
    if choice not in CPU_RNNT_LOSSES:
        raise ValueError(f"cpu_rnnt_loss={choice!r}: expected one of {list(CPU_RNNT_LOSSES)}")
    if choice is None:
        return
    from nemo.collections.asr.losses.rnnt import RNNTLoss

    if not isinstance(getattr(model, "loss", None), RNNTLoss):
        raise ValueError(f"cpu_rnnt_loss={choice!r} needs an RNN-T model; {type(model).__name__} has no RNNTLoss")
    use_vectorized_loss(model.loss)


def baseline_model_config(cfg: DictConfig) -> DictConfig:
    """The model section the baseline class is built from: the aligner's, minus dropped sections, plus the head."""
    model = OmegaConf.create(OmegaConf.to_container(cfg.model, resolve=True))
    head = OmegaConf.create(OmegaConf.to_container(cfg.head, resolve=True))
    unknown = [k for k in cfg.drop_model_sections if k not in model]
    if unknown:
        raise ValueError(f"drop_model_sections names model sections that the config does not have: {unknown}")
    with open_dict(model):
        for key in cfg.drop_model_sections:
            del model[key]
        for key, section in head.items():
            model[key] = section
    return model


@hydra_runner(config_path="../configs", config_name="baselines/ctc_demo")
def main(cfg: DictConfig) -> None:
    model_class = get_class(cfg.model_class)
    model_cfg = baseline_model_config(cfg)
    with open_dict(cfg):
        cfg.model = model_cfg

    def build(trainer, log_dir):
        model = model_class(cfg=cfg.model, trainer=trainer)
        model.maybe_init_from_pretrained_checkpoint(cfg)
        if isinstance(trainer.accelerator, CPUAccelerator):
            use_cpu_rnnt_loss(model, cfg.get("cpu_rnnt_loss"))
        return model

    run_training(cfg, build, summary_extra={"model_class": cfg.model_class, "cpu_rnnt_loss": cfg.get("cpu_rnnt_loss")})


if __name__ == "__main__":
    main()
