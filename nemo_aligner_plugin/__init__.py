"""Aligner-Encoder speech recognition (Stooke et al., NeurIPS 2024) as a NeMo plugin.

Importing the package registers its class prefix with NeMo's target allowlist, so ``.nemo`` files
of this plugin restore through ``ASRModel.restore_from`` and NeMo's transcription utilities.
"""

from nemo_aligner_plugin.integration.registration import register_with_nemo

register_with_nemo()

from nemo_aligner_plugin.integration.catalog import register_pretrained_model  # noqa: E402
from nemo_aligner_plugin.loss import AlignerLoss  # noqa: E402
from nemo_aligner_plugin.model import AlignerEncoderModel  # noqa: E402

from_asr_model = AlignerEncoderModel.from_asr_model  # an aligner from a NeMo ASR model (.nemo, name or instance)

__version__ = "0.1.0"
__all__ = ["AlignerEncoderModel", "AlignerLoss", "from_asr_model", "register_pretrained_model", "__version__"]
