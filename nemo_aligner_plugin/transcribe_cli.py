"""The library behind ``recipes/transcribe_aligner.py``: transcribe a manifest or an audio folder, write
``pred_text`` next to each line, and score it when references exist.

Any NeMo ASR model works (the demo scores its CTC and RNN-T baselines with it); ``decoding`` and ``longform`` are
aligner-only. Their CLI sections declare every key of the model's own sections (``decoding.strategy=beam`` works
without hydra's ``+``); a key left unset (null) keeps the model's saved value.
"""

from __future__ import annotations

import dataclasses
import json
import time
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from nemo_aligner_plugin.config import LongformConfig
from nemo_aligner_plugin.decoding.strategies import AlignerDecodingConfig
from nemo_aligner_plugin.manifests import read_manifest, score, write_manifest
from nemo_aligner_plugin.nemo_logs import quiet_nemo

__all__ = [
    "TranscriptionConfig",
    "load_model",
    "set_longform",
    "set_decoding",
    "text_of",
    "nbest_texts",
    "run",
    "parse_longform_options",
]


def _overrides_of(cls: type, name: str, extra: Optional[dict[str, type]] = None) -> type:
    """A dataclass with ``cls``'s keys (nested sections included), each optional and None: "keep the model's"."""
    specs = []
    for key, hint in {**typing.get_type_hints(cls), **(extra or {})}.items():
        if dataclasses.is_dataclass(hint):
            nested = _overrides_of(hint, f"{name}_{key}")
            specs.append((key, nested, field(default_factory=nested)))
        else:
            specs.append((key, Optional[hint], None))
    return dataclasses.make_dataclass(name, specs)


DecodingOverrides = _overrides_of(AlignerDecodingConfig, "DecodingOverrides")
LongformOverrides = _overrides_of(LongformConfig, "LongformOverrides", {"enabled": Any})  # true, false or auto


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
    # aligner decoding over the model's own (configs/: strategy, greedy, beam, ...): decoding.strategy=beam
    decoding: DecodingOverrides = field(default_factory=DecodingOverrides)
    # aligner long-form over the model's own (docs/longform.md): longform.enabled=true longform.chunk_seconds=5
    longform: LongformOverrides = field(default_factory=LongformOverrides)
    use_lhotse: bool = (
        False  # NeMo's Lhotse dataloader for inference (default: the map-style one, whose bar has a total)
    )
    verbose: bool = False  # NeMo's logging (config dumps, per-call warnings) and its progress bar


def given_options(section: Any) -> dict[str, Any]:
    """The keys of an override section that were set (None and empty nested sections dropped), as plain dicts."""
    if dataclasses.is_dataclass(section):
        section = {f.name: getattr(section, f.name) for f in dataclasses.fields(section)}
    elif not isinstance(section, Mapping):
        from omegaconf import OmegaConf

        section = OmegaConf.to_container(section) if section is not None else {}
    out = {}
    for key, value in section.items():
        if dataclasses.is_dataclass(value) or isinstance(value, Mapping):
            value = given_options(value) or None
        if value is not None:
            out[key] = value
    return out


def load_model(cfg: TranscriptionConfig):
    """The model named by ``model_path`` or ``pretrained_name``, with the config's decoding and long-form set."""
    import torch
    from nemo.collections.asr.models import ASRModel

    from nemo_aligner_plugin import AlignerEncoderModel, checks

    if (cfg.model_path is None) == (cfg.pretrained_name is None):
        raise ValueError("Set exactly one of model_path=... or pretrained_name=...")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    with quiet_nemo(not cfg.verbose):
        if cfg.model_path is not None:
            if not Path(cfg.model_path).is_file():
                raise FileNotFoundError(f"model_path={cfg.model_path} does not exist")
            checks.check_nemo_archive(cfg.model_path)  # a clear error for a truncated/corrupt archive
            model = ASRModel.restore_from(cfg.model_path, map_location=device)  # the class saved in the archive
        else:
            model = AlignerEncoderModel.from_pretrained(cfg.pretrained_name, map_location=device)
        decoding = given_options(cfg.decoding)
        if decoding:
            set_decoding(model, decoding, verbose=cfg.verbose)
        longform = given_options(cfg.longform)
        if longform:
            set_longform(model, longform)
    return model.eval()


def _require_aligner(model, section: str) -> None:
    from nemo_aligner_plugin import AlignerEncoderModel

    if not isinstance(model, AlignerEncoderModel):
        raise ValueError(f"{section}=... takes aligner options; {type(model).__name__} is not an aligner")


def set_decoding(model, overrides: Mapping[str, Any], verbose: bool = False) -> None:
    """Merge ``overrides`` (nested: ``{"beam": {"beam_size": 4}}``) into the aligner's decoding config."""
    from omegaconf import OmegaConf

    _require_aligner(model, "decoding")
    merged = OmegaConf.merge(model.cfg.decoding, dict(overrides))
    model.change_decoding_strategy(OmegaConf.to_container(merged), verbose=verbose)


def set_longform(model, overrides: Mapping[str, Any]) -> None:
    """Merge ``overrides`` into the aligner's ``longform`` config section (checked before any audio is read)."""
    from omegaconf import OmegaConf, open_dict

    from nemo_aligner_plugin.longform import longform_config

    _require_aligner(model, "longform")
    section = {**OmegaConf.to_container(model.cfg.get("longform") or OmegaConf.create({})), **overrides}
    longform_config(section)  # a bad value is named here
    with open_dict(model.cfg):
        model.cfg.longform = section


def nbest_texts(hypothesis) -> Optional[list[str]]:
    """The N-best texts (best first) of an N-best result (NeMo ``NBestHypotheses`` or a plain list), else None."""
    if hasattr(hypothesis, "n_best_hypotheses"):
        hypothesis = hypothesis.n_best_hypotheses
    if isinstance(hypothesis, (list, tuple)):
        return [text_of(h) for h in hypothesis]
    return None


def text_of(hypothesis) -> str:
    """The best text of what ``transcribe`` returned for one file: a Hypothesis (aligner, RNN-T), a string (some
    CTC paths), or an N-best result (``return_best_hypothesis=false``), whose first entry is the best."""
    texts = nbest_texts(hypothesis)
    if texts is not None:
        return texts[0] if texts else ""
    return hypothesis if isinstance(hypothesis, str) else hypothesis.text


def prediction_entry(entry: dict, hypothesis) -> dict:
    """The manifest line with ``pred_text`` and, for N-best results, ``pred_text_nbest`` (best first)."""
    texts = nbest_texts(hypothesis)
    return {**entry, "pred_text": text_of(hypothesis), **({"pred_text_nbest": texts} if texts is not None else {})}


def _entries(cfg: TranscriptionConfig) -> tuple[list[dict], Path]:
    if (cfg.dataset_manifest is None) == (cfg.audio_dir is None):
        raise ValueError("Set exactly one of dataset_manifest=... or audio_dir=...")
    if cfg.dataset_manifest is not None:
        return read_manifest(Path(cfg.dataset_manifest)), Path(cfg.dataset_manifest)
    source = Path(cfg.audio_dir)
    files = sorted(source.rglob(f"*.{cfg.audio_type}"))
    if not files:
        raise FileNotFoundError(f"audio_dir={source} has no *.{cfg.audio_type} files")
    return [{"audio_filepath": str(p)} for p in files], source


def run(cfg: TranscriptionConfig, model=None) -> dict[str, Any]:
    """Transcribe and score as configured; ``model``: an already loaded model (then model_path is not read).

    Writes the predictions manifest and ``<output_filename>.metrics.json``; returns the metrics.
    """
    import torch

    from nemo_aligner_plugin import AlignerEncoderModel

    entries, source = _entries(cfg)
    output = Path(cfg.output_filename or f"{source.stem}_predictions.json")
    model = model if model is not None else load_model(cfg)
    start = time.perf_counter()
    with torch.inference_mode(), quiet_nemo(not cfg.verbose):
        # NeMo's CTC/RNN-T transcribe() takes no loader switch; they use their own default loader
        loader = {"use_lhotse": cfg.use_lhotse} if isinstance(model, AlignerEncoderModel) else {}
        hyps = model.transcribe(
            [e["audio_filepath"] for e in entries],
            batch_size=cfg.batch_size,
            num_workers=cfg.num_workers,
            verbose=cfg.verbose,
            **loader,
        )
    seconds = time.perf_counter() - start
    if isinstance(hyps, tuple):  # some NeMo versions return (best, all) for N-best decoding
        hyps = hyps[1] if len(hyps) == 2 and hyps[1] is not None else hyps[0]
    write_manifest(output, [prediction_entry(e, h) for e, h in zip(entries, hyps, strict=True)])

    result: dict[str, Any] = {
        "output_filename": str(output),
        "predictions": len(entries),
        "transcribe_seconds": seconds,
    }
    audio_seconds = sum(float(e.get("duration", 0.0)) for e in entries)
    if audio_seconds:
        result["rtfx"] = audio_seconds / seconds
    if all("text" in e for e in entries):
        result.update(score([e["text"] for e in entries], [text_of(h) for h in hyps]))
    Path(f"{output}.metrics.json").write_text(json.dumps(result, indent=2))
    return result


def summary_line(result: dict[str, Any]) -> str:
    """One line for the terminal: where the predictions went, and the scores when there were references."""
    scores = f": WER {result['wer']:.4f}, CER {result['cer']:.4f}" if "wer" in result else ""
    seconds = result["transcribe_seconds"]
    return f"wrote {result['predictions']} predictions to {result['output_filename']}{scores} ({seconds:.1f} s)"


def parse_longform_options(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings -> long-form options (YAML values: 5 -> int, true -> bool), checked up front.

    Raises ValueError naming the bad item; CLIs turn it into their usage error.
    """
    import yaml

    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--longform {item}: expected KEY=VALUE")
        options[key] = yaml.safe_load(value)
    if options:
        from nemo_aligner_plugin.longform import longform_config

        try:
            longform_config({**options, "enabled": True})
        except (TypeError, ValueError) as err:
            raise ValueError(f"--longform: {err}") from err
    return options
