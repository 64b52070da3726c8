"""The table of aligner decoding strategies and the config that selects one.

Every strategy is ``name -> (config dataclass, function)``; the function takes
``(decoder, joint, encoder_out (B, T, D), encoder_out_lens (B,), eos_id, cfg)`` and returns
``(BatchedHyps or BeamHyps, DecoderState)``. Adding a strategy means adding one row here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional

from omegaconf import DictConfig, OmegaConf

from nemo_aligner_plugin.decoding.beam import BeamConfig, beam_search
from nemo_aligner_plugin.decoding.greedy import GreedyBatchConfig, greedy_batch
from nemo_aligner_plugin.decoding.nonar import NonARGreedyConfig, nonar_greedy

__all__ = ["STRATEGIES", "Strategy", "AlignerDecodingConfig", "normalize_decoding_cfg", "strategy_options"]


class Strategy(NamedTuple):
    cfg_key: str  # where this strategy's options live in the decoding config
    cfg_cls: type  # dataclass of those options
    fn: Callable  # the batched decoding function


STRATEGIES: dict[str, Strategy] = {
    "greedy_batch": Strategy("greedy", GreedyBatchConfig, greedy_batch),
    "beam": Strategy("beam", BeamConfig, beam_search),
    "nonar_greedy": Strategy("nonar", NonARGreedyConfig, nonar_greedy),  # reads a NonARHead, no prediction net
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


def strategy_options(decoding_cfg: DictConfig | Mapping[str, Any]) -> Any:
    """The options dataclass of the config's strategy (e.g. ``BeamConfig``), defaults filled in and checked."""
    strategy = STRATEGIES[decoding_cfg["strategy"]]
    return OmegaConf.to_object(
        OmegaConf.merge(OmegaConf.structured(strategy.cfg_cls), decoding_cfg.get(strategy.cfg_key) or {})
    )
