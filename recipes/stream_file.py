"""Transcribe an audio file as a live stream through a Chunkwise Aligner, the way a microphone would feed it.

    python recipes/stream_file.py model.nemo a.wav                    # as fast as the CPU goes (simulated clock)
    python recipes/stream_file.py model.nemo a.wav --realtime         # wait for each piece, like a microphone
    python recipes/stream_file.py model.nemo a.wav --word-ends ends.json  # per-word latency against reference times

Prints each piece of text with the (simulated) time it came out, then the transcript, the real-time factor (one
thread unless --threads), the compute per chunk, and latency: per word with --word-ends (a JSON list of word end
times in seconds, one per word of --reference-text or of the transcript), else the final word's latency from the
end of speech (the last 10 ms frame within 40 dB of the loudest). Docs: docs/streaming.md.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="a .nemo with aligner_type=chunkwise")
    parser.add_argument("audio", type=Path, help="audio file (any rate or channel count soundfile/NeMo can read)")
    parser.add_argument("--realtime", action="store_true", help="feed at real time instead of as fast as possible")
    parser.add_argument("--piece-ms", type=float, default=40.0, help="audio per feed() call, ms (a microphone buffer)")
    parser.add_argument("--tail-seconds", type=float, default=1.0, help="silence fed after the file (mic keeps going)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--word-ends", type=Path, help="JSON list of reference word end times (s) for latency")
    parser.add_argument("--reference-text", help="the words --word-ends belongs to (default: the transcript)")
    args = parser.parse_args(argv)
    for path in (args.model, args.audio, args.word_ends):
        if path is not None and not path.is_file():
            parser.error(f"{path} does not exist")

    import torch
    from nemo.collections.asr.parts.preprocessing.segment import AudioSegment

    from nemo_aligner_plugin.chunkwise.transcriber import StreamingTranscriber
    from nemo_aligner_plugin.demo.streaming_eval import simulate_stream, speech_end_seconds, word_latencies
    from nemo_aligner_plugin.transcribe_cli import TranscriptionConfig, load_model

    torch.set_num_threads(args.threads)
    model = load_model(TranscriptionConfig(model_path=str(args.model)))
    try:
        streamer = StreamingTranscriber(model)
    except ValueError as err:
        parser.error(str(err))
    rate = streamer.sample_rate
    try:
        audio = AudioSegment.from_file(str(args.audio), target_sr=rate, channel_selector="average").samples
    except Exception as err:  # soundfile/librosa raise many kinds
        parser.error(f"cannot read {args.audio}: {err}")

    def show(when: float, text: str) -> None:
        print(f"[{when:7.2f} s] {text}", flush=True)

    run = simulate_stream(
        streamer, audio, rate, args.piece_ms / 1000, args.tail_seconds, on_text=show, realtime=args.realtime
    )
    chunk_seconds = streamer.chunk_seconds
    print(f"\ntranscript: {run.text}")
    print(
        f"audio {run.audio_seconds:.2f} s (with {args.tail_seconds:g} s of silence after), compute "
        f"{run.compute_seconds:.2f} s: RTF {run.compute_seconds / run.audio_seconds:.3f}, "
        f"{1000 * run.compute_seconds / math.ceil(run.audio_seconds / chunk_seconds):.1f} ms per "
        f"{1000 * chunk_seconds:.0f} ms chunk"
    )
    if args.word_ends is not None:
        ends = json.loads(args.word_ends.read_text())
        latencies = word_latencies(args.reference_text or run.text, run, ends)
        for word, latency in zip(run.text.split(), latencies, strict=False):
            print(f"  {word:>20s}  {1000 * latency:6.0f} ms")
        if latencies:
            print(f"median word latency {1000 * sorted(latencies)[len(latencies) // 2]:.0f} ms over {len(latencies)}")
    elif run.text:
        end = speech_end_seconds(audio, rate)
        if end is not None:
            print(f"final word: emitted {1000 * (run.word_emitted_at[-1] - end):.0f} ms after the end of speech")


if __name__ == "__main__":
    main()
