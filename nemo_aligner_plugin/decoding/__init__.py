"""Aligner decoding strategies: batched functions over tensors, chosen from one table."""

from nemo_aligner_plugin.decoding.greedy import BatchedHyps, DecoderState, GreedyBatchConfig, greedy_batch
from nemo_aligner_plugin.decoding.strategies import STRATEGIES, AlignerDecodingConfig, normalize_decoding_cfg

__all__ = [
    "STRATEGIES",
    "AlignerDecodingConfig",
    "BatchedHyps",
    "DecoderState",
    "GreedyBatchConfig",
    "greedy_batch",
    "normalize_decoding_cfg",
]
