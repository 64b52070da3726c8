"""Aligner-Encoder speech recognition (Stooke et al., NeurIPS 2024) as a NeMo plugin.

Importing the package registers its class prefix with NeMo's target allowlist, so ``.nemo`` files
of this plugin restore through ``ASRModel.restore_from`` and NeMo's transcription utilities.

Nothing heavy is imported here: the model and loss load on first use, and registration waits until NeMo loads.
``nemo_aligner_plugin.onnx`` (the exported model's runtime) thus works where torch and NeMo are not installed.
"""

from __future__ import annotations

import importlib

from nemo_aligner_plugin.integration.registration import register_when_nemo_loads

__version__ = "0.1.0"
__all__ = ["AlignerEncoderModel", "AlignerLoss", "from_asr_model", "register_pretrained_model", "__version__"]

register_when_nemo_loads()

_LAZY = {  # public name -> (module, attribute)
    "AlignerEncoderModel": ("nemo_aligner_plugin.model", "AlignerEncoderModel"),
    "AlignerLoss": ("nemo_aligner_plugin.loss", "AlignerLoss"),
    "register_pretrained_model": ("nemo_aligner_plugin.integration.catalog", "register_pretrained_model"),
    # an aligner from a NeMo ASR model (.nemo, name or instance)
    "from_asr_model": ("nemo_aligner_plugin.model", "AlignerEncoderModel.from_asr_model"),
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'nemo_aligner_plugin' has no attribute {name!r}")
    module, attribute = _LAZY[name]
    value = importlib.import_module(module)
    for part in attribute.split("."):
        value = getattr(value, part)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
