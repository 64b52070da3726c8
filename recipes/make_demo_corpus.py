#!/usr/bin/env python3
"""Build a small, fully synthetic English speech corpus for a CPU demo of an ASR model.

No data is downloaded: sentences come from a built-in template grammar (voice-assistant
commands, numbers, times, dates, places, weather, navigation, ...) and speech is synthesized
with the ``espeak-ng`` CLI across many accent+variant voices. Everything is derived from
``--seed`` so the same arguments always give the same manifests.

Output layout (``--out DIR``)::

    wav/<split>/*.wav              16 kHz mono 16-bit PCM
    <split>_manifest.json          NeMo JSON lines: audio_filepath, duration, text (nonspeech: also kind, level_dbfs)
    meta/<split>.jsonl             per-utterance voice/rate/pitch/snr (nonspeech: kind/level/length/seed)
    tokenizer/tokenizer.model      SentencePiece BPE trained on the train text
    tokenizer/vocab.txt            one piece per line, as NeMo's process_asr_text_tokenizer writes
    corpus_info.json               args, sizes, durations, voices per split, build time

Splits: ``train``/``dev`` share a voice pool; ``test`` uses unseen sentences *and* held-out
voices; ``test_long`` joins 2-3 unseen sentences into one utterance (about twice the longest
training utterance) to probe length generalisation: espeak-ng reads them as sentences, with the pause
and falling pitch at each sentence end. ``test_long_nopause`` is the same texts, voices and noise read
as one run-on sentence (no pause between the sentences): the harder case. ``test_long_sentences`` is
each sentence of ``test_long`` read alone with the same voice, rate, pitch and noise: the same words as short
audio, so that test_long's WER splits into what its sentences cost and what long audio costs. ``dev_long`` is
built like ``test_long`` from other unseen sentences, read by the train/dev voices: the split to tune long-audio
settings (e.g. long-form chunking) on without looking at test_long (``dev_long_sentences``: its sentences alone;
``dev_long_nopause``: read straight on, to tune how long-form cuts speech that has no pause). ``nonspeech`` holds
clips in which nobody speaks (``text: ""``; ``kind`` and ``level_dbfs`` in the manifest): noise colours, mains hum,
sweeps and bursts that training's non-speech rows do not use, at levels quieter and louder than theirs, 1-18 s
long, and digital silence of 10-20 s; generated with numpy/torch from its own seeded stream (the other splits do not
change with it), to count the words a model invents (nemo_aligner_plugin/demo/nonspeech_split.py).

Usage::

    python recipes/make_demo_corpus.py --out data/demo_corpus --seed 0
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path


def _int_range(name: str, lo: int, hi: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            v = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {value!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{name} must be in [{lo}, {hi}], got {v}")
        return v

    return parse


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--seed", type=_int_range("--seed", 0, 2**31 - 1), default=0, help="drives all randomness")
    p.add_argument("--num-train", type=_int_range("--num-train", 1, 1_000_000), default=3000, help="train utterances")
    p.add_argument("--num-dev", type=_int_range("--num-dev", 0, 100_000), default=200, help="dev utterances")
    p.add_argument("--num-test", type=_int_range("--num-test", 0, 100_000), default=200, help="unseen text+voices")
    p.add_argument(
        "--num-test-long", type=_int_range("--num-test-long", 0, 100_000), default=100, help="~2x-long utterances"
    )
    p.add_argument(
        "--num-dev-long",
        type=_int_range("--num-dev-long", 0, 100_000),
        default=100,
        help="like test_long, with train voices: for tuning long-audio settings",
    )
    p.add_argument(
        "--num-nonspeech",
        type=_int_range("--num-nonspeech", 0, 100_000),
        default=40,
        help="clips without speech (about 10 s each) for the nonspeech test split",
    )
    p.add_argument(
        "--vocab-size",
        type=_int_range("--vocab-size", 32, 8192),
        default=32,
        help="BPE pieces (32: about one per character, which the demo aligner learns best; docs/demo.md)",
    )
    p.add_argument("--workers", type=_int_range("--workers", 1, 256), default=2, help="parallel espeak-ng jobs")
    p.add_argument("--force", action="store_true", help="rebuild even if an identical corpus exists")
    a = p.parse_args(argv)
    from nemo_aligner_plugin.demo.corpus import build_corpus  # after parsing: bad arguments fail before NeMo loads

    build_corpus(
        a.out,
        seed=a.seed,
        num_train=a.num_train,
        num_dev=a.num_dev,
        num_test=a.num_test,
        num_test_long=a.num_test_long,
        num_dev_long=a.num_dev_long,
        num_nonspeech=a.num_nonspeech,
        vocab_size=a.vocab_size,
        workers=a.workers,
        force=a.force,
    )


if __name__ == "__main__":
    main()
