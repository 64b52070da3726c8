"""``python -m nemo_aligner_plugin.onnx DIR a.wav ...``: transcribe audio files with an exported folder.

Prints one line per file, ``path<TAB>text``, or a JSON line per file with ``--json`` (text, tokens, frames and
token times in seconds). ``--manifest test.json`` reads a NeMo manifest instead, and ``--output preds.json`` writes
its lines back with ``pred_text``, as recipes/transcribe_aligner.py does; with references, WER is printed to
stderr. Torch-free, like the runtime it calls.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

from nemo_aligner_plugin.onnx.runtime import AlignerOnnx


def word_errors(reference: str, hypothesis: str) -> int:
    """Word-level edit distance (substitutions + deletions + insertions)."""
    ref, hyp = reference.split(), hypothesis.split()
    row = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, start=1):
        diagonal, row[0] = row[0], i
        for j, other in enumerate(hyp, start=1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (word != other))
    return row[-1]


def read_manifest(path: str) -> list[dict]:
    """NeMo manifest lines; relative audio paths are taken relative to the manifest, as NeMo does."""
    entries = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            audio = Path(entry["audio_filepath"])
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(f"{path}:{number}: not a manifest line with audio_filepath ({error})") from None
        entry["audio_filepath"] = str(audio if audio.is_absolute() else Path(path).parent / audio)
        entries.append(entry)
    return entries


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nemo_aligner_plugin.onnx", description=__doc__.split("\n")[0])
    parser.add_argument("folder", help="a folder written by AlignerEncoderModel.export(dir)")
    parser.add_argument("audio", nargs="*", help="audio files (any rate and channel count soundfile reads)")
    parser.add_argument("--manifest", help="a NeMo manifest to transcribe instead of files")
    parser.add_argument("--output", help="with --manifest: write its lines with pred_text here")
    parser.add_argument("--batch-size", type=int, default=8, help="inputs (or long-form chunks) per batch")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: all)")
    parser.add_argument("--json", action="store_true", help="one JSON object per file instead of path<TAB>text")
    args = parser.parse_args(argv)
    if bool(args.audio) == bool(args.manifest):
        parser.error("give audio files or --manifest, not both")
    try:
        entries = read_manifest(args.manifest) if args.manifest else [{"audio_filepath": a} for a in args.audio]
        model = AlignerOnnx(args.folder, num_threads=args.threads)
        results = model.transcribe([e["audio_filepath"] for e in entries], batch_size=args.batch_size)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for entry, result in zip(entries, results, strict=True):
        path = entry["audio_filepath"]
        if args.json:
            times = [round(f * model.frame_seconds, 3) for f in result.frames]
            line = {"audio": path, "text": result.text, "tokens": result.tokens, "frames": result.frames}
            print(json.dumps({**line, "token_seconds": times}))
        elif not args.output:
            print(f"{path}\t{result.text}")
    if args.output:
        with open(args.output, "w") as out:
            for entry, result in zip(entries, results, strict=True):
                out.write(json.dumps({**entry, "pred_text": result.text}) + "\n")
    scored = [(e["text"], r.text) for e, r in zip(entries, results, strict=True) if isinstance(e.get("text"), str)]
    if scored:
        words = sum(len(ref.split()) for ref, _ in scored)
        errors = sum(word_errors(ref, hyp) for ref, hyp in scored)
        print(
            f"WER {100 * errors / max(words, 1):.2f}% ({errors} errors / {words} words, {len(scored)} utterances)",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
