"""Train an Aligner-Encoder from a NeMo recipe YAML (the counterpart of NeMo's speech_to_text_*_bpe.py).

    python recipes/train_aligner.py --config-path=../configs --config-name=aligner_conformer_bpe \
        model.train_ds.manifest_filepath=train.json model.validation_ds.manifest_filepath=dev.json \
        model.tokenizer.dir=<tokenizer dir> trainer.devices=1 trainer.max_steps=100000

NeMo's own scripts hard-code their model class, so this entry point builds ``AlignerEncoderModel``.
Fine-tuning from any NeMo checkpoint works through ``+init_from_nemo_model=...`` or
``+init_from_pretrained_model=...`` (with include/exclude lists), as in NeMo.
"""

import json
import time

import lightning.pytorch as pl
from nemo.core.config import hydra_runner
from nemo.utils import logging
from nemo.utils.exp_manager import exp_manager
from nemo.utils.trainer_utils import resolve_trainer_cfg
from omegaconf import OmegaConf

from nemo_aligner_plugin import AlignerEncoderModel


@hydra_runner(config_path="../configs", config_name="aligner_conformer_bpe")
def main(cfg):
    logging.info(f"Hydra config:\n{OmegaConf.to_yaml(cfg)}")
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    trainer = pl.Trainer(**resolve_trainer_cfg(cfg.trainer))
    log_dir = exp_manager(trainer, cfg.get("exp_manager", None))
    model = AlignerEncoderModel(cfg=cfg.model, trainer=trainer)
    model.maybe_init_from_pretrained_checkpoint(cfg)
    start = time.perf_counter()
    trainer.fit(model)
    train_seconds = time.perf_counter() - start
    if cfg.model.get("test_ds") and cfg.model.test_ds.get("manifest_filepath"):
        if model.prepare_test(trainer):
            trainer.test(model)
    if log_dir is not None and cfg.get("save_final_nemo", True):
        final = f"{log_dir}/{cfg.name}.nemo"
        model.save_to(final)
        logging.info(f"Saved final model to {final}")
        max_steps = cfg.trainer.get("max_steps", -1)
        summary = {
            "nemo_path": final,
            "global_step": trainer.global_step,
            "epochs": trainer.current_epoch,
            "minutes": train_seconds / 60,
            "stop_reason": "max_steps" if max_steps > 0 and trainer.global_step >= max_steps else "max_time/max_epochs",
            "skipped_unalignable_utterances": model.loss.num_skipped_total,
        }
        (log_dir / "training_summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
