#!/usr/bin/env python3
"""Streaming cost on one CPU thread: real-time factor, compute per chunk and peak memory, for a 1-minute and a
10-minute stream through the Chunkwise Aligner (and NeMo's cache-aware RNN-T when given), side by side.

    python benchmarks/streaming_bench.py --model CHUNKWISE.nemo --corpus data/demo/corpus \
        [--rnnt RNNT_STREAMING.nemo] --out benchmarks/results/$(date +%F)-streaming-cpu.md

The stream is the corpus's test utterances one after another with 0.3 s of silence between them, repeated to the
length, fed 40 ms at a time. Each (system, length) runs in its own process, so its peak RSS (Linux VmHWM, model
included) is that stream's alone; "peak / 1 min" is the memory target's ratio (flat memory: ~1.0x).
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    os.environ.update(dict.fromkeys(("OMP_NUM_THREADS", "MKL_NUM_THREADS"), "1"))

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

PIECE_SECONDS = 0.04
GAP_SECONDS = 0.3
LENGTHS_MINUTES = (1.0, 10.0)


def _vm_kb(key: str) -> int:
    return int(re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M).group(1))


def stream_audio(corpus: Path, minutes: float, sample_rate: int):
    """Test utterances with pauses between them, repeated, cut to ``minutes``; yields 40 ms pieces."""
    import numpy as np
    import soundfile as sf

    entries = [json.loads(line) for line in (corpus / "test_manifest.json").read_text().splitlines() if line]
    gap = np.zeros(int(GAP_SECONDS * sample_rate), np.float32)
    clips = [np.concatenate([sf.read(e["audio_filepath"], dtype="float32")[0], gap]) for e in entries]
    total, step, produced, i = int(minutes * 60 * sample_rate), int(PIECE_SECONDS * sample_rate), 0, 0
    buffer = np.zeros(0, np.float32)
    while produced < total:
        while len(buffer) < step:
            buffer = np.concatenate([buffer, clips[i % len(clips)]])
            i += 1
        piece, buffer = buffer[:step], buffer[step:]
        produced += len(piece)
        yield piece


def child(system: str, model_path: str, corpus: Path, minutes: float) -> dict:
    """One stream in this process; prints and returns its numbers."""
    import torch

    torch.set_num_threads(1)
    from nemo_aligner_plugin.frames import attention_chunk_seconds
    from nemo_aligner_plugin.transcribe_cli import TranscriptionConfig, load_model

    model = load_model(TranscriptionConfig(model_path=model_path))
    if system == "chunkwise":
        from nemo_aligner_plugin.chunkwise.transcriber import StreamingTranscriber

        streamer = StreamingTranscriber(model)
    else:
        from nemo_aligner_plugin.demo.rnnt_streamer import RNNTStreamer

        streamer = RNNTStreamer(model)
    rate = int(model.preprocessor._sample_rate)
    loaded_kb = _vm_kb("VmRSS")
    compute, words, rss_at_minute = 0.0, 0, []
    samples = 0
    for piece in stream_audio(corpus, minutes, rate):
        began = time.perf_counter()
        streamer.feed(piece)
        compute += time.perf_counter() - began
        samples += len(piece)
        if samples % (60 * rate) < len(piece):
            rss_at_minute.append(_vm_kb("VmRSS") / 1024)
    began = time.perf_counter()
    rss_at_minute.append(_vm_kb("VmRSS") / 1024)  # and at the end (the only entry for a stream under a minute)
    words = len(streamer.finish().split())
    compute += time.perf_counter() - began
    chunk_seconds = attention_chunk_seconds(model)  # the model's own frame rate, not an assumed 40 ms
    audio = samples / rate
    result = {
        "system": system,
        "minutes": minutes,
        "rtf": compute / audio,
        "ms_per_chunk": 1000 * compute / (audio / chunk_seconds),
        "peak_rss_mb": _vm_kb("VmHWM") / 1024,
        "rss_after_load_mb": loaded_kb / 1024,
        "rss_each_minute_mb": rss_at_minute,
        "words": words,
    }
    print("RESULT " + json.dumps(result), flush=True)
    return result


def run_child(system: str, model: str, corpus: Path, minutes: float) -> dict:
    cmd = [sys.executable, __file__, "--child", system, "--model", model, "--corpus", str(corpus)]
    out = subprocess.run([*cmd, "--minutes", str(minutes)], capture_output=True, text=True, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{system} {minutes} min failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def report(results: list[dict], command: str) -> str:
    shortest = min(r["minutes"] for r in results)  # "peak / 1 min" with the default lengths
    base = {r["system"]: r["peak_rss_mb"] for r in results if r["minutes"] == shortest}
    rows = [
        f"| {r['system']} | {r['minutes']:g} | {r['rtf']:.3f} | {r['ms_per_chunk']:.1f} | {r['peak_rss_mb']:.0f} "
        f"| {r['peak_rss_mb'] / base[r['system']]:.2f}x | {r['rss_each_minute_mb'][0]:.0f} -> "
        f"{r['rss_each_minute_mb'][-1]:.0f} | {r['words']} |"
        for r in results
    ]
    return "\n".join(
        [
            f"# Streaming on one CPU thread ({time.strftime('%Y-%m-%d')})",
            "",
            f"Command: `{command}`  ",
            f"Load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
            "",
            "| system | stream min | RTF | ms / chunk | peak RSS MiB | peak / 1 min | RSS 1st -> last minute MiB "
            "| words |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a chunkwise .nemo (configs/chunkwise_demo.yaml)")
    parser.add_argument("--rnnt", help="a cache-aware RNN-T .nemo (configs/baselines/rnnt_streaming_demo.yaml)")
    parser.add_argument("--corpus", type=Path, required=True, help="demo corpus folder (test_manifest.json)")
    parser.add_argument("--minutes", type=float, nargs="*", default=list(LENGTHS_MINUTES))
    parser.add_argument("--out", type=Path, help="write the markdown report here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.model, args.corpus, args.minutes[0])
        return
    systems = [("chunkwise", args.model)] + ([("rnnt_streaming", args.rnnt)] if args.rnnt else [])
    results = []
    for minutes in sorted(args.minutes):
        for system, path in systems:
            print(f"[streaming_bench] {system}: {minutes:g} min stream", flush=True)
            results.append(run_child(system, path, args.corpus, minutes))
    text = report(results, "python " + " ".join(sys.argv))
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
