"""Transcribe a NeMo manifest or an audio folder with an Aligner-Encoder, and score it when references exist.

Any NeMo ASR .nemo works (the demo scores its CTC and RNN-T baselines with it); ``decoding`` is aligner-only.

    python recipes/transcribe_aligner.py model_path=model.nemo dataset_manifest=test.json \
        output_filename=preds.json batch_size=16
    python recipes/transcribe_aligner.py pretrained_name=<catalog name> audio_dir=wavs/ audio_type=wav
    python recipes/transcribe_aligner.py model_path=model.nemo dataset_manifest=long.json \
        +longform.enabled=true +longform.boundary=pause   # chunked long-form for audio past chunk_seconds

Writes the input manifest lines with an added ``pred_text`` field, prints WER/CER (jiwer) when the
manifest has ``text``, and saves them to ``<output_filename>.metrics.json``. Options mirror NeMo's
transcribe_speech.py; ``decoding`` takes the aligner decoding config (see configs/).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import jiwer
import torch
from nemo.collections.asr.models import ASRModel
from nemo.core.config import hydra_runner
from nemo.utils import logging
from omegaconf import OmegaConf, open_dict

from nemo_aligner_plugin import AlignerEncoderModel, checks
from nemo_aligner_plugin.longform import longform_config


@dataclass
class TranscriptionConfig:
    model_path: Optional[str] = None  # .nemo file
    pretrained_name: Optional[str] = None  # catalog name or HF id, instead of model_path
    dataset_manifest: Optional[str] = None  # NeMo manifest; `text` enables scoring
    audio_dir: Optional[str] = None  # or a folder of audio files (searched recursively)
    audio_type: str = "wav"  # extension searched in audio_dir
    output_filename: Optional[str] = None  # default: <manifest stem or folder name>_predictions.json
    batch_size: int = 16
    num_workers: int = 0
    device: str = "auto"  # auto | cpu | cuda
    decoding: dict[str, Any] = field(default_factory=dict)  # aligner decoding overrides, e.g. {strategy: greedy_batch}
    # aligner long-form overrides (docs/longform.md), e.g. {enabled: true, boundary: pause}: audio longer than
    # chunk_seconds is then transcribed in chunks
    longform: dict[str, Any] = field(default_factory=dict)
    use_lhotse: bool = True  # NeMo's Lhotse dataloader for inference


def read_manifest(path: Path, required: tuple[str, ...] = ("audio_filepath",)) -> list[dict]:
    """Manifest lines as dicts; errors (a ``required`` field missing, ...) name the file and line."""
    errors = [p for p in checks.validate_manifest(path, required) if p.severity == "error"]
    if errors:
        raise ValueError("\n".join(str(p) for p in errors[:10]))
    entries = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({err.msg})") from err
            if "audio_filepath" not in entry:
                raise ValueError(f"{path}:{lineno}: missing field 'audio_filepath'")
            audio = Path(entry["audio_filepath"])
            if not audio.is_absolute():
                entry["audio_filepath"] = str(path.parent / audio)
            entries.append(entry)
    if not entries:
        raise ValueError(f"{path}: manifest has no entries")
    return entries


def write_manifest(path: Path, entries: list[dict]) -> Path:
    """One JSON line per entry (UTF-8, non-ASCII text kept as is); parent folders are created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries), encoding="utf-8")
    return path


def score(references: list[str], hypotheses: list[str]) -> dict[str, float]:
    return {
        "wer": jiwer.wer(references, hypotheses),
        "cer": jiwer.cer(references, hypotheses),
        "num_utterances": len(references),
    }


def load_model(cfg: TranscriptionConfig) -> ASRModel:
    if (cfg.model_path is None) == (cfg.pretrained_name is None):
        raise ValueError("Set exactly one of model_path=... or pretrained_name=...")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    if cfg.model_path is not None:
        if not Path(cfg.model_path).is_file():
            raise FileNotFoundError(f"model_path={cfg.model_path} does not exist")
        checks.check_nemo_archive(cfg.model_path)  # a clear error for a truncated/corrupt archive
        model = ASRModel.restore_from(cfg.model_path, map_location=device)  # the class saved in the archive
    else:
        model = AlignerEncoderModel.from_pretrained(cfg.pretrained_name, map_location=device)
    if cfg.decoding:
        if not isinstance(model, AlignerEncoderModel):
            raise ValueError(f"decoding=... takes aligner decoding options; {type(model).__name__} is not an aligner")
        model.change_decoding_strategy({**OmegaConf.to_container(model.cfg.decoding), **cfg.decoding})
    if cfg.longform:
        set_longform(model, cfg.longform)
    return model.eval()


def set_longform(model: ASRModel, overrides: dict[str, Any]) -> None:
    """Merge ``overrides`` into the aligner's ``longform`` config section (checked before any audio is read)."""
    if not isinstance(model, AlignerEncoderModel):
        raise ValueError(f"longform=... takes aligner long-form options; {type(model).__name__} is not an aligner")
    section = {**OmegaConf.to_container(model.cfg.get("longform") or OmegaConf.create({})), **overrides}
    longform_config(section)  # a bad value is named here
    with open_dict(model.cfg):
        model.cfg.longform = section


def text_of(hypothesis) -> str:
    """NeMo models return Hypothesis objects (aligner, RNN-T) or strings (some CTC paths)."""
    return hypothesis if isinstance(hypothesis, str) else hypothesis.text


def run(cfg: TranscriptionConfig, model: Optional[ASRModel] = None) -> dict[str, Any]:
    """Transcribe and score as configured; ``model``: an already loaded model (then model_path is not read)."""
    if (cfg.dataset_manifest is None) == (cfg.audio_dir is None):
        raise ValueError("Set exactly one of dataset_manifest=... or audio_dir=...")
    if cfg.dataset_manifest is not None:
        source = Path(cfg.dataset_manifest)
        entries = read_manifest(source)
    else:
        source = Path(cfg.audio_dir)
        files = sorted(source.rglob(f"*.{cfg.audio_type}"))
        if not files:
            raise FileNotFoundError(f"audio_dir={source} has no *.{cfg.audio_type} files")
        entries = [{"audio_filepath": str(p)} for p in files]
    output = Path(cfg.output_filename or f"{source.stem}_predictions.json")

    model = model if model is not None else load_model(cfg)
    start = time.perf_counter()
    with torch.inference_mode():
        # NeMo's CTC/RNN-T transcribe() takes no loader switch; they use their own default loader
        loader = {"use_lhotse": cfg.use_lhotse} if isinstance(model, AlignerEncoderModel) else {}
        hyps = model.transcribe(
            [e["audio_filepath"] for e in entries],
            batch_size=cfg.batch_size,
            num_workers=cfg.num_workers,
            verbose=True,
            **loader,
        )
    seconds = time.perf_counter() - start
    write_manifest(output, [{**e, "pred_text": text_of(h)} for e, h in zip(entries, hyps, strict=True)])

    result: dict[str, Any] = {"output_filename": str(output), "transcribe_seconds": seconds}
    audio_seconds = sum(float(e.get("duration", 0.0)) for e in entries)
    if audio_seconds:
        result["rtfx"] = audio_seconds / seconds
    if all("text" in e for e in entries):
        result.update(score([e["text"] for e in entries], [text_of(h) for h in hyps]))
    Path(f"{output}.metrics.json").write_text(json.dumps(result, indent=2))
    logging.info(f"Wrote {len(entries)} predictions to {output}")
    print(json.dumps(result, indent=2))
    return result


@hydra_runner(config_name="TranscriptionConfig", schema=TranscriptionConfig)
def main(cfg: TranscriptionConfig) -> None:
    try:
        run(OmegaConf.to_object(cfg))
    except (ValueError, FileNotFoundError) as err:
        logging.error(str(err))
        sys.exit(2)


if __name__ == "__main__":
    main()
