"""``python -m nemo_aligner_plugin.onnx DIR a.wav ...``: transcribe audio files with an exported folder.

Prints one line per file, ``path<TAB>text``, or a JSON line per file with ``--json`` (text, tokens, frames and
token times in seconds). Torch-free, like the runtime it calls.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional

from nemo_aligner_plugin.onnx.runtime import AlignerOnnx


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nemo_aligner_plugin.onnx", description=__doc__.split("\n")[0])
    parser.add_argument("folder", help="a folder written by AlignerEncoderModel.export(dir)")
    parser.add_argument("audio", nargs="+", help="audio files (any rate and channel count soundfile reads)")
    parser.add_argument("--batch-size", type=int, default=8, help="inputs (or long-form chunks) per batch")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: all)")
    parser.add_argument("--json", action="store_true", help="one JSON object per file instead of path<TAB>text")
    args = parser.parse_args(argv)
    try:
        model = AlignerOnnx(args.folder, num_threads=args.threads)
        results = model.transcribe(args.audio, batch_size=args.batch_size)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for path, result in zip(args.audio, results, strict=True):
        if args.json:
            times = [round(f * model.frame_seconds, 3) for f in result.frames]
            line = {"audio": path, "text": result.text, "tokens": result.tokens, "frames": result.frames}
            print(json.dumps({**line, "token_seconds": times}))
        else:
            print(f"{path}\t{result.text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
