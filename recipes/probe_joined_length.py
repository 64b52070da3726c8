"""How long can a trained aligner align? Score it on utterances of a manifest joined k at a time.

    python recipes/probe_joined_length.py --model model.nemo --manifest data/demo/corpus/dev_manifest.json \
        --join 1 2 3 --groups 60 --out-dir data/demo/probe

Joins ``--groups`` disjoint random groups of k utterances (a ``--gap-seconds`` silence between them, as the
training concatenation does, and ``--pad-seconds`` before and after each input: a model trained on trimmed
audio may not expect silence at the start), transcribes them with ``recipes/transcribe_aligner.py`` and prints
per k the WER and the hypothesis/reference word ratio: a ratio well below 1 means the model stops early
(deletions), a ratio near 1 with a high WER means it goes on but invents the later sentences (the alignment did
not reach them).
Writes the joined WAVs and manifests under ``--out-dir`` and ``probe.json`` with the table.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: the sibling recipe is importable

import transcribe_aligner  # noqa: E402


def join_manifest(
    entries: Sequence[dict],
    join: int,
    groups: int,
    gap_seconds: float,
    seed: int,
    out_dir: Path,
    pad_seconds: float = 0.0,
) -> list[dict]:
    """Write ``groups`` WAVs of ``join`` utterances each (disjoint, random) and return their manifest entries."""
    if gap_seconds < 0 or pad_seconds < 0:
        raise ValueError(f"--gap-seconds {gap_seconds} / --pad-seconds {pad_seconds}: silence cannot be negative")
    if join < 1:
        raise ValueError(f"--join {join}: join at least 1 utterance per group")
    if groups < 1:
        raise ValueError(f"--groups {groups}: score at least 1 joined utterance per k")
    if len(entries) < join:
        raise ValueError(f"the manifest has {len(entries)} utterances, fewer than --join {join}")
    order = list(range(len(entries)))
    random.Random(seed).shuffle(order)
    groups = min(groups, len(entries) // join)
    out_dir.mkdir(parents=True, exist_ok=True)
    joined = []
    for g in range(groups):
        members = [entries[i] for i in order[g * join : (g + 1) * join]]
        pieces, rate = [], None
        for j, entry in enumerate(members):
            audio, sr = sf.read(entry["audio_filepath"], dtype="float32", always_2d=False)
            if audio.ndim != 1:
                raise ValueError(f"{entry['audio_filepath']}: expected mono audio, got {audio.shape[1]} channels")
            if rate is not None and sr != rate:
                raise ValueError(f"{entry['audio_filepath']}: sample rate {sr} Hz, the others in its group {rate} Hz")
            rate = sr
            if j:
                pieces.append(np.zeros(int(round(gap_seconds * sr)), dtype=np.float32))
            pieces.append(audio)
        pad = np.zeros(int(round(pad_seconds * rate)), dtype=np.float32)
        audio = np.concatenate([pad, *pieces, pad])
        path = (out_dir / f"join{join}_{g:04d}.wav").resolve()  # manifests resolve relative paths against themselves
        sf.write(path, audio, rate)
        joined.append(
            {
                "audio_filepath": str(path),
                "duration": len(audio) / rate,
                "text": " ".join(str(entry.get("text", "")) for entry in members).strip(),
            }
        )
    return joined


def probe(
    model: Any,
    entries: Sequence[dict],
    joins: Sequence[int],
    groups: int,
    gap_seconds: float,
    seed: int,
    out_dir: Path,
    pad_seconds: float = 0.0,
) -> list[dict[str, float]]:
    """One row per k: WER, CER, hypothesis/reference words and mean duration of the joined utterances."""
    rows = []
    for join in joins:
        joined = join_manifest(entries, join, groups, gap_seconds, seed, out_dir / f"join{join}", pad_seconds)
        manifest = transcribe_aligner.write_manifest(out_dir / f"join{join}_manifest.json", joined)
        mean_seconds = float(np.mean([e["duration"] for e in joined]))
        print(f"[probe] join {join}: {len(joined)} utterances, {mean_seconds:.1f} s mean")
        cfg = transcribe_aligner.TranscriptionConfig(
            dataset_manifest=str(manifest), output_filename=str(out_dir / f"join{join}_predictions.json")
        )
        result = transcribe_aligner.run(cfg, model=model)
        predictions = [json.loads(line) for line in Path(result["output_filename"]).read_text().splitlines()]
        ref_words = sum(len(p["text"].split()) for p in predictions)
        hyp_words = sum(len(p["pred_text"].split()) for p in predictions)
        rows.append(
            {
                "join": join,
                "utterances": len(joined),
                "mean_seconds": mean_seconds,
                "wer": result["wer"],
                "cer": result["cer"],
                "hyp_ref_words": hyp_words / ref_words if ref_words else 0.0,
            }
        )
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help=".nemo of a trained aligner (any NeMo ASR model works)")
    parser.add_argument("--manifest", required=True, help="NeMo manifest with text, e.g. the dev split")
    parser.add_argument("--join", type=int, nargs="+", default=[1, 2, 3], help="utterances per joined input")
    parser.add_argument("--groups", type=int, default=60, help="joined inputs per k (fewer if the manifest is short)")
    parser.add_argument("--gap-seconds", type=float, default=0.1, help="silence between joined utterances")
    parser.add_argument("--pad-seconds", type=float, default=0.0, help="silence before and after each joined input")
    parser.add_argument("--seed", type=int, default=0, help="which utterances are joined")
    parser.add_argument("--out-dir", required=True, help="joined WAVs, manifests, predictions and probe.json")
    args = parser.parse_args(argv)

    entries = transcribe_aligner.read_manifest(Path(args.manifest), required=("audio_filepath", "text"))
    model = transcribe_aligner.load_model(transcribe_aligner.TranscriptionConfig(model_path=args.model))
    out_dir = Path(args.out_dir)
    rows = probe(model, entries, args.join, args.groups, args.gap_seconds, args.seed, out_dir, args.pad_seconds)
    (out_dir / "probe.json").write_text(json.dumps({"model": args.model, "rows": rows}, indent=2))
    print("\n| joined | utterances | mean s | WER | CER | hyp/ref words |\n|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['join']} | {r['utterances']} | {r['mean_seconds']:.1f} | {r['wer']:.3f} | {r['cer']:.3f} "
            f"| {r['hyp_ref_words']:.2f} |"
        )


if __name__ == "__main__":
    main()
