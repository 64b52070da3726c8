#!/usr/bin/env python3
"""Build a small, fully synthetic English speech corpus for a CPU demo of an ASR model.

No data is downloaded: sentences come from a built-in template grammar (voice-assistant
commands, numbers, times, dates, places, weather, navigation, ...) and speech is synthesized
with the ``espeak-ng`` CLI across many accent+variant voices. Everything is derived from
``--seed`` so the same arguments always give the same manifests.

Output layout (``--out DIR``)::

    wav/<split>/*.wav              16 kHz mono 16-bit PCM
    <split>_manifest.json          NeMo JSON lines: audio_filepath, duration, text
    meta/<split>.jsonl             per-utterance voice/rate/pitch/snr (kept out of the manifest)
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
``dev_long_nopause``: read straight on, to tune how long-form cuts speech that has no pause).

Usage::

    python recipes/make_demo_corpus.py --out data/demo_corpus --seed 0
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import math
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
import wave
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
SPLITS = (
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
# Bumped when the same args would synthesize different audio, so that an older corpus is rebuilt, not reused.
CORPUS_VERSION = 4
ALLOWED_TEXT = re.compile(r"^[a-z']+( [a-z']+)*$")
META_KEYS = ("audio_filepath", "voice", "rate", "pitch", "snr_db", "noise_seed", "spoken")

# ----------------------------------------------------------------------------- text grammar
# fmt: off
_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
         "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_ORD = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth", "nine": "ninth",
        "twelve": "twelfth"}
ROOMS = ["kitchen", "living room", "bedroom", "bathroom", "garage", "office", "hallway", "basement", "garden",
         "dining room", "nursery", "attic", "porch", "guest room"]
DEVICES = ["lights", "lamp", "fan", "heater", "air conditioner", "television", "radio", "speakers",
           "coffee maker", "oven", "dishwasher", "washing machine", "kettle", "humidifier", "printer",
           "projector"]
CITIES = ["london", "paris", "tokyo", "berlin", "madrid", "rome", "boston", "chicago", "seattle", "denver",
          "dallas", "toronto", "sydney", "dublin", "lisbon", "vienna", "prague", "oslo", "stockholm", "helsinki",
          "cairo", "mumbai", "delhi", "beijing", "seoul", "bangkok", "singapore", "istanbul", "athens",
          "amsterdam", "brussels", "zurich", "geneva", "miami", "atlanta", "phoenix", "houston", "austin",
          "montreal", "vancouver", "edinburgh", "glasgow", "manchester", "liverpool", "new york", "los angeles",
          "san francisco", "mexico city", "buenos aires", "cape town"]
PLACES = ["gas station", "pharmacy", "airport", "train station", "hospital", "library", "museum", "restaurant",
          "coffee shop", "supermarket", "bank", "post office", "hotel", "park", "beach", "bus stop",
          "parking lot", "school", "bakery", "cinema", "gym", "stadium", "zoo", "market"]
CONTACTS = ["mom", "dad", "alice", "bob", "sarah", "john", "emma", "david", "maria", "james", "olivia",
            "michael", "sophie", "daniel", "grandma", "grandpa", "the office", "the doctor", "my sister",
            "my brother", "peter", "laura", "kevin", "nina"]
TASKS = ["buy milk", "call the dentist", "pick up the kids", "water the plants", "pay the rent", "feed the cat",
         "walk the dog", "take out the trash", "book a haircut", "renew my passport", "send the report",
         "charge my phone", "buy some bread", "clean the kitchen", "check the mail", "return the library books",
         "take my medicine", "fill up the car", "pack my bag", "order more coffee"]
ITEMS = ["eggs", "apples", "bananas", "rice", "butter", "cheese", "coffee", "tea", "bread", "milk", "tomatoes",
         "onions", "potatoes", "chicken", "pasta", "yogurt", "oranges", "carrots", "soap", "batteries", "lemons",
         "cereal"]
GENRES = ["jazz", "rock", "classical", "pop", "country", "blues", "reggae", "hip hop", "folk", "soul",
          "electronic", "relaxing", "piano", "dance"]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december"]
WHEN = ["today", "tomorrow", "tonight", "this morning", "this afternoon", "this evening", "this weekend",
        "next week", "on monday", "on friday", "tomorrow morning", "later today", "right now"]
CONDITIONS = ["sunny", "cloudy", "rainy", "windy", "foggy", "snowy", "stormy", "humid", "cold", "warm", "hot",
              "freezing", "clear", "mild"]
DIRECTIONS = ["left", "right"]
ROADS = ["street", "avenue", "road", "lane", "boulevard", "drive"]
STREETS = ["oak", "maple", "pine", "church", "high", "park", "main", "king", "queen", "river", "hill", "market",
           "station", "mill", "bridge", "elm", "cedar", "lake"]
UNITS = ["minutes", "hours", "seconds"]
MESSAGES = ["i am on my way", "see you soon", "call me back", "happy birthday", "don't forget the keys",
            "i'm running late", "dinner is ready", "where are you"]
APPS = ["calendar", "camera", "calculator", "settings", "music player", "email", "map", "weather app",
        "photo gallery", "notes"]
JUNCTIONS = ["junction", "traffic light", "roundabout", "corner", "crossroads", "exit"]
COMMANDS = ["play the next song", "skip this song", "pause the music", "turn the volume up", "turn the volume down",
            "stop the music", "what song is this", "lock the front door", "open the garage door", "close the blinds",
            "what time is it", "cancel my alarm", "read my messages", "what's on my calendar today"]
# fmt: on


def number_words(n: int) -> str:
    """Spell out 0..9999 in words so the transcripts contain no digits."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " and " + number_words(rest))
    rest = n % 1000
    return number_words(n // 1000) + " thousand" + ("" if rest == 0 else " " + number_words(rest))


def ordinal_words(n: int) -> str:
    """Ordinal for day-of-month style numbers (1..99): "twenty first", "thirtieth"."""
    words = number_words(n).split()
    last = words[-1]
    if last in _ORD:
        words[-1] = _ORD[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def _time(r: random.Random) -> str:
    h = r.randint(1, 12)
    kind = r.randrange(6)
    hw = number_words(h)
    if kind == 0:
        t = f"{hw} o'clock"
    elif kind == 1:
        t = f"half past {hw}"
    elif kind == 2:
        t = f"quarter {r.choice(['past', 'to'])} {hw}"
    else:
        m = r.choice([5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, r.randint(1, 59)])
        t = f"{hw} " + (f"oh {_ONES[m]}" if m < 10 else number_words(m))
    if r.random() < 0.3:
        t += " " + r.choice(["in the morning", "in the evening", "at night", "p m", "a m"])
    return t


def _date(r: random.Random) -> str:
    month, day = r.choice(MONTHS), ordinal_words(r.randint(1, 28))
    form = r.randrange(3)
    if form == 0:
        return f"{month} {day}"
    if form == 1:
        return f"the {day} of {month}"
    return f"{r.choice(DAYS)} {month} {day}"


def _n(r: random.Random, lo: int, hi: int) -> str:
    return number_words(r.randint(lo, hi))


# Each template draws its slots from ``r``; the list is deliberately broad (home control, timers,
# weather, navigation, messaging, calendar, arithmetic, travel) so a tiny model sees varied n-grams.
TEMPLATES: list[Callable[[random.Random], str]] = [
    lambda r: f"turn {r.choice(['on', 'off'])} the {r.choice(ROOMS)} {r.choice(DEVICES)}",
    lambda r: f"switch {r.choice(['on', 'off'])} the {r.choice(DEVICES)} in the {r.choice(ROOMS)}",
    lambda r: f"set an alarm for {_time(r)}",
    lambda r: f"wake me up at {_time(r)} {r.choice(['', 'tomorrow', 'on ' + r.choice(DAYS)])}",
    lambda r: f"set a timer for {_n(r, 2, 90)} {r.choice(UNITS)}",
    lambda r: f"set the {r.choice(ROOMS)} temperature to {_n(r, 15, 30)} degrees",
    lambda r: f"set the thermostat to {_n(r, 15, 30)} degrees",
    lambda r: f"dim the {r.choice(ROOMS)} lights to {_n(r, 5, 95)} percent",
    lambda r: f"set the volume to {_n(r, 1, 10)}",
    lambda r: f"what's the weather {r.choice(['in ' + r.choice(CITIES), 'like'])} {r.choice(WHEN)}",
    lambda r: f"will it {r.choice(['rain', 'snow'])} in {r.choice(CITIES)} {r.choice(WHEN)}",
    lambda r: f"is it going to be {r.choice(CONDITIONS)} {r.choice(WHEN)}",
    lambda r: f"it's {_n(r, 0, 40)} degrees and {r.choice(CONDITIONS)} in {r.choice(CITIES)}",
    lambda r: f"navigate to the nearest {r.choice(PLACES)}",
    lambda r: f"how far is {r.choice(CITIES)} from {r.choice(CITIES)}",
    lambda r: f"take me to {_n(r, 1, 999)} {r.choice(STREETS)} {r.choice(ROADS)}",
    lambda r: f"in {_n(r, 1, 900)} {r.choice(['meters', 'miles', 'feet'])} turn {r.choice(DIRECTIONS)}",
    lambda r: f"turn {r.choice(DIRECTIONS)} at the {ordinal_words(r.randint(1, 5))} {r.choice(JUNCTIONS)}",
    lambda r: f"how long will it take to drive to {r.choice(CITIES + PLACES)}",
    lambda r: f"call {r.choice(CONTACTS)} {r.choice(['', 'on speaker', 'on mobile', 'at work', 'right now'])}",
    lambda r: f"text {r.choice(CONTACTS)} that i'll be {_n(r, 5, 45)} minutes late",
    lambda r: f"send a message to {r.choice(CONTACTS)} saying {r.choice(MESSAGES)}",
    lambda r: f"remind me to {r.choice(TASKS)} {r.choice(WHEN + ['at ' + _time(r)])}",
    lambda r: f"add {r.choice(ITEMS)} {r.choice(['', 'and ' + r.choice(ITEMS)])} to my shopping list",
    lambda r: f"play some {r.choice(GENRES)} music {r.choice(['', 'in the ' + r.choice(ROOMS)])}",
    lambda r: r.choice(COMMANDS),
    lambda r: f"what time is it in {r.choice(CITIES)}",
    lambda r: f"what day of the week is {_date(r)}",
    lambda r: f"book a table for {_n(r, 2, 12)} at {_time(r)}",
    lambda r: f"book a flight to {r.choice(CITIES)} on {_date(r)}",
    lambda r: f"schedule a meeting with {r.choice(CONTACTS)} on {r.choice(DAYS)} at {_time(r)}",
    lambda r: f"my appointment is on {_date(r)}",
    lambda r: f"what is {_n(r, 1, 99)} {r.choice(['plus', 'minus', 'times'])} {_n(r, 1, 20)}",
    lambda r: f"how many {r.choice(UNITS)} are in {_n(r, 2, 12)} {r.choice(['days', 'hours', 'weeks'])}",
    lambda r: f"the train to {r.choice(CITIES)} leaves at {_time(r)}",
    lambda r: f"the bus leaves from platform {_n(r, 1, 20)} at {_time(r)}",
    lambda r: f"open the {r.choice(APPS)}",
    lambda r: f"close the {r.choice(ROOMS)} {r.choice(['blinds', 'curtains', 'window', 'door'])}",
    lambda r: f"what's the population of {r.choice(CITIES)}",
    lambda r: f"find a {r.choice(['cheap', 'quiet', 'good', 'nearby'])} {r.choice(PLACES)} in {r.choice(CITIES)}",
    lambda r: f"order {_n(r, 2, 12)} {r.choice(ITEMS)} for {r.choice(DAYS)}",
    lambda r: f"my phone number ends in {_n(r, 0, 9)} {_n(r, 0, 9)} {_n(r, 0, 9)} {_n(r, 0, 9)}",
    lambda r: f"the meeting was moved to {r.choice(DAYS)} the {ordinal_words(r.randint(1, 28))}",
    lambda r: f"the year {number_words(r.choice([19, 20]))} {_n(r, 10, 99)} was {r.choice(CONDITIONS)}",
]


def _clean(text: str) -> str:
    return " ".join(text.split())


def generate_sentences(
    rng: random.Random, n: int, min_words: int = 3, max_words: int = 10, exclude: set[str] | None = None
) -> list[str]:
    """Draw ``n`` distinct template sentences with ``min_words..max_words`` words.

    Sentences in ``exclude`` are skipped and every returned sentence is added to it, so callers
    can chain splits and guarantee e.g. that test text never appears in train/dev.
    """
    seen = exclude if exclude is not None else set()
    out: list[str] = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 200 * n + 10_000:
            raise RuntimeError(f"could not draw {n} unique sentences; the template space is exhausted")
        s = _clean(TEMPLATES[rng.randrange(len(TEMPLATES))](rng))
        if s in seen or not (min_words <= len(s.split()) <= max_words):
            continue
        seen.add(s)
        out.append(s)
    return out


def generate_long_texts(
    rng: random.Random, n: int, max_words: int = 10, exclude: set[str] | None = None
) -> list[list[str]]:
    """Groups of unseen sentences with 2.4-3x ``max_words`` words in total, spoken as one utterance.

    Duration scales with word count, so this lands near twice the longest training utterance. That
    budget needs three sentences: two <=10-word sentences at an average rate only reach ~1.6x the
    longest (slowest-rate) training utterance.
    """
    seen = exclude if exclude is not None else set()
    lo, hi = round(2.4 * max_words), 3 * max_words
    groups: list[list[str]] = []
    for _ in range(1000 * n + 10_000):
        if len(groups) == n:
            return groups
        cand = generate_sentences(rng, 3, max(3, max_words // 2), max_words, exclude=set(seen))
        if lo <= sum(len(s.split()) for s in cand) <= hi:
            seen.update(cand)
            groups.append(cand)
    if len(groups) < n:
        raise RuntimeError(f"could not draw {n} long utterances")
    return groups


# ----------------------------------------------------------------------------- voices
ACCENTS = ["en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc"]
# fmt: off
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
            "klatt3", "Andy", "Annie", "belinda", "david", "edward", "john", "linda", "max", "paul",
            "robert", "steph", "travis", "victor"]
# fmt: on


def available_voices(espeak: str = "espeak-ng") -> list[str]:
    """``accent+variant`` voices that this espeak-ng install really has.

    espeak-ng silently falls back to the default voice for unknown variants, so we check the
    data directory ourselves rather than trusting the name.
    """
    ver = subprocess.run([espeak, "--version"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"Data at:\s*(\S+)", ver)
    vdir = Path(m.group(1)) / "voices" / "!v" if m else None
    variants = [v for v in VARIANTS if vdir is None or (vdir / v).exists()]
    listing = subprocess.run([espeak, "--voices=en"], check=False, capture_output=True, text=True).stdout
    langs = {line.split()[1] for line in listing.splitlines()[1:] if len(line.split()) > 1}
    accents = [a for a in ACCENTS if a in langs] or ["en"]
    return [f"{a}+{v}" for a in accents for v in variants]


def split_voices(rng: random.Random, voices: Sequence[str], test_fraction: float = 0.15) -> tuple[list[str], list[str]]:
    """Hold out whole accent+variant combos for test so test speakers are unseen in training."""
    shuffled = list(voices)
    rng.shuffle(shuffled)
    n_test = max(1, round(test_fraction * len(shuffled)))
    return sorted(shuffled[n_test:]), sorted(shuffled[:n_test])


# ----------------------------------------------------------------------------- audio
@functools.lru_cache(maxsize=1)
def get_resampler() -> tuple[str, Callable[[np.ndarray, int, int], np.ndarray]]:
    """Pick torchaudio, else scipy, else numpy linear interpolation (whatever is installed).

    torchaudio is probed with find_spec first so a torch-only install doesn't pay torch's import.
    """
    if importlib.util.find_spec("torchaudio") is not None:
        try:
            import torch
            import torchaudio.functional as taf

            def _ta(x: np.ndarray, sr: int, tgt: int) -> np.ndarray:
                return taf.resample(torch.from_numpy(x), sr, tgt).numpy()

            return "torchaudio", _ta
        except Exception as e:  # noqa: BLE001 - a broken torchaudio install just means "use scipy"
            print(f"torchaudio unusable ({e}); falling back", flush=True)
    if importlib.util.find_spec("scipy") is not None:
        from scipy.signal import resample_poly

        def _sp(x: np.ndarray, sr: int, tgt: int) -> np.ndarray:
            g = math.gcd(sr, tgt)
            return resample_poly(x, tgt // g, sr // g).astype(np.float32)

        return "scipy", _sp

    def _np(x: np.ndarray, sr: int, tgt: int) -> np.ndarray:
        n_out = -(-len(x) * tgt // sr)
        return np.interp(np.arange(n_out) * (sr / tgt), np.arange(len(x)), x).astype(np.float32)

    return "numpy", _np


def trim_silence(x: np.ndarray, sr: int, top_db: float = 40.0, margin_s: float = 0.05) -> np.ndarray:
    """Cut leading/trailing silence (espeak pads both ends) but keep a small natural margin."""
    frame = max(1, int(0.01 * sr))
    n = len(x) // frame
    if n == 0:
        return x
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    voiced = np.nonzero(rms > rms.max() * 10 ** (-top_db / 20))[0]
    if len(voiced) == 0:
        return x
    margin = int(margin_s * sr)
    return x[max(0, voiced[0] * frame - margin) : min(len(x), (voiced[-1] + 1) * frame + margin)]


@dataclass
class Utterance:
    split: str
    index: int
    text: str  # manifest transcript
    spoken: str  # what espeak reads (test_long: "Sentence one. Sentence two."; see ``spoken_sentences``)
    voice: str
    rate: int
    pitch: int
    snr_db: float
    noise_seed: int
    audio_filepath: str = ""
    duration: float = 0.0


def synthesize(utt: Utterance, wav_path: Path, espeak: str = "espeak-ng") -> float:
    """espeak-ng -> trim -> 16 kHz -> white noise at ``snr_db`` -> 16-bit WAV. Returns seconds.

    Trimming happens before resampling and output length is ceil(n*16000/sr) for every backend,
    so durations do not depend on which resampler is installed.
    """
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw.wav")
        cmd = [espeak, "-v", utt.voice, "-s", str(utt.rate), "-p", str(utt.pitch), "-w", raw, utt.spoken]
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if proc.returncode != 0 or not os.path.exists(raw):
            raise RuntimeError(f"espeak-ng failed for {utt.voice!r}: {proc.stderr.strip()}")
        with wave.open(raw, "rb") as w:
            sr, ch = w.getframerate(), w.getnchannels()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    x = pcm.astype(np.float32).reshape(-1, ch).mean(axis=1) / 32768.0
    x = trim_silence(x, sr)
    if sr != SAMPLE_RATE:
        x = get_resampler()[1](np.ascontiguousarray(x, dtype=np.float32), sr, SAMPLE_RATE)
    power = float(np.mean(x.astype(np.float64) ** 2)) if len(x) else 0.0
    noise = np.random.default_rng(utt.noise_seed).standard_normal(len(x))
    y = np.clip(x + noise * math.sqrt(power / 10 ** (utt.snr_db / 10)), -1.0, 1.0)
    wav_path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(wav_path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(np.round(y * 32767).astype("<i2").tobytes())
    return len(y) / SAMPLE_RATE


# ----------------------------------------------------------------------------- corpus
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
    change the result. dev_long's texts are drawn last, so adding it leaves every other split as it was.
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
    pools = {s: train_voices for s in SPLITS if not s.startswith("test")}
    return utts, {**pools, **{s: test_voices for s in SPLITS if s.startswith("test")}}


def spoken_sentences(group: Sequence[str]) -> str:
    """What espeak-ng reads for a group of sentences: one sentence stays as it is (the train/dev/test text).

    Several are capitalized and end in a full stop. espeak-ng ends a sentence only at a full stop followed by a
    capital letter (or a line break): "four. text" is read on without a pause, "four. Text" with one.
    """
    if len(group) == 1:
        return group[0]
    return " ".join(s[:1].upper() + s[1:] + "." for s in group)


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
    for split in SPLITS:
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
        "--vocab-size",
        type=_int_range("--vocab-size", 32, 8192),
        default=32,
        help="BPE pieces (32: about one per character, which the demo aligner learns best; docs/demo.md)",
    )
    p.add_argument("--workers", type=_int_range("--workers", 1, 256), default=2, help="parallel espeak-ng jobs")
    p.add_argument("--force", action="store_true", help="rebuild even if an identical corpus exists")
    a = p.parse_args(argv)
    build_corpus(
        a.out,
        seed=a.seed,
        num_train=a.num_train,
        num_dev=a.num_dev,
        num_test=a.num_test,
        num_test_long=a.num_test_long,
        num_dev_long=a.num_dev_long,
        vocab_size=a.vocab_size,
        workers=a.workers,
        force=a.force,
    )


if __name__ == "__main__":
    main()
