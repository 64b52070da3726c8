"""The exported folder's layout and its ``config.json``: written by ``export.py``, checked by the runtime.

Torch-free (standard library only), so the runtime can check a folder before it loads anything. A folder that
cannot work fails here with an error naming the file at fault, never deep inside onnxruntime.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = [
    "CONFIG_NAME",
    "FILES",
    "FORMAT",
    "FORMAT_VERSION",
    "ONNX_OPSET",
    "QUANTIZATIONS",
    "read_config",
    "write_config",
]

FORMAT = "nemo_aligner_plugin.onnx"
FORMAT_VERSION = 1  # bump when a reader of version N could misread a folder; readers refuse newer versions
ONNX_OPSET = 17  # NeMo's default export opset; onnxruntime >= 1.14 runs it
CONFIG_NAME = "config.json"
FILES = {  # role -> file name inside the folder
    "encoder": "encoder.onnx",
    "decoder_joint": "decoder_joint.onnx",
    "tokenizer": "tokenizer.model",
    "features": "features.npz",
}
QUANTIZATIONS = (None, "int8")
# Keys every config.json must carry, and their types: a folder missing one was not written by export().
_REQUIRED = {
    "format": str,
    "format_version": int,
    "plugin_version": str,
    "opset": int,
    "sample_rate": int,
    "features": dict,
    "subsampling_factor": int,
    "frame_seconds": float,
    "eos_id": int,
    "vocab_size": int,
    "pred_rnn_layers": int,
    "pred_hidden": int,
    "encoder_dim": int,
    "reverse_audio": bool,
    "max_tokens": (int, type(None)),
    "longform": dict,
    "quantization": (str, type(None)),
    "files": dict,
}


def write_config(folder: Path, config: dict[str, Any]) -> Path:
    """Write ``config.json`` after checking it the way the runtime will (a bad export fails at export time)."""
    _check(config, folder / CONFIG_NAME)
    path = folder / CONFIG_NAME
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return path


def read_config(folder: str | Path) -> dict[str, Any]:
    """The checked config of an exported folder; every file it names must exist.

    Raises:
        FileNotFoundError: the folder, its config.json or a file it names is missing (the message names it).
        ValueError: config.json is not this format, comes from a newer format version, or has a bad field.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (an export from AlignerEncoderModel.export(dir))")
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; {folder} is not a folder written by AlignerEncoderModel.export")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    _check(config, path)
    for role, name in config["files"].items():
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name}: missing ({role}, listed in {path})")
    return config


def _check(config: Any, path: Path) -> None:
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f'{path}: not an aligner ONNX config (expected "format": "{FORMAT}")')
    version = config.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise ValueError(
            f"{path}: format_version {version} was written by nemo_aligner_plugin "
            f"{config.get('plugin_version', '?')}, newer than this runtime reads (format_version {FORMAT_VERSION}); "
            "upgrade nemo_aligner_plugin or export the model again with this version"
        )
    for key, kind in _REQUIRED.items():
        if key not in config:
            raise ValueError(f"{path}: missing field {key!r}")
        value = config[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(f"{path}: field {key!r} = {value!r} has the wrong type")
    if config["quantization"] not in QUANTIZATIONS:
        raise ValueError(f"{path}: quantization {config['quantization']!r}; expected one of {QUANTIZATIONS}")
    longform_keys = {"route_above_seconds", "boundary", "size_frames", "search_frames", "width_frames", "min_frames"}
    missing = (longform_keys | {"lead_feat_frames"}) - set(config["longform"])
    if missing:
        raise ValueError(f"{path}: field 'longform' lacks {sorted(missing)}")
    if config["longform"]["boundary"] not in ("fixed", "pause", "every_pause"):
        raise ValueError(f"{path}: longform boundary {config['longform']['boundary']!r} is not fixed/pause/every_pause")
    missing = set(FILES) - set(config["files"])
    if missing:
        raise ValueError(f"{path}: field 'files' lacks {sorted(missing)}")
    if config["eos_id"] != config["vocab_size"]:
        raise ValueError(f"{path}: eos_id must equal vocab_size (EOS is the slot after the vocabulary)")
