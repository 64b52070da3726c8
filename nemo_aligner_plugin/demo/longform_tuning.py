"""Choosing an aligner's long-form settings on a development set: WER of every combination of options.

Each setting transcribes the manifest with ``model.transcribe`` and the model's ``longform`` section enabled (audio
longer than ``chunk_seconds`` goes through long-form, the rest is decoded whole, as in deployment). Used by
recipes/tune_longform.py.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from typing import Any

from nemo_aligner_plugin.manifests import score
from nemo_aligner_plugin.transcribe_cli import set_longform, text_of

__all__ = ["GRID_KEYS", "build_grid", "check_grid", "longform_part", "sweep", "table"]

# grid key -> the longform option (or decoding.strategy) it sets, in the table's column order
GRID_KEYS = (
    "strategy",
    "mode",
    "boundary",
    "chunk_seconds",
    "pause_search_seconds",
    "chunk_features",
    "trim_pauses",
    "onset_lead_seconds",
    "split_margin",
    "split_min_seconds",
)


def build_grid(values: Mapping[str, Sequence[Any]]) -> list[dict]:
    """Every combination of ``values`` (one list per GRID_KEYS entry), without settings that mean the same.

    The pause search is capped at the chunk length, and without a split search (split_margin None) its minimum
    length means nothing: one row, not one per value.
    """
    grid = [dict(zip(GRID_KEYS, combo, strict=True)) for combo in itertools.product(*(values[k] for k in GRID_KEYS))]
    for g in grid:
        g["pause_search_seconds"] = min(g["pause_search_seconds"], g["chunk_seconds"])
        if g["split_margin"] is None:
            g["split_min_seconds"] = values["split_min_seconds"][0]
    return [g for i, g in enumerate(grid) if g not in grid[:i]]


def longform_part(setting: Mapping[str, Any]) -> dict:
    """A grid setting's ``longform`` keys (all but the decoding strategy)."""
    return {k: v for k, v in setting.items() if k != "strategy"}


def check_grid(grid: Sequence[Mapping[str, Any]]) -> None:
    """Raise ValueError naming the first bad value, before any model is loaded or audio decoded."""
    from nemo_aligner_plugin.decoding.strategies import normalize_decoding_cfg
    from nemo_aligner_plugin.longform import longform_config

    for g in grid:
        normalize_decoding_cfg({"strategy": g["strategy"]})
        longform_config({"enabled": True, **longform_part(g)})


def sweep(model: Any, entries: list[dict], grid: list[dict], batch_size: int) -> list[dict]:
    """WER/CER per setting of ``grid`` (each: strategy plus long-form keys); progress is printed per setting."""
    from omegaconf import OmegaConf

    files, references = [e["audio_filepath"] for e in entries], [e["text"] for e in entries]
    decoding = OmegaConf.to_container(model.cfg.decoding)
    rows = []
    for i, setting in enumerate(grid, 1):
        model.change_decoding_strategy({**decoding, "strategy": setting["strategy"]}, verbose=False)
        set_longform(model, {"enabled": True, **longform_part(setting)})
        start = time.time()
        hyps = model.transcribe(files, batch_size=batch_size, verbose=False)
        metrics = score(references, [text_of(h) for h in hyps])
        rows.append({**setting, "wer": metrics["wer"], "cer": metrics["cer"], "seconds": time.time() - start})
        print(f"[{i}/{len(grid)}] {setting}: WER {metrics['wer']:.4f} ({rows[-1]['seconds']:.0f} s)", flush=True)
    model.change_decoding_strategy(decoding, verbose=False)
    return rows


def table(rows: list[dict]) -> str:
    """Markdown, best WER first."""
    keys = [k for k in rows[0] if k not in ("wer", "cer", "seconds")]
    lines = ["| " + " | ".join(keys) + " | WER | CER |", "|" + "---|" * (len(keys) + 2)]
    for r in sorted(rows, key=lambda r: r["wer"]):
        lines.append("| " + " | ".join(str(r[k]) for k in keys) + f" | {r['wer']:.4f} | {r['cer']:.4f} |")
    return "\n".join(lines)
