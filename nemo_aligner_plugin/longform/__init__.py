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

from nemo_aligner_plugin.audio import load_audio
from nemo_aligner_plugin.config import BOUNDARIES, LONGFORM_ENABLED, LONGFORM_MODES, LongformConfig
from nemo_aligner_plugin.longform.cuts import chunk_cuts, chunk_spans, pause_cuts, speech_ends, split_candidates
from nemo_aligner_plugin.longform.decode import (
    ChunkedEncoding,
    chunk_scores,
    chunk_search,
    decode_chunked,
    decode_chunked_batch,
)
from nemo_aligner_plugin.longform.encoding import chunk_frames, encode_chunked, pre_encode
from nemo_aligner_plugin.longform.routing import (
    longform_items,
    routable_audio,
    routing_seconds,
    trained_seconds,
    transcribe_routed,
)
from nemo_aligner_plugin.longform.search import split_search
from nemo_aligner_plugin.longform.states import START_STATES
from nemo_aligner_plugin.longform.transcribe import longform_config, model_longform_config, transcribe_longform

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
