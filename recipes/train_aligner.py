"""Train an Aligner-Encoder from a NeMo recipe YAML (the counterpart of NeMo's speech_to_text_*_bpe.py).

    python recipes/train_aligner.py --config-path=../configs --config-name=aligner_conformer_bpe \
        model.train_ds.manifest_filepath=train.json model.validation_ds.manifest_filepath=dev.json \
        model.tokenizer.dir=<tokenizer dir> trainer.devices=1 trainer.max_steps=100000

NeMo's own scripts hard-code their model class, so this entry point builds ``AlignerEncoderModel``.
Fine-tuning from any NeMo checkpoint works through ``+init_from_nemo_model=...`` or
``+init_from_pretrained_model=...`` (with include/exclude lists), as in NeMo.
"""

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
    trainer = pl.Trainer(**resolve_trainer_cfg(cfg.trainer))
    log_dir = exp_manager(trainer, cfg.get("exp_manager", None))
    model = AlignerEncoderModel(cfg=cfg.model, trainer=trainer)
    model.maybe_init_from_pretrained_checkpoint(cfg)
    trainer.fit(model)
    if cfg.model.get("test_ds") and cfg.model.test_ds.get("manifest_filepath"):
        if model.prepare_test(trainer):
            trainer.test(model)
    if log_dir is not None and cfg.get("save_final_nemo", True):
        final = f"{log_dir}/{cfg.name}.nemo"
        model.save_to(final)
        logging.info(f"Saved final model to {final}")


if __name__ == "__main__":
    main()
