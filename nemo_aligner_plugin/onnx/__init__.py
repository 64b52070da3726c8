"""Deployment without PyTorch: an exported aligner folder, read by numpy and onnxruntime (docs/onnx.md).

``AlignerEncoderModel.export(dir)`` writes the folder (``export.py``, needs torch and NeMo); ``AlignerOnnx(dir)``
transcribes with numpy, onnxruntime, sentencepiece and soundfile only. CLI: ``python -m nemo_aligner_plugin.onnx
DIR a.wav ...``.
"""

from nemo_aligner_plugin.onnx.runtime import AlignerOnnx, OnnxTranscript

__all__ = ["AlignerOnnx", "OnnxTranscript"]
