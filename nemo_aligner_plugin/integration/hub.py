"""Hugging Face-layout export: a folder a user can push to a hub as is (``huggingface-cli upload``).

NeMo's ``from_pretrained("org/name")`` downloads ``name.nemo`` from the repo ``org/name``; so the folder holds
``<name>.nemo``, a model card (``README.md``, with the YAML front matter the hub reads) and ``model_config.yaml``
for reading the configuration without unpacking the archive. The card is built from the model's config, so it
cannot drift from the weights it describes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

import yaml
from omegaconf import DictConfig, OmegaConf

__all__ = ["config_summary", "model_card", "save_pretrained"]


def _get(cfg: DictConfig, dotted: str, default: Any = None) -> Any:
    value = OmegaConf.select(cfg, dotted, default=default)
    return default if value is None else value


def config_summary(cfg: DictConfig, num_parameters: Optional[int] = None) -> list[tuple[str, str]]:
    """(field, value) rows describing the architecture and training objective, read from the model config."""
    enc = "encoder"
    subsampling = int(_get(cfg, f"{enc}.subsampling_factor", 1))
    stride_s = float(_get(cfg, "preprocessor.window_stride", 0.01))
    rows = [
        ("model class", "nemo_aligner_plugin.AlignerEncoderModel"),
        ("aligner type", str(_get(cfg, "aligner_type", "ar"))),
        ("encoder", f"{str(_get(cfg, f'{enc}._target_', '?')).rsplit('.', 1)[-1]}, "
                    f"{_get(cfg, f'{enc}.n_layers', '?')} layers, d_model {_get(cfg, f'{enc}.d_model', '?')}, "
                    f"{_get(cfg, f'{enc}.n_heads', '?')} heads, {_get(cfg, f'{enc}.self_attention_model', '?')} "
                    f"attention, context {list(_get(cfg, f'{enc}.att_context_size', [-1, -1]))}"),
        ("subsampling", f"{_get(cfg, f'{enc}.subsampling', '?')} x{subsampling} "
                        f"({subsampling * stride_s * 1000:.0f} ms per encoder frame)"),
        ("features", f"{_get(cfg, 'preprocessor.features', '?')} mel bins, {_get(cfg, 'sample_rate', '?')} Hz"),
        ("prediction network", f"LSTM {_get(cfg, 'decoder.prednet.pred_rnn_layers', '?')}x"
                               f"{_get(cfg, 'decoder.prednet.pred_hidden', '?')}"),
        ("joint", f"hidden {_get(cfg, 'joint.jointnet.joint_hidden', '?')}"),
        ("tokenizer", f"{_get(cfg, 'tokenizer.type', '?')}, {_get(cfg, 'joint.num_classes', '?')} tokens + EOS"),
        ("loss", f"frame-wise cross-entropy, label smoothing {_get(cfg, 'loss.label_smoothing', 0.0)} "
                 f"({_get(cfg, 'loss.smoothing_mode', 'uniform')})"),
        ("auxiliary CTC", f"weight {_get(cfg, 'aux_ctc.weight', 0.0)} at encoder layer {_get(cfg, 'aux_ctc.layer')}"
         if float(_get(cfg, "aux_ctc.weight", 0.0)) > 0 else "off"),
        ("default decoding", str(_get(cfg, "decoding.strategy", "greedy_batch"))),
        ("long-form inference", f"on, {_get(cfg, 'longform.chunk_seconds')} s chunks"
         if _get(cfg, "longform.enabled", False) else "off (model.longform.enabled)"),
        ("plugin version", str(_get(cfg, "nemo_aligner_plugin_version", "?"))),
    ]  # fmt: skip
    if num_parameters is not None:
        rows.insert(1, ("parameters", f"{num_parameters / 1e6:.1f}M"))
    return rows


def model_card(
    cfg: DictConfig,
    repo_id: str,
    num_parameters: Optional[int] = None,
    metrics: Optional[dict[str, float]] = None,
    description: Optional[str] = None,
    license: str = "cc-by-4.0",
) -> str:
    """Markdown model card with hub front matter; ``metrics`` ({"test WER": 0.05, ...}) become a results table."""
    front = {
        "library_name": "nemo",
        "license": license,
        "pipeline_tag": "automatic-speech-recognition",
        "tags": ["automatic-speech-recognition", "NeMo", "pytorch", "aligner-encoder", "nemo_aligner_plugin"],
    }
    name = repo_id.split("/")[-1]
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).rstrip(),
        "---",
        "",
        f"# {name}",
        "",
        description
        or "An Aligner-Encoder speech recognizer (Stooke et al., NeurIPS 2024): a full-context Conformer whose "
        "self-attention moves token i to output frame i, and a small LSTM prediction network + joint that emits "
        "one token per frame until EOS, trained with frame-wise cross-entropy.",
        "",
        "## Use",
        "",
        "```bash",
        "pip install <nemo_aligner_plugin source or wheel>   # the plugin; it brings nemo_toolkit[asr]",
        "```",
        "```python",
        "from nemo_aligner_plugin import AlignerEncoderModel",
        "",
        f'model = AlignerEncoderModel.from_pretrained("{repo_id}")',
        'print(model.transcribe(["audio.wav"])[0].text)',
        "```",
        "NeMo's `ASRModel.from_pretrained` / `restore_from` work too once `nemo_aligner_plugin` is imported.",
        "",
        "## Configuration",
        "",
        "| field | value |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in config_summary(cfg, num_parameters)),
        "",
        "The full configuration is in `model_config.yaml` (and inside the `.nemo` archive).",
        "",
        "Method: A. Stooke et al., *Aligner-Encoders: Self-Attention Transformers Can Be Self-Transducers*,",
        "NeurIPS 2024.",
    ]
    if metrics:
        lines += ["", "## Results", "", "| metric | value |", "|---|---|"]
        lines += [f"| {key} | {value:.4g} |" if isinstance(value, float) else f"| {key} | {value} |"
                  for key, value in metrics.items()]  # fmt: skip
    return "\n".join(lines) + "\n"


def save_pretrained(
    model,
    save_directory: str | os.PathLike,
    repo_id: Optional[str] = None,
    metrics: Optional[dict[str, float]] = None,
    description: Optional[str] = None,
    license: str = "cc-by-4.0",
    overwrite: bool = False,
) -> Path:
    """Write ``<name>.nemo``, ``README.md`` and ``model_config.yaml`` to ``save_directory``; returns the folder.

    ``repo_id`` ("org/name") names the .nemo file as NeMo's ``from_pretrained`` expects it; by default the
    folder's name is used. An existing non-empty folder is refused unless ``overwrite``; the files are written
    to a temporary folder next to it first, so a failure never leaves a half-written export.
    """
    target = Path(save_directory).expanduser().resolve()
    repo_id = repo_id or target.name
    name = repo_id.split("/")[-1]
    if not name or len(repo_id.split("/")) > 2:
        raise ValueError(f"repo_id={repo_id!r}: expected 'name' or 'org/name'")
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise FileExistsError(f"{target} is not empty; pass overwrite=True to replace the export there")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_to(str(staging / f"{name}.nemo"))
        cfg = model.cfg
        (staging / "model_config.yaml").write_text(OmegaConf.to_yaml(cfg))
        num_parameters = sum(p.numel() for p in model.parameters())
        card = model_card(cfg, repo_id, num_parameters, metrics, description, license)
        (staging / "README.md").write_text(card, encoding="utf-8")
        if target.is_dir():  # replace only the files we write; other files in the folder are kept
            for item in staging.iterdir():
                os.replace(item, target / item.name)
        else:
            os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
