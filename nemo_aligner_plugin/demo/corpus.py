"""The demo corpus: every text, voice and synthesis parameter planned from one seed, then synthesized in parallel.

Layout of a corpus folder, its splits and their purpose: recipes/make_demo_corpus.py. ``CORPUS_VERSION`` is bumped
when the same arguments would synthesize different audio, so that an older corpus is rebuilt, not reused.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, replace
from pathlib import Path

from nemo_aligner_plugin.demo.nonspeech_split import NONSPEECH_SPLIT, write_nonspeech_split
from nemo_aligner_plugin.demo.sentences import generate_long_texts, generate_sentences, spoken_sentences
from nemo_aligner_plugin.demo.speech import (
    SAMPLE_RATE,
    Utterance,
    available_voices,
    get_resampler,
    split_voices,
    synthesize,
)

__all__ = [
    "SPLITS",
    "SPEECH_SPLITS",
    "CORPUS_VERSION",
    "plan_corpus",
    "build_corpus",
    "current_corpus_info",
    "train_tokenizer",
]

SPEECH_SPLITS = (
    "train",
    "dev",
    "dev_long",
    "dev_long_nopause",
    "dev_long_sentences",
    "test",
    "test_long",
    "test_long_nopause",
    "test_long_sentences",
)
# nonspeech: clips without speech (demo/nonspeech_split.py), generated, not read by espeak-ng
SPLITS = (*SPEECH_SPLITS, NONSPEECH_SPLIT)
# Bumped when the same args would synthesize different audio, so that an older corpus is rebuilt, not reused.
# 5: the nonspeech split (the speech splits are as in 4).
CORPUS_VERSION = 5
META_KEYS = ("audio_filepath", "voice", "rate", "pitch", "snr_db", "noise_seed", "spoken")


def plan_corpus(
    seed: int,
    num_train: int,
    num_dev: int,
    num_test: int,
    num_test_long: int,
    voices: Sequence[str],
    num_dev_long: int = 0,
) -> tuple[list[Utterance], dict[str, list[str]]]:
    """Decide every text, voice and synthesis parameter up front from ``seed``.

    Planning is sequential and separate from (parallel) synthesis, so worker scheduling can never
    change the result. dev_long's texts are drawn last, so adding it leaves every other split as it was. The
    nonspeech split is planned apart, from its own stream (demo/nonspeech_split.py).
    """
    rng = random.Random(seed)
    train_voices, test_voices = split_voices(rng, voices)
    seen: set[str] = set()
    texts = {
        "train": [[s] for s in generate_sentences(rng, num_train, exclude=seen)],
        "dev": [[s] for s in generate_sentences(rng, num_dev, exclude=seen)],
        "test": [[s] for s in generate_sentences(rng, num_test, exclude=seen)],
        "test_long": generate_long_texts(rng, num_test_long, exclude=seen),
        "dev_long": generate_long_texts(rng, num_dev_long, exclude=seen),
    }
    utts: list[Utterance] = []
    for split in texts:  # the *_nopause splits are derived from dev_long/test_long below
        prng = random.Random(f"{seed}-{split}")
        pool = test_voices if split.startswith("test") else train_voices
        for i, group in enumerate(texts[split]):
            utts.append(
                Utterance(
                    split=split,
                    index=i,
                    text=" ".join(group),
                    spoken=spoken_sentences(group),
                    voice=prng.choice(pool),
                    rate=prng.randint(140, 200),
                    pitch=prng.randint(30, 70),
                    snr_db=round(prng.uniform(25.0, 40.0), 2),
                    noise_seed=prng.randrange(2**32),
                )
            )
    # The same utterances read straight on: only the pauses and sentence prosody differ from test_long.
    utts += [
        replace(u, split=f"{u.split}_nopause", spoken=u.text) for u in utts if u.split in ("dev_long", "test_long")
    ]
    # Each long utterance's sentences read alone like a test utterance: the same words without long audio.
    for split in ("dev_long", "test_long"):
        long_utts = [u for u in utts if u.split == split]
        sentences = [(u, s) for u, group in zip(long_utts, texts[split], strict=True) for s in group]
        utts += [
            replace(u, split=f"{split}_sentences", index=i, text=s, spoken=spoken_sentences([s]))
            for i, (u, s) in enumerate(sentences)
        ]
    pools = {s: train_voices for s in SPEECH_SPLITS if not s.startswith("test")}
    return utts, {**pools, **{s: test_voices for s in SPEECH_SPLITS if s.startswith("test")}}


def train_tokenizer(texts: Sequence[str], out_dir: Path, vocab_size: int) -> int:
    """The plugin's NeMo-layout BPE trainer, plus the training text for reference; returns the vocab size."""
    from nemo_aligner_plugin.tokenizer import train_bpe_tokenizer  # lazy: importing the plugin imports NeMo

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "train_text.txt").write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    try:
        return train_bpe_tokenizer(texts, out_dir, vocab_size)
    except ValueError as err:
        raise SystemExit(f"error: {err}. Try another --vocab-size or a larger --num-train.") from err


def _stats(durs: list[float]) -> dict[str, float]:
    if not durs:
        return {"hours": 0.0, "total_seconds": 0.0, "min_duration": 0.0, "max_duration": 0.0, "mean_duration": 0.0}
    return {
        "hours": round(sum(durs) / 3600, 4),
        "total_seconds": round(sum(durs), 2),
        "min_duration": min(durs),
        "max_duration": max(durs),
        "mean_duration": round(sum(durs) / len(durs), 4),
    }


def current_corpus_info(out: Path) -> dict | None:
    """corpus_info.json of a complete corpus in ``out`` built by this ``CORPUS_VERSION``, else None."""
    info_path = Path(out) / "corpus_info.json"
    if not info_path.exists():
        return None
    info = json.loads(info_path.read_text())
    complete = all((Path(out) / f"{s}_manifest.json").exists() for s in SPLITS)
    return info if complete and info.get("args", {}).get("corpus_version") == CORPUS_VERSION else None


def build_corpus(
    out: Path | str,
    seed: int = 0,
    num_train: int = 3000,
    num_dev: int = 200,
    num_test: int = 200,
    num_test_long: int = 100,
    num_dev_long: int = 100,
    num_nonspeech: int = 40,
    vocab_size: int = 32,
    workers: int = 2,
    force: bool = False,
    espeak: str = "espeak-ng",
) -> dict:
    """Build (or reuse) the corpus in ``out``; returns the corpus_info dict."""
    t0 = time.time()
    out = Path(out).resolve()
    args = {
        "seed": seed,
        "num_train": num_train,
        "num_dev": num_dev,
        "num_test": num_test,
        "num_test_long": num_test_long,
        "num_dev_long": num_dev_long,
        "num_nonspeech": num_nonspeech,
        "vocab_size": vocab_size,
        "corpus_version": CORPUS_VERSION,
    }
    info_path = out / "corpus_info.json"
    info = None if force else current_corpus_info(out)
    if info is not None and info.get("args") == args:
        print(f"Corpus in {out} already built with the same args; skipping (use --force to rebuild).")
        return info
    if shutil.which(espeak) is None:
        raise SystemExit(f"error: '{espeak}' not found on PATH. Install it with: apt-get install espeak-ng")
    # Remove only what this script writes, never the whole directory.
    for sub in ("wav", "meta", "tokenizer"):
        shutil.rmtree(out / sub, ignore_errors=True)
    for f in [info_path] + [out / f"{s}_manifest.json" for s in SPLITS]:
        f.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)

    voices = available_voices(espeak)
    utts, split_voice_pools = plan_corpus(seed, num_train, num_dev, num_test, num_test_long, voices, num_dev_long)
    print(
        f"Synthesizing {len(utts)} utterances with {len(voices)} voices, {workers} worker(s), "
        f"resampler={get_resampler()[0]} ...",
        flush=True,
    )
    step, done = max(1, math.ceil(len(utts) / 10)), 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futs = {}
        for u in utts:
            path = out / "wav" / u.split / f"{u.split}_{u.index:06d}.wav"
            u.audio_filepath = str(path)
            futs[pool.submit(synthesize, u, path, espeak)] = u
        try:
            for fut in as_completed(futs):
                futs[fut].duration = fut.result()
                done += 1
                if done % step == 0 or done == len(utts):
                    print(f"  {100 * done // len(utts):3d}% ({done}/{len(utts)}) {time.time() - t0:.1f}s", flush=True)
        except BaseException:
            pool.shutdown(cancel_futures=True)  # fail fast instead of synthesizing the rest
            raise

    (out / "meta").mkdir(exist_ok=True)
    splits_info = {}
    for split in SPEECH_SPLITS:
        su = [u for u in utts if u.split == split]
        with open(out / f"{split}_manifest.json", "w", encoding="utf-8") as f:
            for u in su:
                f.write(json.dumps({"audio_filepath": u.audio_filepath, "duration": u.duration, "text": u.text}) + "\n")
        with open(out / "meta" / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for u in su:
                d = asdict(u)
                f.write(json.dumps({k: d[k] for k in META_KEYS}) + "\n")
        splits_info[split] = {
            "num_utterances": len(su),
            **_stats([u.duration for u in su]),
            "voices_used": sorted({u.voice for u in su}),
            "voice_pool": split_voice_pools[split],
        }
    clips = write_nonspeech_split(out, seed, num_nonspeech, SAMPLE_RATE)
    splits_info[NONSPEECH_SPLIT] = {
        "num_utterances": len(clips),
        **_stats([c.duration for c in clips]),
        "kinds": sorted({c.kind for c in clips}),
        "voices_used": [],
        "voice_pool": [],
    }

    actual_vocab = train_tokenizer([u.text for u in utts if u.split == "train"], out / "tokenizer", vocab_size)
    info = {
        "args": args,
        "seed": seed,
        "sample_rate": SAMPLE_RATE,
        "resampler": get_resampler()[0],
        "espeak_version": subprocess.run(
            [espeak, "--version"], check=False, capture_output=True, text=True
        ).stdout.strip(),
        "num_voices": len(voices),
        "tokenizer": {"model": str(out / "tokenizer" / "tokenizer.model"), "vocab_size": actual_vocab},
        "splits": splits_info,
        "build_seconds": round(time.time() - t0, 2),
    }
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    print(f"Done in {info['build_seconds']:.1f}s -> {out}")
    for split, s in splits_info.items():
        print(
            f"  {split:19s} {s['num_utterances']:6d} utts {s['hours']:7.3f} h "
            f"(mean {s['mean_duration']:.2f}s, max {s['max_duration']:.2f}s, {len(s['voices_used'])} voices)"
        )
    print(f"  tokenizer: {actual_vocab} pieces")
    return info
