"""Aligner decoding strategies: batched functions over tensors, chosen from one table (``strategies.STRATEGIES``)."""

from nemo_aligner_plugin.decoding.beam import BeamConfig, beam_search, debias_log_probs
from nemo_aligner_plugin.decoding.greedy import GreedyBatchConfig, greedy_batch
from nemo_aligner_plugin.decoding.nonar import NonARGreedyConfig, nonar_greedy
from nemo_aligner_plugin.decoding.strategies import (
    STRATEGIES,
    AlignerDecodingConfig,
    Strategy,
    chunk_decoder,
    normalize_decoding_cfg,
    strategy_options,
)
from nemo_aligner_plugin.decoding.types import BatchedHyps, BeamHyps, DecoderState

__all__ = [
    "STRATEGIES",
    "AlignerDecodingConfig",
    "BatchedHyps",
    "BeamConfig",
    "BeamHyps",
    "DecoderState",
    "GreedyBatchConfig",
    "NonARGreedyConfig",
    "Strategy",
    "beam_search",
    "chunk_decoder",
    "debias_log_probs",
    "greedy_batch",
    "nonar_greedy",
    "normalize_decoding_cfg",
    "strategy_options",
]
