"""The 0.1 import path of the fine-tuning API, kept working: it moved to ``nemo_aligner_plugin.integration.finetune``.

``from_asr_model`` here is ``AlignerEncoderModel.from_asr_model`` (the integration function takes the model class).
"""

import warnings

from nemo_aligner_plugin.integration.finetune import (
    ENCODER_PREFIXES,
    HEAD_DEFAULTS,
    EncoderFreezer,
    aligner_config_from_source,
    check_partial_state_dict,
    export_sentencepiece_tokenizer,
    load_source_model,
)
from nemo_aligner_plugin.model import AlignerEncoderModel

__all__ = [
    "ENCODER_PREFIXES",
    "HEAD_DEFAULTS",
    "EncoderFreezer",
    "aligner_config_from_source",
    "check_partial_state_dict",
    "export_sentencepiece_tokenizer",
    "from_asr_model",
    "load_source_model",
]

from_asr_model = AlignerEncoderModel.from_asr_model

warnings.warn(
    "nemo_aligner_plugin.finetune is deprecated: use nemo_aligner_plugin.from_asr_model and "
    "nemo_aligner_plugin.integration.finetune",
    DeprecationWarning,
    stacklevel=2,
)
