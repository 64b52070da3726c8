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
import itertools
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transcribe_aligner import TranscriptionConfig, load_model, read_manifest, score, set_longform, text_of  # noqa: E402

from nemo_aligner_plugin import AlignerEncoderModel  # noqa: E402
from nemo_aligner_plugin.decoding.strategies import normalize_decoding_cfg  # noqa: E402
from nemo_aligner_plugin.longform import longform_config  # noqa: E402


def longform_part(setting: dict) -> dict:
    """A grid setting's ``longform`` keys (all but the decoding strategy)."""
    return {k: v for k, v in setting.items() if k != "strategy"}


def sweep(model, entries: list[dict], grid: list[dict], batch_size: int) -> list[dict]:
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


def _margin(value: str) -> float | None:
    """--split-margin value: nats, or off/null/none for no split search."""
    return None if value.lower() in ("off", "null", "none") else float(value)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="aligner .nemo")
    p.add_argument("--manifest", required=True, type=Path, help="NeMo manifest with `text` (a dev split)")
    p.add_argument("--strategies", nargs="+", default=["greedy_batch", "beam"], help="decoding.strategy values")
    p.add_argument("--modes", nargs="+", default=["prime"], help="longform.mode values")
    p.add_argument("--boundaries", nargs="+", default=["pause"], help="longform.boundary values")
    p.add_argument("--chunk-seconds", nargs="+", type=float, default=[4.5], help="longform.chunk_seconds values")
    p.add_argument(
        "--pause-search-seconds", nargs="+", type=float, default=[2.5], help="longform.pause_search_seconds values"
    )
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
    for flag, kind, default, meaning in (
        ("onset_lead_seconds", float, 0.0, "every_pause: chunks start this long before the onset"),
        ("split_margin", _margin, None, "nats, or off: chunks split where two halves read better"),
        ("split_min_seconds", float, 2.0, "chunks shorter than this are not split"),
    ):
        p.add_argument(
            "--" + flag.replace("_", "-"),
            nargs="+",
            type=kind,
            default=[default],
            help=f"longform.{flag} values ({meaning})",
        )
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out", type=Path, help="also write the rows as JSON here")
    a = p.parse_args(argv)

    grid = [
        {
            "strategy": s,
            "mode": m,
            "boundary": b,
            "chunk_seconds": c,
            "pause_search_seconds": min(w, c),
            "chunk_features": f == "true",
            "trim_pauses": t == "true",
            "onset_lead_seconds": lead,
            "split_margin": margin,
            "split_min_seconds": shortest,
        }
        for s, m, b, c, w, f, t, lead, margin, shortest in itertools.product(
            a.strategies,
            a.modes,
            a.boundaries,
            a.chunk_seconds,
            a.pause_search_seconds,
            a.chunk_features,
            a.trim_pauses,
            a.onset_lead_seconds,
            a.split_margin,
            a.split_min_seconds,
        )
    ]
    for g in grid:  # without a split search its minimum length means nothing: one row, not one per value
        g["split_min_seconds"] = g["split_min_seconds"] if g["split_margin"] is not None else a.split_min_seconds[0]
    grid = [g for i, g in enumerate(grid) if g not in grid[:i]]  # search values capped to the same chunk
    try:
        for g in grid:  # bad values are named before the model is loaded or any audio decoded
            normalize_decoding_cfg({"strategy": g["strategy"]})
            longform_config({"enabled": True, **longform_part(g)})
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
