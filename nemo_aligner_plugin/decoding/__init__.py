"""Aligner decoding strategies: batched functions over tensors, chosen from one table."""

from nemo_aligner_plugin.decoding.beam import BeamConfig, BeamHyps, beam_search, debias_log_probs
from nemo_aligner_plugin.decoding.greedy import BatchedHyps, DecoderState, GreedyBatchConfig, greedy_batch
from nemo_aligner_plugin.decoding.strategies import STRATEGIES, AlignerDecodingConfig, normalize_decoding_cfg

__all__ = [
    "STRATEGIES",
    "AlignerDecodingConfig",
    "BatchedHyps",
    "BeamConfig",
    "BeamHyps",
    "DecoderState",
    "GreedyBatchConfig",
    "beam_search",
    "debias_log_probs",
    "greedy_batch",
    "normalize_decoding_cfg",
]
