"""Utterances of a manifest joined k at a time: how long can a trained aligner align?

Used by recipes/probe_joined_length.py (WER per k) and by the demo's ``test_padded`` split (k = 1, with silence
around each utterance). Samples: mono, at the files' own rate (every file of a group must share it).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from nemo_aligner_plugin.manifests import read_predictions, write_manifest

__all__ = ["join_manifest", "probe"]


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
    from nemo_aligner_plugin.transcribe_cli import TranscriptionConfig, run

    rows = []
    for join in joins:
        joined = join_manifest(entries, join, groups, gap_seconds, seed, out_dir / f"join{join}", pad_seconds)
        manifest = write_manifest(out_dir / f"join{join}_manifest.json", joined)
        mean_seconds = float(np.mean([e["duration"] for e in joined]))
        print(f"[probe] join {join}: {len(joined)} utterances, {mean_seconds:.1f} s mean", flush=True)
        cfg = TranscriptionConfig(
            dataset_manifest=str(manifest), output_filename=str(out_dir / f"join{join}_predictions.json")
        )
        result = run(cfg, model=model)
        predictions = read_predictions(result["output_filename"])
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
