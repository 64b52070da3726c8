"""Long-form inference by chunking (Stooke et al. 2024, sec. 4.4).

An aligner can only align up to roughly its training length, and full-context attention costs O(T^2) memory. So
features and the conv subsampling see the whole audio, the Conformer layers see chunks of subsampled frames, and
decoding runs chunk after chunk through the model's decoding strategy. Audio that fits one chunk gives exactly the
plain result. One concept per module:

- ``cuts``: where chunks end (``boundary``: fixed, pause, every_pause), pure numpy over loudness;
- ``encoding``: windowed conv subsampling and the chunked Conformer (``chunk_features``: each chunk alone);
- ``search``: the model-scored split search (``split_margin``);
- ``states``: what the prediction network knows at a chunk start (``mode``: prime, reset_only, carry_state);
- ``decode``: chunk-by-chunk decoding, batched across utterances, through ``decoding.STRATEGIES``;
- ``transcribe``: files or arrays -> text; ``routing``: what ``transcribe()`` sends here (``enabled``).
"""

from __future__ import annotations

import importlib

# Public name -> the module that defines it, imported on first use: ``cuts`` is plain numpy, and the torch-free
# ONNX runtime imports it without pulling torch in through the rest of this package.
_WHERE = {
    "load_audio": "nemo_aligner_plugin.audio",
    "BOUNDARIES": "nemo_aligner_plugin.config",
    "LONGFORM_ENABLED": "nemo_aligner_plugin.config",
    "LONGFORM_MODES": "nemo_aligner_plugin.config",
    "LongformConfig": "nemo_aligner_plugin.config",
    **dict.fromkeys(["chunk_cuts", "chunk_spans", "pause_cuts", "speech_ends", "split_candidates"], "cuts"),
    **dict.fromkeys(
        ["ChunkedEncoding", "chunk_scores", "chunk_search", "decode_chunked", "decode_chunked_batch"], "decode"
    ),
    **dict.fromkeys(["chunk_frames", "encode_chunked", "pre_encode"], "encoding"),
    **dict.fromkeys(
        ["longform_items", "routable_audio", "routing_seconds", "trained_seconds", "transcribe_routed"], "routing"
    ),
    "split_search": "search",
    "START_STATES": "states",
    **dict.fromkeys(["longform_config", "model_longform_config", "transcribe_longform"], "transcribe"),
}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'nemo_aligner_plugin.longform' has no attribute {name!r}")
    module = _WHERE[name] if "." in _WHERE[name] else f"{__name__}.{_WHERE[name]}"
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BOUNDARIES",
    "LONGFORM_ENABLED",
    "LONGFORM_MODES",
    "START_STATES",
    "ChunkedEncoding",
    "LongformConfig",
    "chunk_cuts",
    "chunk_frames",
    "chunk_scores",
    "chunk_search",
    "chunk_spans",
    "decode_chunked",
    "decode_chunked_batch",
    "encode_chunked",
    "load_audio",
    "longform_config",
    "longform_items",
    "model_longform_config",
    "pause_cuts",
    "pre_encode",
    "routable_audio",
    "routing_seconds",
    "speech_ends",
    "split_candidates",
    "split_search",
    "trained_seconds",
    "transcribe_longform",
    "transcribe_routed",
]

assert set(__all__) == set(_WHERE)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
