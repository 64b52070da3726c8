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

from pathlib import Path

from nemo.core.config import hydra_runner

from nemo_aligner_plugin import AlignerEncoderModel
from nemo_aligner_plugin.integration.finetune import EncoderFreezer, build_finetune_model
from nemo_aligner_plugin.integration.training import run_training


@hydra_runner(config_path="../configs", config_name="finetune_from_conformer")
def main(cfg):
    freezer = EncoderFreezer.from_config(cfg)
    source = cfg.get("source_model") or str(cfg.get("init_from_nemo_model") or cfg.get("init_from_pretrained_model"))
    run_training(
        cfg,
        lambda trainer, log_dir: build_finetune_model(
            cfg, AlignerEncoderModel, trainer, work_dir=str(log_dir or Path.cwd())
        ),
        callbacks=[freezer] if freezer else None,
        summary_extra={"source": source},
    )


if __name__ == "__main__":
    main()
