"""How much text a model invents on audio without speech: clips drawn like the demo's ``nonspeech`` split, scored.

    python recipes/score_nonspeech.py --model model.nemo --out /tmp/nonspeech_dev --seed 1

The clips (blue and violet noise, hum, sweeps, bursts, long digital silence; demo/nonspeech_split.py) are drawn from
``--seed``: the demo corpus's test split is seed 0 (its corpus seed), so another seed is a set to decide on. Each
decoding reads them as ``transcribe()`` does by default (the model's own long-form routing); the summary (share of
clips with no text, invented words per minute, per kind, the worst clips) is printed and written to summary.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a .nemo file (aligner, or any NeMo ASR model: greedy only)")
    parser.add_argument("--out", type=Path, required=True, help="clips, predictions and summary.json go here")
    parser.add_argument("--seed", type=int, default=1, help="draws the clips (0: the demo corpus's test split)")
    parser.add_argument("--clips", type=int, default=40, help="how many clips")
    parser.add_argument("--decodings", nargs="+", default=["greedy", "beam"], choices=["greedy", "beam"])
    args = parser.parse_args(argv)
    if not Path(args.model).is_file():
        parser.error(f"--model {args.model}: no such file")

    from nemo_aligner_plugin.demo.nonspeech_split import score_nonspeech_clips

    summary = score_nonspeech_clips(Path(args.model), args.out, args.seed, args.clips, args.decodings)
    for decoding, result in summary.items():
        print(f"{decoding}: {result['no_text_share']:.1%} of {result['clips']} clips with no text, "
              f"{result['invented_words_per_minute']:.2f} invented words / min")  # fmt: skip
        for kind, by_kind in result["by_kind"].items():
            print(
                f"  {kind:8s} {by_kind['no_text_share']:.1%} no text, {by_kind['invented_words_per_minute']:.2f} / min"
            )
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"summary: {args.out / 'summary.json'}")


if __name__ == "__main__":
    main()
