"""Scoring a streaming recognizer as a microphone would feed it: WER, per-word latency, real-time factor.

A streamer is any object with ``feed(samples) -> new text`` and ``finish() -> text`` (``StreamingTranscriber``, the
NeMo RNN-T streamer of the demo). Audio goes in ``piece_seconds`` at a time, then ``tail_seconds`` of silence (the
microphone keeps recording after the speaker stops), then ``finish()``. Wall time is simulated: piece k arrives at
its end time a_k, and its processing ends at done_k = max(a_k, done_{k-1}) + compute_k, so a recognizer slower than
real time accumulates delay. A word is emitted at the first call whose text holds it in its final form at its place.
Latency = emission time - the word's end in the audio (reference end times: ``demo/word_times.py``), over the words
the hypothesis got right (jiwer's alignment).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

__all__ = ["StreamRun", "simulate_stream", "speech_end_seconds", "word_latencies", "summarize"]


@dataclass
class StreamRun:
    """One utterance through a streamer."""

    text: str  # final transcript
    word_emitted_at: list[float]  # per word of ``text``: simulated wall time (s from stream start) it appeared
    audio_seconds: float  # audio fed, silence tail included
    compute_seconds: float  # sum of feed()/finish() wall times
    calls: int = 0  # feed() calls plus finish()
    texts: list[str] = field(default_factory=list, repr=False)  # text after each call (debugging)


def simulate_stream(
    streamer: Any,
    audio: np.ndarray,
    sample_rate: int,
    piece_seconds: float = 0.04,
    tail_seconds: float = 1.0,
    on_text: Optional[Callable[[float, str], None]] = None,
    realtime: bool = False,
) -> StreamRun:
    """Feed ``audio`` (then ``tail_seconds`` of zeros) in pieces; record when each final word first appeared.

    ``on_text(time, new_text)`` sees every piece of text as it comes; ``realtime`` waits for each piece's arrival
    time like a microphone (otherwise the clock is simulated and the run goes as fast as the recognizer).
    """
    tail = np.zeros(int(tail_seconds * sample_rate), np.float32)
    signal = np.concatenate([np.asarray(audio, dtype=np.float32), tail])
    step = max(1, int(round(piece_seconds * sample_rate)))
    done, compute, text, texts, times = 0.0, 0.0, "", [], []
    clock = time.perf_counter()
    for start in range(0, len(signal), step):
        piece = signal[start : start + step]
        if realtime:
            time.sleep(max(0.0, clock + (start + len(piece)) / sample_rate - time.perf_counter()))
        began = time.perf_counter()
        new = streamer.feed(piece)
        spent = time.perf_counter() - began
        done = max((start + len(piece)) / sample_rate, done) + spent
        compute += spent
        text += new
        texts.append(text)
        times.append(done)
        if new and on_text is not None:
            on_text(done, new)
    began = time.perf_counter()
    final = streamer.finish()
    spent = time.perf_counter() - began
    compute += spent
    texts.append(final)
    times.append(max(len(signal) / sample_rate, done) + spent)
    if on_text is not None and final != text:
        on_text(times[-1], final[len(text) :] if final.startswith(text) else final)
    emitted = _first_appearance(final, texts, times)
    return StreamRun(final, emitted, len(signal) / sample_rate, compute, len(texts), texts)


def _first_appearance(final: str, texts: list[str], times: list[float]) -> list[float]:
    """Per word of ``final``: the time of the first text whose word i equals it. Text only grows, so a word equal
    to its final form has all its pieces ("eight" on the way to "eighty" is not equal, and waits)."""
    words = final.split()
    emitted = [times[-1]] * len(words)
    pending = 0  # words before this one have their time
    for text, when in zip(texts, times, strict=True):
        current = text.split()
        while pending < min(len(words), len(current)) and current[pending] == words[pending]:
            emitted[pending] = when
            pending += 1
    return emitted


def speech_end_seconds(audio: np.ndarray, sample_rate: int, top_db: float = 40.0) -> Optional[float]:
    """End of the last 10 ms frame within ``top_db`` of the loudest one (the corpus trimmer's rule); None if silent."""
    frame = max(1, sample_rate // 100)
    count = len(audio) // frame
    if count == 0:
        return None
    rms = np.sqrt(np.mean(np.asarray(audio[: count * frame], np.float64).reshape(count, frame) ** 2, axis=1))
    if rms.max() <= 1e-6:
        return None
    voiced = np.nonzero(rms > rms.max() * 10 ** (-top_db / 20))[0]
    return float((voiced[-1] + 1) * frame / sample_rate)


def word_latencies(reference: str, run: StreamRun, word_ends: Sequence[float]) -> list[float]:
    """Emission minus reference end (s) for every hypothesis word that jiwer aligns as equal to a reference word."""
    import jiwer

    ref_words = reference.split()
    if len(ref_words) != len(word_ends):
        raise ValueError(f"{len(word_ends)} word end times for {len(ref_words)} reference words: {reference!r}")
    if not ref_words or not run.text.split():
        return []
    out = jiwer.process_words(reference, run.text)
    latencies = []
    for chunk in out.alignments[0]:
        if chunk.type == "equal":
            for offset in range(chunk.ref_end_idx - chunk.ref_start_idx):
                emitted = run.word_emitted_at[chunk.hyp_start_idx + offset]
                latencies.append(emitted - word_ends[chunk.ref_start_idx + offset])
    return latencies


def summarize(
    references: Sequence[str],
    runs: Sequence[StreamRun],
    latencies: Optional[Sequence[float]] = None,
    chunk_count: Optional[Callable[[StreamRun], int]] = None,
) -> dict[str, Any]:
    """WER (%), real-time factor, and latency percentiles (ms) over a split."""
    import jiwer

    hyps = [run.text for run in runs]
    audio = sum(run.audio_seconds for run in runs)
    compute = sum(run.compute_seconds for run in runs)
    summary: dict[str, Any] = {
        "utterances": len(runs),
        "wer": 100.0 * jiwer.wer(list(references), hyps) if references else 0.0,
        "rtf": compute / audio if audio else 0.0,
        "audio_seconds": audio,
        "compute_seconds": compute,
    }
    if chunk_count is not None:
        chunks = sum(chunk_count(run) for run in runs)
        summary["ms_per_chunk"] = 1000.0 * compute / chunks if chunks else 0.0
    if latencies:
        values = np.asarray(latencies) * 1000.0
        summary["latency_ms"] = {
            "words": len(values),
            "median": float(np.median(values)),
            "p90": float(np.percentile(values, 90)),
            "mean": float(values.mean()),
        }
    return summary
