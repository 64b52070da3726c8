"""Fine-tune an Aligner-Encoder from a NeMo ASR model (the counterpart of NeMo's speech_to_text_finetune.py).

    # the source's encoder and preprocessor config, weights and tokenizer; a fresh prediction network + joint
    python recipes/finetune_aligner.py --config-path=../configs --config-name=finetune_from_conformer \
        source_model=stt_en_conformer_ctc_large \
        model.train_ds.manifest_filepath=train.json model.validation_ds.manifest_filepath=dev.json

    # NeMo's route: the encoder config is the YAML's, the weights come through init_from_nemo_model
    python recipes/finetune_aligner.py --config-path=../configs --config-name=finetune_from_conformer \
        init_from_nemo_model.encoder.path=conformer_ctc.nemo model.tokenizer.dir=<tokenizer dir> ...

``freeze_encoder_steps`` / ``freeze_encoder_layers`` set the freezing schedule (``EncoderFreezer``).
Everything else is in configs/finetune_from_conformer.yaml and docs/finetuning.md.
"""

import json
import time
from pathlib import Path

import lightning.pytorch as pl
from nemo.core.config import hydra_runner
from nemo.utils import logging
from nemo.utils.exp_manager import exp_manager
from nemo.utils.trainer_utils import resolve_trainer_cfg
from omegaconf import OmegaConf

from nemo_aligner_plugin.finetune import EncoderFreezer, build_finetune_model


@hydra_runner(config_path="../configs", config_name="finetune_from_conformer")
def main(cfg):
    logging.info(f"Hydra config:\n{OmegaConf.to_yaml(cfg)}")
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    freezer = EncoderFreezer.from_config(cfg)
    trainer = pl.Trainer(**resolve_trainer_cfg(cfg.trainer), callbacks=[freezer] if freezer else None)
    log_dir = exp_manager(trainer, cfg.get("exp_manager", None))
    model = build_finetune_model(cfg, trainer, work_dir=str(log_dir or Path.cwd()))
    start = time.perf_counter()
    trainer.fit(model)
    train_seconds = time.perf_counter() - start
    if cfg.model.get("test_ds") and cfg.model.test_ds.get("manifest_filepath"):
        if model.prepare_test(trainer):
            trainer.test(model)
    if log_dir is not None and cfg.get("save_final_nemo", True):
        final = Path(log_dir) / f"{cfg.name}.nemo"
        model.save_to(str(final))
        logging.info(f"Saved final model to {final}")
        summary = {
            "nemo_path": str(final),
            "source": cfg.get("source_model")
            or str(cfg.get("init_from_nemo_model") or cfg.get("init_from_pretrained_model")),
            "global_step": trainer.global_step,
            "minutes": train_seconds / 60,
            "skipped_unalignable_utterances": model.loss.num_skipped_total,
        }
        (Path(log_dir) / "training_summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
