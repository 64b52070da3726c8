"""Transcribe a NeMo manifest or an audio folder with an Aligner-Encoder, and score it when references exist.

    python recipes/transcribe_aligner.py model_path=model.nemo dataset_manifest=test.json \
        output_filename=preds.json batch_size=16
    python recipes/transcribe_aligner.py pretrained_name=<catalog name> audio_dir=wavs/ audio_type=wav
    python recipes/transcribe_aligner.py model_path=model.nemo dataset_manifest=test.json decoding.strategy=beam
    python recipes/transcribe_aligner.py model_path=model.nemo dataset_manifest=test.json \
        decoding.strategy=beam decoding.beam.return_best_hypothesis=false   # adds pred_text_nbest (best first)
    python recipes/transcribe_aligner.py model_path=model.nemo dataset_manifest=long.json \
        longform.enabled=true longform.chunk_seconds=5.0   # chunked long-form for audio past chunk_seconds

Writes the input manifest lines with an added ``pred_text`` field, prints one line (WER/CER with jiwer when the
manifest has ``text``) and saves the metrics to ``<output_filename>.metrics.json``. Options mirror NeMo's
transcribe_speech.py; ``decoding`` and ``longform`` take the aligner's keys, over the model's saved values;
``verbose=true`` shows NeMo's logging and progress bar. Any NeMo ASR .nemo works (decoding/longform: aligners).
"""

import logging
import sys
import warnings

# Quiet by default (verbose=true brings NeMo's logging back): NeMo's telemetry notes at import, hydra's chdir notice.
logging.getLogger("nv_one_logger").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", message="Future Hydra versions will no longer change working directory")

from nemo.core.config import hydra_runner  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from nemo_aligner_plugin.transcribe_cli import TranscriptionConfig, run, summary_line  # noqa: E402


@hydra_runner(config_name="TranscriptionConfig", schema=TranscriptionConfig)
def main(cfg: TranscriptionConfig) -> None:
    try:
        result = run(OmegaConf.to_object(cfg))
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(summary_line(result))


if __name__ == "__main__":
    main()
