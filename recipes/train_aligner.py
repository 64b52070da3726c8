"""Train an Aligner-Encoder from a NeMo recipe YAML (the counterpart of NeMo's speech_to_text_*_bpe.py).

    python recipes/train_aligner.py --config-path=../configs --config-name=aligner_conformer_bpe \
        model.train_ds.manifest_filepath=train.json model.validation_ds.manifest_filepath=dev.json \
        model.tokenizer.dir=<tokenizer dir> trainer.devices=1 trainer.max_steps=100000

NeMo's own scripts hard-code their model class, so this entry point builds ``AlignerEncoderModel``.
Fine-tuning from any NeMo checkpoint works through ``+init_from_nemo_model=...`` or
``+init_from_pretrained_model=...`` (with include/exclude lists), as in NeMo; see also finetune_aligner.py.
Writes ``<log_dir>/<name>.nemo`` and ``training_summary.json`` (steps, minutes, skipped utterances).
"""

from nemo.core.config import hydra_runner

from nemo_aligner_plugin import AlignerEncoderModel
from nemo_aligner_plugin.integration.training import run_training


@hydra_runner(config_path="../configs", config_name="aligner_conformer_bpe")
def main(cfg):
    def build(trainer, log_dir):
        model = AlignerEncoderModel(cfg=cfg.model, trainer=trainer)
        model.maybe_init_from_pretrained_checkpoint(cfg)
        return model

    run_training(cfg, build)


if __name__ == "__main__":
    main()
