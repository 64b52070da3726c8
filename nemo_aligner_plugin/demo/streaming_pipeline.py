"""The streaming demo (``make demo-streaming``): corpus -> Chunkwise Aligner and cache-aware RNN-T, trained with the
``make demo`` budget -> offline and streaming WER, per-word latency, real-time factor -> report_streaming.md.

Both systems stream through the same code: ``StreamingFeatures`` + NeMo's cache-aware encoder step
(``EncoderStream``), then each one's decoder; ``demo/streaming_eval.py`` feeds them as a microphone would.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from nemo_aligner_plugin.demo.pipeline import REPO, SMOKE_CORPUS, SMOKE_OVERRIDES, ensure_espeak, log, run_recipe, train
from nemo_aligner_plugin.demo.streaming_eval import simulate_stream, summarize, word_latencies
from nemo_aligner_plugin.frames import attention_chunk_seconds

__all__ = ["STREAMING_SYSTEMS", "evaluate_streaming", "run_streaming_demo"]

STREAMING_SYSTEMS = ("chunkwise", "rnnt_streaming")  # trained by run_streaming_demo; "aligner" may be given (offline)
SPLITS = ("dev", "test", "test_long")  # decide on dev, report test; test_long: 2-3 sentences, ~8 s
PIECE_SECONDS = 0.04  # microphone buffer: one encoder frame
TAIL_SECONDS = 1.0  # silence after each utterance: the microphone keeps recording
SMOKE_STREAMING = [  # 4-frame chunks, 2 left: the RNN-T baseline gets the same encoder keys
    "model.chunkwise.chunk_size=4",
    "model.chunkwise.left_chunks=2",
    "model.encoder.att_context_size=[8,3]",
]


def _streamer_factory(system: str, model) -> Callable[[], Any]:
    if system == "chunkwise":
        from nemo_aligner_plugin.chunkwise.transcriber import StreamingTranscriber

        return lambda: StreamingTranscriber(model)
    from nemo_aligner_plugin.demo.rnnt_streamer import RNNTStreamer

    return lambda: RNNTStreamer(model)


def _texts(hyps) -> list[str]:
    """NeMo's transcribe() result (Hypotheses, strings, or a tuple of them) -> texts."""
    return [h.text if hasattr(h, "text") else str(h) for h in (hyps[0] if isinstance(hyps, tuple) else hyps)]


def _chunk_counter(chunk_seconds: float) -> Callable[[Any], int]:
    return lambda run: math.ceil(run.audio_seconds / chunk_seconds)


def _stream_split(system: str, model, entries: list[dict], word_ends: dict[str, list[float]]):
    """Every utterance through a fresh streamer on one thread; (runs, latencies of the correctly read words)."""
    import soundfile as sf

    make = _streamer_factory(system, model)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the real-time factor on one core
    runs, latencies = [], []
    try:
        for i, entry in enumerate(entries):
            audio, rate = sf.read(entry["audio_filepath"], dtype="float32")
            run = simulate_stream(make(), audio, rate, PIECE_SECONDS, TAIL_SECONDS)
            runs.append(run)
            ends = word_ends.get(entry["audio_filepath"])
            if ends is not None and len(ends) == len(entry["text"].split()):
                latencies += word_latencies(entry["text"], run, ends)
            if (i + 1) % 50 == 0:
                log(f"{system}: streamed {i + 1}/{len(entries)}")
    finally:
        torch.set_num_threads(threads)
    return runs, latencies


def _with_tail(path: str) -> np.ndarray:
    """The audio a stream hears: the file, then TAIL_SECONDS of silence."""
    import soundfile as sf

    audio, rate = sf.read(path, dtype="float32")
    return np.concatenate([audio, np.zeros(int(TAIL_SECONDS * rate), np.float32)])


def evaluate_streaming(system: str, model, corpus: Path, out_dir: Path, streaming: bool = True) -> dict[str, Any]:
    """Offline WER of ``model.transcribe`` and, when ``streaming``, the streamed WER, latency and RTF (one thread)."""
    import jiwer

    from nemo_aligner_plugin.demo.word_times import corpus_word_end_times

    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for split in SPLITS:
        entries = [json.loads(line) for line in (corpus / f"{split}_manifest.json").read_text().splitlines() if line]
        refs = [e["text"] for e in entries]
        paths = [e["audio_filepath"] for e in entries]
        offline = _texts(model.transcribe(paths, batch_size=16, verbose=False))
        split_result: dict[str, Any] = {"offline_wer": 100.0 * jiwer.wer(refs, offline)}
        if streaming:
            runs, latencies = _stream_split(
                system, model, entries, corpus_word_end_times(corpus / "meta" / f"{split}.jsonl")
            )
            summary = summarize(refs, runs, latencies, chunk_count=_chunk_counter(attention_chunk_seconds(model)))
            # the stream also heard the silence tail: offline decoding of that same audio is what it must equal
            same_audio = _texts(model.transcribe([_with_tail(p) for p in paths], batch_size=16, verbose=False))
            summary["same_text_as_offline"] = sum(r.text == o for r, o in zip(runs, same_audio, strict=True))
            summary["offline_wer_with_tail"] = 100.0 * jiwer.wer(refs, same_audio)
            split_result["streaming"] = summary
            rows = zip(paths, runs, offline, same_audio, strict=True)
            lines = [
                json.dumps({"audio_filepath": p, "streamed": r.text, "offline": o, "offline_with_tail": t}) + "\n"
                for p, r, o, t in rows
            ]
            (out_dir / f"{split}_streaming.jsonl").write_text("".join(lines))
        results[split] = split_result
        log(f"{system} {split}: {json.dumps(split_result)}")
    results["nonspeech"] = _nonspeech(model, corpus)
    return results


def _nonspeech(model, corpus: Path) -> dict[str, Any]:
    """Offline reading of the non-speech clips (silence, noise, hum; streamed text equals offline): the share
    with no text and the words invented per minute."""
    entries = [json.loads(line) for line in (corpus / "nonspeech_manifest.json").read_text().splitlines() if line]
    texts = _texts(model.transcribe([e["audio_filepath"] for e in entries], batch_size=8, verbose=False))
    minutes = sum(e["duration"] for e in entries) / 60
    words = sum(len(t.split()) for t in texts)
    return {
        "clips": len(entries),
        "no_text_share": sum(not t.strip() for t in texts) / len(entries),
        "invented_words_per_minute": words / minutes if minutes else 0.0,
    }


def _load(path: Path):
    from nemo_aligner_plugin.transcribe_cli import TranscriptionConfig, load_model

    return load_model(TranscriptionConfig(model_path=str(path)))


def run_streaming_demo(
    work: Path,
    given: dict[str, Path],
    seed: int = 0,
    smoke: bool = False,
    overrides: Optional[list[str]] = None,
    systems: tuple[str, ...] = STREAMING_SYSTEMS,
) -> Path:
    """Train (or take from ``given``) each system, score it, and write report_streaming.md; returns its path."""
    from nemo_aligner_plugin.demo.corpus import current_corpus_info
    from nemo_aligner_plugin.demo.streaming_report import write_streaming_report

    start = time.perf_counter()
    corpus = work / ("corpus_smoke" if smoke else "corpus")
    if current_corpus_info(corpus) is None:
        ensure_espeak()
        log(f"stage 1/3: corpus -> {corpus}")
        run_recipe(["make_demo_corpus.py", "--out", str(corpus), "--seed", str(seed)] + (SMOKE_CORPUS if smoke else []))
    run_dir = work / "runs" / (time.strftime("%Y-%m-%d_%H-%M-%S") + "_streaming")
    overrides = [f"seed={seed}"] + (SMOKE_OVERRIDES + SMOKE_STREAMING if smoke else []) + (overrides or [])
    results: dict[str, Any] = {}
    for system in [*systems, *(s for s in given if s not in systems)]:
        if system in given:
            model_path = given[system]
            summary_file = model_path.parent / "training_summary.json"  # where the training recipes write it
            summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
            log(f"{system}: evaluating the given model {model_path}")
        else:
            log(f"stage 2/3: training {system} -> {run_dir / system}")
            summary = train(corpus, run_dir / system, overrides, system)
            model_path = Path(summary["nemo_path"])
        log(f"stage 3/3: {system}: offline{' and streaming' if system != 'aligner' else ''} scoring of dev and test")
        model = _load(model_path)
        scores = evaluate_streaming(system, model, corpus, run_dir / system, streaming=system != "aligner")
        results[system] = {"model": str(model_path), "training": summary, "splits": scores}
    report = {"systems": results, "total_minutes": (time.perf_counter() - start) / 60, "repo": str(REPO)}
    return write_streaming_report(run_dir, report)
