"""The Chunkwise Aligner: a streaming Aligner-Encoder (``aligner_type: chunkwise``, docs/streaming.md).

The encoder attends within chunks of C frames plus a left context (NeMo's cache-aware ``chunked_limited``
attention); each chunk's labels are read off its leftmost frames, then an end-of-chunk (EOC) decision moves on.
Names load on first use, so importing the package costs nothing.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "StreamingTranscriber": "transcriber",
    "Emission": "transcriber",
    "StreamingFeatures": "features",
    "EncoderStream": "encoder_stream",
    "ChunkwiseLoss": "loss",
    "lattice_log_probs": "loss",
    "chunkwise_log_likelihood": "lattice",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'nemo_aligner_plugin.chunkwise' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
