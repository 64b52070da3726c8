"""Reference word end times for the demo corpus, read from espeak-ng itself (the yardstick of streaming latency).

Each corpus wav is espeak-ng's output for ``entry["spoken"]`` (``-v voice -s rate -p pitch``), trimmed by
``speech.trim_silence`` and resampled to 16 kHz (``speech.synthesize``). We re-run that synthesis through
libespeak-ng's C API, which gives the same samples plus an ``espeakEVENT_PHONEME`` event at the first sample of
every phoneme (tagged with its word's text position), and redo the trim on them, so times land in the wav's own
timeline (resampling does not move times).

A word starts at its first phoneme. It ends where its voiced part ends: the last 10 ms frame between its start and
the next word's start whose RMS is above the trim rule's threshold (40 dB under the utterance's loudest frame);
the last word ends where trim_silence's voiced region ends (the wav goes on for its 50 ms margin). Samples: ``sr``
is espeak's rate (22050 Hz), ``x`` float32 in [-1, 1] exactly as synthesize reads the raw wav.

libespeak-ng keeps state between syntheses in one process (a repeated synthesis comes out a few samples different
from the CLI's), so every utterance is synthesized in a fresh child process, as the CLI does: that matches the
CLI's wav sample for sample (tests/demo/test_word_times.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import multiprocessing
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nemo_aligner_plugin.demo.speech import SAMPLE_RATE, trim_silence

__all__ = [
    "WordTiming",
    "manifest_words",
    "espeak_library",
    "word_timing",
    "word_end_times",
    "read_meta",
    "corpus_timings",
    "corpus_word_end_times",
]

TOP_DB = 40.0  # trim_silence's voiced threshold under the loudest frame; also where a word's voiced part ends
FRAME_S = 0.01  # trim_silence's RMS frame

# speak_lib.h (API revision 12)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CLI_SYNTH_FLAGS = 0x0 | 0x100 | 0x1000  # espeakCHARS_AUTO | espeakPHONEMES | espeakENDPAUSE, as espeak-ng's CLI
_RATE, _PITCH = 1, 3  # espeak_PARAMETER
_EVENT_LIST_TERMINATED, _EVENT_PHONEME = 0, 7
_INITIALIZE_PHONEME_EVENTS = 0x0001
_TEXTMODE_AUTO = 0  # espeakCHARS_AUTO


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """espeak_EVENT, field for field."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based character position of the word in the text
        ("length", ctypes.c_int),  # word length in characters (WORD events)
        ("audio_position", ctypes.c_int),  # ms into the output
        ("sample", ctypes.c_int),  # samples into the output
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class WordTiming:
    """One utterance's words on the corpus wav's timeline (seconds from the wav's first sample)."""

    words: list[str]  # manifest words (``manifest_words(spoken)``)
    starts: list[float]  # where espeak-ng starts each word (clipped to 0 for the first, whose lead-in is trimmed)
    ends: list[float]  # end of each word's voiced part
    num_samples: int  # the corpus wav's length in 16 kHz samples, as synthesize makes it
    voiced_end: float  # where trim_silence's voiced region ends (= ends[-1]); the wav adds its margin after it


def manifest_words(spoken: str) -> list[str]:
    """The manifest's words for an espeak text: split on whitespace, lowercase, keep letters, digits and apostrophes.

    test_long's "Ten. How" -> ["ten", "how"]; "it's" and "i'll" stay one word (espeak reads each as one word too).
    """
    words = [re.sub(r"[^a-z0-9']", "", w.lower()) for w in spoken.split()]
    return [w for w in words if w]


def espeak_library() -> str:
    """libespeak-ng's file name for ctypes, or a RuntimeError saying how to install it."""
    name = ctypes.util.find_library("espeak-ng")
    if name is None:
        raise RuntimeError("libespeak-ng not found (needed for word times): apt-get install libespeak-ng1")
    return name


@dataclass
class _Synthesis:
    """What one espeak-ng run gives: the raw samples and where each phoneme starts in them."""

    pcm: np.ndarray  # int16 samples at ``sample_rate``, exactly the CLI's ``-w`` wav
    sample_rate: int
    phonemes: list[tuple[int, int, str]]  # PHONEME events: (text position of their word event, sample, name)
    token_phonemes: list[int]  # phonemes of each whitespace token read alone (splits words espeak joins)


def _phoneme_count(lib: ctypes.CDLL, token: str) -> int:
    """Phonemes espeak-ng reads ``token`` with (stress marks are part of a phoneme, not one)."""
    ptr = ctypes.c_char_p(token.encode())
    names = lib.espeak_TextToPhonemes(ctypes.byref(ptr), _TEXTMODE_AUTO, ord("_") << 8) or b""
    return sum(1 for name in names.decode().split("_") if name.strip("'%,= "))


def _synthesize(voice: str, rate: int, pitch: int, spoken: str) -> _Synthesis:
    """espeak-ng's samples and phoneme events for one text, calls as the CLI's ``-v -s -p -w`` makes them.

    Runs in a fresh child process (see the module docstring).
    """
    lib = ctypes.CDLL(espeak_library())
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint]
    lib.espeak_Synth.argtypes += [ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    sr = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INITIALIZE_DONT_EXIT | _INITIALIZE_PHONEME_EVENTS)
    if sr <= 0:
        raise RuntimeError(f"espeak_Initialize failed ({sr})")
    chunks: list[np.ndarray] = []
    phonemes: list[tuple[int, int, str]] = []

    def on_audio(wav, num_samples, events) -> int:
        if wav and num_samples > 0:
            chunks.append(np.ctypeslib.as_array(wav, (num_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            e = events[i]
            if e.type == _EVENT_PHONEME:
                phonemes.append((e.text_position, e.sample, e.id.string.decode(errors="replace")))
            i += 1
        return 0

    callback = _SynthCallback(on_audio)  # kept referenced until synthesis is over
    lib.espeak_SetSynthCallback(callback)
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise RuntimeError(f"espeak-ng has no voice {voice!r}")
    lib.espeak_SetParameter(_RATE, int(rate), 0)
    lib.espeak_SetParameter(_PITCH, int(pitch), 0)
    text = spoken.encode()
    err = lib.espeak_Synth(text, len(text) + 1, 0, _POS_CHARACTER, 0, _CLI_SYNTH_FLAGS, None, None)
    if err != 0 or lib.espeak_Synchronize() != 0:
        raise RuntimeError(f"espeak_Synth failed ({err}) for {spoken!r}")
    pcm = np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, dtype=np.int16)
    counts = [_phoneme_count(lib, token) for token in spoken.split()]  # after synthesis: it cannot change the audio
    return _Synthesis(pcm, sr, phonemes, counts)


def _synthesize_entry(entry: dict) -> _Synthesis:
    return _synthesize(entry["voice"], entry["rate"], entry["pitch"], entry["spoken"])


def _pool(workers: int) -> multiprocessing.pool.Pool:
    """Worker processes that each synthesize one utterance and exit. Spawned, not forked: a forked worker inherits
    the libraries its parent loaded, and after sherpa-onnx's tests had run in the same pytest process, forked
    workers synthesized different samples from the espeak-ng CLI (tests/benchmarks then tests/demo reproduces it)."""
    return multiprocessing.get_context("spawn").Pool(workers, maxtasksperchild=1)


def _frame_rms(x: np.ndarray, frame: int) -> np.ndarray:
    n = len(x) // frame
    return np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)


def _token_starts(spoken: str, syn: _Synthesis) -> list[int]:
    """First sample of each whitespace token of ``spoken``: its first phoneme's.

    Phoneme events, not WORD events: espeak-ng sends a vowel-initial word's WORD event at the start of the previous
    word's last consonant ("fan in": at the n), while the n's phoneme event still carries "fan"'s text position.
    espeak-ng joins some short words with their neighbour into one word ("on the", "in the", "to be"): the joined
    word's phonemes are split between its tokens by each token's phoneme count read alone (in proportion, where
    the joined reading has a different count).
    """
    spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", spoken)]
    own: dict[int, list[int]] = {}  # token index -> start samples of the phonemes espeak-ng read for it
    for pos, sample, name in syn.phonemes:
        k = next((k for k, (a, b) in enumerate(spans) if a <= pos - 1 < b), None)
        if k is not None and not name.startswith("_"):  # "_", "_:": pauses
            own.setdefault(k, []).append(sample)
    if 0 not in own:
        raise ValueError(f"espeak-ng read no phoneme for the first word of {spoken!r}")
    starts = []
    for k in range(len(spans)):
        if k in own:
            head, tail = k, min([j for j in own if j > k], default=len(spans))  # joined tokens: head..tail-1
            starts.append(own[k][0])
            continue
        group = own[head]
        before, total = sum(syn.token_phonemes[head:k]), sum(syn.token_phonemes[head:tail])
        if total != len(group):
            before = round(before * len(group) / max(1, total))
        if not 0 < before < len(group):
            raise ValueError(f"cannot place {spoken.split()[k]!r} inside espeak-ng's joined word in {spoken!r}")
        starts.append(group[before])
    return starts


def _timing(entry: dict, syn: _Synthesis) -> WordTiming:
    spoken, sr = entry["spoken"], syn.sample_rate
    words = manifest_words(spoken)
    if len(words) != len(spoken.split()):
        raise ValueError(f"a token of {spoken!r} has no letters; word times follow whitespace tokens")
    x = syn.pcm.astype(np.float32) / 32768.0  # as synthesize reads the raw mono wav
    trimmed = trim_silence(x, sr)
    offset = 0 if trimmed is x else (trimmed.ctypes.data - x.ctypes.data) // x.itemsize  # trim returns a view
    frame = max(1, int(FRAME_S * sr))
    rms = _frame_rms(x, frame)
    loud = rms > rms.max() * 10 ** (-TOP_DB / 20)
    voiced_end = (int(np.nonzero(loud)[0][-1]) + 1) * frame if loud.any() else len(x)
    starts = _token_starts(spoken, syn)
    ends = []
    for start, stop in zip(starts, starts[1:], strict=False):
        first, stop_frame = start // frame, stop // frame  # frames first..stop_frame-1 end by the next word's start
        voiced = np.nonzero(loud[first:stop_frame])[0]
        last = first + int(voiced[-1]) + 1 if len(voiced) else first  # end frame of the word's voiced part
        ends.append(stop if last == stop_frame else max(start, last * frame))  # voiced up to the next word: its start
    ends.append(voiced_end)  # the last word: trim_silence's voiced region ends with it
    n16 = -(-len(trimmed) * SAMPLE_RATE // sr)
    return WordTiming(
        words=words,
        starts=[max(0.0, (s - offset) / sr) for s in starts],
        ends=[(e - offset) / sr for e in ends],
        num_samples=n16,
        voiced_end=(voiced_end - offset) / sr,
    )


def word_timing(entry: dict) -> WordTiming:
    """Word starts and ends of one corpus meta entry (``voice``, ``rate``, ``pitch``, ``spoken``)."""
    espeak_library()
    with _pool(1) as pool:
        syn = pool.apply(_synthesize_entry, (entry,))
    return _timing(entry, syn)


def word_end_times(entry: dict) -> list[float]:
    """Seconds from the wav's start to the end of each manifest word (``manifest_words(entry["spoken"])``)."""
    return word_timing(entry).ends


def read_meta(meta_path: str | Path) -> list[dict]:
    """The entries of a corpus meta file (one JSON object a line)."""
    return [json.loads(line) for line in Path(meta_path).read_text().splitlines() if line.strip()]


def corpus_timings(entries: Iterable[dict], workers: int = 2, every: int = 50) -> list[WordTiming]:
    """``word_timing`` of many entries, ``workers`` syntheses at a time; prints progress every ``every``."""
    espeak_library()
    entries = list(entries)
    out = []
    with _pool(workers) as pool:
        for i, (entry, syn) in enumerate(
            zip(entries, pool.imap(_synthesize_entry, entries, chunksize=1), strict=True), 1
        ):
            out.append(_timing(entry, syn))
            if i % every == 0 or i == len(entries):
                print(f"word times: {i}/{len(entries)} utterances", flush=True)
    return out


def corpus_word_end_times(meta_path: str | Path, workers: int = 2) -> dict[str, list[float]]:
    """``audio_filepath -> word end times`` for every entry of a corpus meta file (``<corpus>/meta/<split>.jsonl``)."""
    entries = read_meta(meta_path)
    return {e["audio_filepath"]: t.ends for e, t in zip(entries, corpus_timings(entries, workers), strict=True)}
