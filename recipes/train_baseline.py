"""Train a NeMo baseline (CTC or RNN-T) on exactly the aligner's data, encoder and budget, for side-by-side numbers.

    python recipes/train_baseline.py --config-name=baselines/ctc_demo model.train_ds.manifest_filepath=...
    python recipes/train_baseline.py --config-name=baselines/rnnt_demo model.train_ds.manifest_filepath=...
    (the other overrides are in the YAMLs' headers)

How a baseline YAML derives from the aligner's, and ``cpu_rnnt_loss``: nemo_aligner_plugin/demo/baselines.py.
Writes ``<log_dir>/<name>.nemo`` and ``training_summary.json`` like train_aligner.py.
"""

from hydra.utils import get_class
from lightning.pytorch.accelerators import CPUAccelerator
from nemo.core.config import hydra_runner
from omegaconf import DictConfig, open_dict

from nemo_aligner_plugin.demo.baselines import baseline_model_config, use_cpu_rnnt_loss
from nemo_aligner_plugin.integration.training import run_training


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
