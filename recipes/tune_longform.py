#!/usr/bin/env python3
"""Choose an aligner's long-form settings on a development set: WER of every combination of options.

    python recipes/tune_longform.py --model m.nemo --manifest <corpus>/dev_long_manifest.json \
        --strategies greedy_batch beam --modes prime reset_only --chunk-seconds 4.5 5.5 --pause-search-seconds 2.5

Each combination transcribes the manifest with ``model.transcribe`` and the model's ``longform`` section enabled
(audio longer than ``chunk_seconds`` goes through long-form, the rest is decoded whole, as in deployment), and is
scored with jiwer. Tune on a dev split (the demo's ``dev_long``) and score the test split once with the winner;
tuning on test would make its number a best case. Options: docs/longform.md.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path


def _margin(value: str) -> float | None:
    """--split-margin value: nats, or off/null/none for no split search."""
    return None if value.lower() in ("off", "null", "none") else float(value)


def _bool(value: str) -> bool:
    return value == "true"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="aligner .nemo")
    p.add_argument("--manifest", required=True, type=Path, help="NeMo manifest with `text` (a dev split)")
    # (flag, type, default, help): one value list per option of the grid
    for flag, kind, default, meaning in (
        ("strategies", str, ["greedy_batch", "beam"], "decoding.strategy values"),
        ("modes", str, ["prime"], "longform.mode values"),
        ("boundaries", str, ["pause"], "longform.boundary values"),
        ("chunk_seconds", float, [4.5], "longform.chunk_seconds values"),
        ("pause_search_seconds", float, [2.5], "longform.pause_search_seconds values"),
        ("onset_lead_seconds", float, [0.0], "every_pause: chunks start this long before the onset"),
        ("split_margin", _margin, [None], "nats, or off: chunks split where two halves read better"),
        ("split_min_seconds", float, [2.0], "chunks shorter than this are not split"),
    ):
        p.add_argument("--" + flag.replace("_", "-"), nargs="+", type=kind, default=default, help=meaning)
    for flag, meaning in (
        ("chunk_features", "each chunk's audio encoded as an utterance of its own"),
        ("trim_pauses", "each chunk's trailing pause dropped"),
    ):
        p.add_argument(
            "--" + flag.replace("_", "-"),
            nargs="+",
            choices=["false", "true"],
            default=["false"],
            help=f"longform.{flag} values (true: {meaning})",
        )
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out", type=Path, help="also write the rows as JSON here")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    a = parse_args(argv)
    from nemo_aligner_plugin import AlignerEncoderModel
    from nemo_aligner_plugin.demo.longform_tuning import build_grid, check_grid, sweep, table
    from nemo_aligner_plugin.manifests import read_manifest
    from nemo_aligner_plugin.transcribe_cli import TranscriptionConfig, load_model

    values = {
        "strategy": a.strategies,
        "mode": a.modes,
        "boundary": a.boundaries,
        "chunk_seconds": a.chunk_seconds,
        "pause_search_seconds": a.pause_search_seconds,
        "chunk_features": [_bool(v) for v in a.chunk_features],
        "trim_pauses": [_bool(v) for v in a.trim_pauses],
        "onset_lead_seconds": a.onset_lead_seconds,
        "split_margin": a.split_margin,
        "split_min_seconds": a.split_min_seconds,
    }
    grid = build_grid(values)
    try:
        check_grid(grid)  # bad values are named before the model is loaded or any audio decoded
        entries = read_manifest(a.manifest, required=("audio_filepath", "text"))
        model = load_model(TranscriptionConfig(model_path=a.model))
        if not isinstance(model, AlignerEncoderModel):
            raise ValueError(f"--model {a.model}: {type(model).__name__} is not an aligner (long-form is aligner-only)")
        rows = sweep(model, entries, grid, a.batch_size)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}") from err
    print(f"\n{a.manifest} ({len(entries)} utterances), model {a.model}:\n\n{table(rows)}")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
