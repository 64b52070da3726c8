#!/usr/bin/env python3
"""Long-form ``split_margin``: what the split search costs in time, and what it gives in WER, side by side.

    OMP_NUM_THREADS=1 python benchmarks/longform_split.py --model <demo>.nemo \
        --manifest <corpus>/dev_long_manifest.json --split-margin 1.0 --split-min-seconds 3.0 3.5

Every setting transcribes the whole manifest through ``model.transcribe`` with the model's ``longform`` section
enabled (its other options as saved, ``--longform KEY=VALUE`` over them), in interleaved rounds after a warm-up;
the table gives the median seconds, the ratio to the search switched off (measured in the same run), and WER.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="aligner .nemo")
    p.add_argument("--manifest", required=True, type=Path, help="NeMo manifest with `text` (long audio)")
    p.add_argument("--split-margin", nargs="+", type=float, default=[1.0], help="margins to time (nats)")
    p.add_argument("--split-min-seconds", nargs="+", type=float, default=[3.5], help="split_min_seconds values")
    p.add_argument("--longform", action="append", default=[], metavar="KEY=VALUE", help="other longform options")
    p.add_argument("--strategy", help="decoding.strategy (greedy_batch, beam); default: the model's")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per setting (after one warm-up round)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--batch-size", type=int, default=16)
    a = p.parse_args(argv)

    import torch

    from nemo_aligner_plugin.manifests import read_manifest, score
    from nemo_aligner_plugin.transcribe_cli import (
        TranscriptionConfig,
        load_model,
        parse_longform_options,
        set_decoding,
        set_longform,
        text_of,
    )

    torch.set_num_threads(a.threads)
    try:
        base = parse_longform_options(a.longform)
    except ValueError as err:
        p.error(str(err))
    settings = [{"split_margin": None}] + [
        {"split_margin": m, "split_min_seconds": s} for m in a.split_margin for s in a.split_min_seconds
    ]
    entries = read_manifest(a.manifest, required=("audio_filepath", "text"))
    files, refs = [e["audio_filepath"] for e in entries], [e["text"] for e in entries]
    model = load_model(TranscriptionConfig(model_path=a.model))
    if a.strategy:
        set_decoding(model, {"strategy": a.strategy})
    times: list[list[float]] = [[] for _ in settings]
    wers: list[float] = []
    for round_ in range(a.rounds + 1):  # round 0: warm-up and WER
        for i, setting in enumerate(settings):
            set_longform(model, {**base, "enabled": True, **setting})
            start = time.perf_counter()
            hyps = model.transcribe(files, batch_size=a.batch_size, verbose=False)
            seconds = time.perf_counter() - start
            if round_ == 0:
                wers.append(score(refs, [text_of(h) for h in hyps])["wer"])
            else:
                times[i].append(seconds)
            print(f"round {round_}/{a.rounds} {setting}: {seconds:.1f} s", flush=True)
    off = statistics.median(times[0])
    strategy = model.cfg.decoding.strategy
    print(f"\n{a.manifest} ({len(entries)} utterances), model {a.model}, {strategy}, longform {base or 'as saved'}")
    print(f"threads {a.threads}, load average {os.getloadavg()}, command: {' '.join(sys.argv)}\n")
    print("| split_margin | split_min_seconds | median s | x off | WER |\n|---|---|---|---|---|")
    for setting, runs, wer in zip(settings, times, wers, strict=True):
        median = statistics.median(runs)
        shortest = setting.get("split_min_seconds", "-")
        print(f"| {setting['split_margin']} | {shortest} | {median:.1f} | {median / off:.2f}x | {wer:.4f} |")


if __name__ == "__main__":
    main()
