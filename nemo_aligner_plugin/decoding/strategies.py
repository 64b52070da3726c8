"""The table of aligner decoding strategies and the config that selects one.

B: batch size, T: encoder frames, D: encoder dim.

Every strategy is one ``Strategy`` row: its options dataclass, its function, and what callers that decode
piecewise (long-form) need to know of it. The function takes
``(decoder, joint, encoder_out (B, T, D), encoder_out_lens (B,), eos_id, cfg, state)`` and returns
``(BatchedHyps or BeamHyps, DecoderState or None)``. Adding a strategy means adding one row here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from omegaconf import DictConfig, OmegaConf

from nemo_aligner_plugin.decoding.beam import BeamConfig, beam_search
from nemo_aligner_plugin.decoding.chunkwise import ChunkwiseGreedyConfig, chunkwise_greedy
from nemo_aligner_plugin.decoding.greedy import GreedyBatchConfig, greedy_batch
from nemo_aligner_plugin.decoding.nonar import NonARGreedyConfig, nonar_greedy
from nemo_aligner_plugin.decoding.types import BatchedHyps, BeamHyps, DecoderState

__all__ = [
    "STRATEGIES",
    "Strategy",
    "AlignerDecodingConfig",
    "ChunkDecoder",
    "chunk_decoder",
    "map_greedy_request",
    "normalize_decoding_cfg",
    "strategy_options",
]


def _as_is(hyps: BatchedHyps) -> BatchedHyps:
    return hyps


@dataclass(frozen=True)
class Strategy:
    """One decoding strategy."""

    cfg_key: str  # where this strategy's options live in the decoding config
    cfg_cls: type  # dataclass of those options
    fn: Callable  # the batched decoding function (signature in the module docstring)
    # True: reads model.decoder + model.joint, starts from a DecoderState and returns the one it ends in;
    # False: reads model.nonar_head alone (decoder None), no state: pieces of an utterance decode independently
    uses_prediction_net: bool = True
    best: Callable[[Any], BatchedHyps] = _as_is  # fn's result -> the best hypothesis of each utterance
    # options for decoding one long-form chunk: a per-utterance token cap has no per-chunk meaning, and a chunk
    # continues from one hypothesis
    chunk_overrides: Mapping[str, Any] = field(default_factory=lambda: {"max_tokens": None})

    def modules(self, model: torch.nn.Module) -> tuple[Optional[torch.nn.Module], torch.nn.Module]:
        """(decoder, joint) the function reads from an aligner model."""
        return (model.decoder, model.joint) if self.uses_prediction_net else (None, model.nonar_head)


STRATEGIES: dict[str, Strategy] = {
    "greedy_batch": Strategy("greedy", GreedyBatchConfig, greedy_batch),
    "beam": Strategy(
        "beam",
        BeamConfig,
        beam_search,
        best=BeamHyps.best,
        chunk_overrides={"max_tokens": None, "return_best_hypothesis": True},
    ),
    "nonar_greedy": Strategy("nonar", NonARGreedyConfig, nonar_greedy, uses_prediction_net=False),
    "chunkwise_greedy": Strategy("chunkwise", ChunkwiseGreedyConfig, chunkwise_greedy),
}

# NeMo RNN-T strategy names (what transcribe_speech.py and RNN-T recipes pass) -> aligner strategy.
RNNT_BEAM_STRATEGIES = ("beam", "tsd", "alsd", "maes", "malsd_batch", "maes_batch")
RNNT_STRATEGY_ALIASES = {"greedy": "greedy_batch", "greedy_batch": "greedy_batch"} | dict.fromkeys(
    RNNT_BEAM_STRATEGIES, "beam"
)
# RNN-T beam options that keep their meaning for the aligner; the rest (score_norm, maes_*, LM fusion, ...) are
# specific to blank lattices or not implemented, and ignored.
RNNT_BEAM_KEYS = ("beam_size", "return_best_hypothesis")


@dataclass
class AlignerDecodingConfig:
    strategy: str = "greedy_batch"  # key of STRATEGIES
    compute_timestamps: bool = False  # token/word/segment times from the aligning layer's self-attention
    timestamps_layer: Optional[int] = None  # encoder layer used for timestamps; None: find the aligning layer per batch
    greedy: GreedyBatchConfig = field(default_factory=GreedyBatchConfig)  # options of greedy_batch
    beam: BeamConfig = field(default_factory=BeamConfig)  # options of beam
    nonar: NonARGreedyConfig = field(default_factory=NonARGreedyConfig)  # options of nonar_greedy
    chunkwise: ChunkwiseGreedyConfig = field(default_factory=ChunkwiseGreedyConfig)  # options of chunkwise_greedy


def _is_aligner_cfg(cfg: Mapping[str, Any]) -> bool:
    return set(cfg.keys()) <= {f.name for f in AlignerDecodingConfig.__dataclass_fields__.values()}


def normalize_decoding_cfg(cfg: Optional[DictConfig | Mapping[str, Any]]) -> DictConfig:
    """Accept an aligner decoding config or a NeMo RNN-T one and return a validated aligner config.

    RNN-T configs are what NeMo's own scripts pass to ``change_decoding_strategy``; we keep aligner
    decoding and map their strategy family (every RNN-T beam search -> ``beam``, keeping ``beam.beam_size``
    and ``beam.return_best_hypothesis``), ignoring RNN-T-only options (blank handling, fused batch, CUDA
    graphs, score_norm, MAES/ALSD knobs), which have no aligner meaning. Strategy options are validated here,
    so a bad value is refused before the model's decoding changes.
    """
    base = OmegaConf.structured(AlignerDecodingConfig)
    if cfg is None:
        return base
    plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    strategy = plain.get("strategy", "greedy_batch")
    strategy = RNNT_STRATEGY_ALIASES.get(strategy, strategy)
    if _is_aligner_cfg(plain):
        merged = OmegaConf.merge(base, plain, {"strategy": strategy})
    else:
        merged = OmegaConf.merge(
            base, {"strategy": strategy, "compute_timestamps": bool(plain.get("compute_timestamps"))}
        )
        rnnt_beam = plain.get("beam") or {}
        if strategy == "beam" and isinstance(rnnt_beam, Mapping):
            merged = OmegaConf.merge(
                merged, {"beam": {k: rnnt_beam[k] for k in RNNT_BEAM_KEYS if rnnt_beam.get(k) is not None}}
            )
    if merged.strategy not in STRATEGIES:
        raise ValueError(f"decoding.strategy={merged.strategy!r} is unknown; choose one of {sorted(STRATEGIES)}")
    OmegaConf.to_object(merged[STRATEGIES[merged.strategy].cfg_key])  # runs the dataclass's own checks
    return merged


def map_greedy_request(cfg: DictConfig, strategy: str, aligner_type: str) -> None:
    """For a model with one decoder (``strategy``): greedy requests (NeMo's RNN-T default among them) map to it, in
    place, with their ``max_tokens``; any other strategy is refused."""
    if cfg.strategy == "greedy_batch":
        cfg.strategy = strategy
        cfg[STRATEGIES[strategy].cfg_key].max_tokens = cfg.greedy.max_tokens
    elif cfg.strategy != strategy:
        raise ValueError(
            f"decoding.strategy={cfg.strategy!r}: a model with aligner_type={aligner_type} decodes with {strategy} "
            "only (greedy_batch maps to it)"
        )


def strategy_options(decoding_cfg: DictConfig | Mapping[str, Any]) -> Any:
    """The options dataclass of the config's strategy (e.g. ``BeamConfig``), defaults filled in and checked."""
    strategy = STRATEGIES[decoding_cfg["strategy"]]
    return OmegaConf.to_object(
        OmegaConf.merge(OmegaConf.structured(strategy.cfg_cls), decoding_cfg.get(strategy.cfg_key) or {})
    )


# (encoder_out (B, T, D), encoder_out_lens (B,), start state) -> (best hypothesis per row, end state)
ChunkDecoder = Callable[
    [torch.Tensor, torch.Tensor, Optional[DecoderState]], tuple[BatchedHyps, Optional[DecoderState]]
]


def chunk_decoder(model: torch.nn.Module, decoding_cfg: DictConfig | Mapping[str, Any]) -> ChunkDecoder:
    """The config's strategy as ``(encoder_out (B, T, D), encoder_out_lens (B,), start state) -> (best hyps, end
    state)`` for decoding pieces of utterances: the row's ``chunk_overrides`` applied, the best hypothesis kept (a
    beam search's next piece continues from it, so beams do not cross a piece boundary)."""
    strategy = STRATEGIES[decoding_cfg["strategy"]]
    options = dataclasses.replace(strategy_options(decoding_cfg), **strategy.chunk_overrides)
    decoder, joint = strategy.modules(model)

    def decode(encoder_out: torch.Tensor, encoder_out_lens: torch.Tensor, state: Optional[DecoderState]):
        hyps, end_state = strategy.fn(decoder, joint, encoder_out, encoder_out_lens, model.eos_id, options, state)
        return strategy.best(hyps), end_state

    return decode
