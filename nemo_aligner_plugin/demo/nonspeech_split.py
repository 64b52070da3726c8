"""The demo corpus's ``nonspeech`` test split: clips in which nobody speaks, and how much text a model invents there.

S: audio samples (16 kHz mono).

A model that never saw audio without speech reads silence, noise or a tone as an invented sentence (issue #24).
This split measures that on what training's non-speech rows (``model.nonspeech``: silence, white, pink, brown
noise and tones at -70..-30 dBFS, a few seconds long) did not show: other kinds (``UNSEEN_KINDS``), levels
quieter and louder than that range (``LEVEL_RANGES_DBFS``), and lengths up to 20 s, plus digital silence longer
than any training row (a seen kind at an unseen length). It is a test split only: nothing is tuned on it.

Planned from the corpus seed with its own random stream, so adding it (or more clips) leaves every other split and
the earlier clips as they were. Every clip's reference is the empty text, so WER means nothing here; a model is
scored by ``nonspeech_scores``: words invented per minute of audio and the share of clips given no text at all.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

__all__ = [
    "NONSPEECH_SPLIT",
    "UNSEEN_KINDS",
    "LEVEL_RANGES_DBFS",
    "NonSpeechClip",
    "plan_nonspeech",
    "write_nonspeech_split",
    "nonspeech_scores",
    "summarize_nonspeech",
    "score_nonspeech_clips",
]

NONSPEECH_SPLIT = "nonspeech"
# Kinds training's default non-speech rows never draw (config.NONSPEECH_TRAIN_KINDS: silence white pink brown tone).
UNSEEN_KINDS = ("blue", "violet", "hum", "chirp", "bursts")
# Clip i is KIND_CYCLE[i % 6]: every kind equally often, digital silence among the first clips of a small corpus.
KIND_CYCLE = ("silence", *UNSEEN_KINDS)
# RMS levels (dBFS, before 16-bit rounding), half the clips in each range: quieter and louder than training's
# -70..-30, with a 1 dB margin so that no clip sits on training's edge.
LEVEL_RANGES_DBFS = ((-80.0, -71.0), (-29.0, -15.0))
NOISE_SECONDS = (1.0, 18.0)  # lengths of the noise, hum, chirp and burst clips (uniform)
SILENCE_SECONDS = (10.0, 20.0)  # digital silence: longer than any training row or demo utterance
META_KEYS = ("audio_filepath", "kind", "level_dbfs", "seconds", "seed")


@dataclass
class NonSpeechClip:
    index: int  # position in the split; the wav is wav/nonspeech/nonspeech_<index>.wav
    kind: str  # nonspeech.KINDS name
    level_dbfs: Optional[float]  # RMS level asked of the generator; None for digital silence
    seconds: float  # planned length
    seed: int  # seeds the torch.Generator the clip is drawn from
    audio_filepath: str = ""
    duration: float = 0.0  # seconds actually written (whole samples)


def plan_nonspeech(seed: int, num_clips: int) -> list[NonSpeechClip]:
    """Every clip's kind, level, length and generator seed, drawn from ``seed`` alone and in order.

    The stream ``f"{seed}-nonspeech"`` is its own, so this split never moves the speech splits; clip i depends only
    on the draws before it, so a larger ``num_clips`` keeps the first clips as they were.
    """
    rng = random.Random(f"{seed}-nonspeech")
    clips = []
    for index in range(num_clips):
        kind = KIND_CYCLE[index % len(KIND_CYCLE)]
        if kind == "silence":
            level, seconds = None, rng.uniform(*SILENCE_SECONDS)
        else:
            level, seconds = round(rng.uniform(*rng.choice(LEVEL_RANGES_DBFS)), 1), rng.uniform(*NOISE_SECONDS)
        clips.append(NonSpeechClip(index, kind, level, round(seconds, 2), rng.randrange(2**32)))
    return clips


def _synthesize(clip: NonSpeechClip, path: Path, sample_rate: int) -> float:
    """Generate the clip (nonspeech.generate) and write it as 16-bit PCM; returns its duration in seconds."""
    import numpy as np
    import soundfile
    import torch

    from nemo_aligner_plugin.nonspeech import generate

    g = torch.Generator().manual_seed(clip.seed)
    x = generate(clip.kind, round(clip.seconds * sample_rate), clip.level_dbfs or 0.0, sample_rate, g)  # (S,)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), np.round(x.numpy() * 32767).astype(np.int16), sample_rate, subtype="PCM_16")
    return len(x) / sample_rate


def write_nonspeech_split(out: Path, seed: int, num_clips: int, sample_rate: int) -> list[NonSpeechClip]:
    """Plan, synthesize (numpy/torch, seconds) and write ``nonspeech_manifest.json``, ``meta/nonspeech.jsonl`` and
    ``wav/nonspeech/``; returns the clips. Manifest lines hold ``text: ""`` plus ``kind`` and ``level_dbfs``."""
    clips = plan_nonspeech(seed, num_clips)
    for clip in clips:
        path = out / "wav" / NONSPEECH_SPLIT / f"{NONSPEECH_SPLIT}_{clip.index:06d}.wav"
        clip.audio_filepath = str(path)
        clip.duration = _synthesize(clip, path, sample_rate)
    manifest = [
        {
            "audio_filepath": c.audio_filepath,
            "duration": c.duration,
            "text": "",
            "kind": c.kind,
            "level_dbfs": c.level_dbfs,
        }
        for c in clips
    ]
    (out / f"{NONSPEECH_SPLIT}_manifest.json").write_text("".join(json.dumps(e) + "\n" for e in manifest))
    (out / "meta").mkdir(parents=True, exist_ok=True)
    meta = [{k: asdict(c)[k] for k in META_KEYS} for c in clips]
    (out / "meta" / f"{NONSPEECH_SPLIT}.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))
    return clips


def nonspeech_scores(hypotheses: Sequence[str], durations: Sequence[float]) -> dict:
    """What a model said over audio without speech: every hypothesis word is invented.

    ``invented_words_per_minute``: hypothesis words over the minutes of audio; ``no_text_share``: the share of clips
    whose hypothesis is empty (after strip).
    """
    if len(hypotheses) != len(durations) or not hypotheses:
        raise ValueError(
            f"expected one duration per hypothesis and at least one clip, got {len(hypotheses)} and {len(durations)}"
        )
    minutes = sum(durations) / 60.0
    if minutes <= 0:
        raise ValueError(f"the clips last {minutes} minutes: words per minute needs audio")
    words = sum(len(h.split()) for h in hypotheses)
    return {
        "clips": len(hypotheses),
        "minutes": round(minutes, 3),
        "words": words,
        "invented_words_per_minute": round(words / minutes, 3),
        "no_text_share": round(sum(not h.strip() for h in hypotheses) / len(hypotheses), 4),
    }


def summarize_nonspeech(predictions: Sequence[dict], worst: int = 3) -> dict:
    """``nonspeech_scores`` of a predictions file's lines (``pred_text``, ``duration``, ``kind``, ``level_dbfs``),
    overall and ``by_kind``, and the ``worst`` clips (most words invented) for a reader."""
    by_kind = defaultdict(list)
    for p in predictions:
        by_kind[p["kind"]].append(p)

    def scores(lines: Sequence[dict]) -> dict:
        return nonspeech_scores([p["pred_text"] for p in lines], [float(p["duration"]) for p in lines])

    ranked = sorted(predictions, key=lambda p: -len(p["pred_text"].split()))
    return {
        **scores(predictions),
        "by_kind": {kind: scores(lines) for kind, lines in sorted(by_kind.items())},
        "worst": [
            {
                "kind": p["kind"],
                "level_dbfs": p["level_dbfs"],
                "seconds": round(float(p["duration"]), 2),
                "words": len(p["pred_text"].split()),
                "pred_text": p["pred_text"],
                "audio_filepath": p["audio_filepath"],
            }
            for p in ranked[:worst]
            if p["pred_text"].strip()
        ],
    }


def score_nonspeech_clips(
    model_path: Path, out: Path, seed: int, num_clips: int, decodings: Sequence[str] = ("greedy", "beam")
) -> dict[str, dict]:
    """Draw ``num_clips`` clips from ``seed`` into ``out``, transcribe them with each decoding (an aligner with its
    own long-form routing, as ``transcribe()``; other models greedy only) -> ``summarize_nonspeech`` per decoding."""
    from omegaconf import OmegaConf

    from nemo_aligner_plugin import AlignerEncoderModel
    from nemo_aligner_plugin.manifests import read_predictions, write_manifest
    from nemo_aligner_plugin.transcribe_cli import TranscriptionConfig, load_model, run

    model = load_model(TranscriptionConfig(model_path=str(model_path)))
    out.mkdir(parents=True, exist_ok=True)
    clips = write_nonspeech_split(out, seed, num_clips, int(model.cfg.sample_rate))
    fields = ("audio_filepath", "duration", "kind", "level_dbfs")  # no text: transcribed, never scored as WER
    manifest = write_manifest(out / "clips_manifest.json", [{k: asdict(c)[k] for k in fields} for c in clips])
    aligner = isinstance(model, AlignerEncoderModel)
    greedy = OmegaConf.to_container(model.cfg.decoding) if aligner else None
    results = {}
    for decoding in decodings if aligner else ["greedy"]:
        if aligner:
            model.change_decoding_strategy({**greedy, "strategy": "beam" if decoding == "beam" else "greedy_batch"})
        predictions = out / f"predictions_{decoding}.json"
        cfg = TranscriptionConfig(dataset_manifest=str(manifest), output_filename=str(predictions), use_lhotse=False)
        run(cfg, model=model)
        results[decoding] = summarize_nonspeech(read_predictions(predictions))
    return results
