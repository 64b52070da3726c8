"""Plot an Aligner-Encoder's per-layer self-attention for one utterance and find its aligning layer and head.

    python recipes/plot_alignment.py --model model.nemo --audio utt.wav --out fig.png [--text "reference"] \
        [--layers all|12,13,14] [--heads best|mean] [--reverse|--no-reverse]

Writes ``fig.png``: one panel per layer with the top-left block (rows = output positions 0..U incl. EOS,
columns = encoder frames) of that layer's most diagonal head (``--heads best``, the default) or of the
head average (``--heads mean``), titled with its diagonality score, the aligning layer framed in red.
Best head by default because the alignment usually lives in one or two heads of a layer: averaging in the
others blurs the staircase and its score. Writes ``fig.json`` next to it (per-layer and per-head scores,
aligning layer and head, word timestamps read from the aligning layer's head average, in seconds of the
original audio) and prints the aligning layer and its score. Columns are encoder frames as the encoder
saw them: for a ``reverse_audio`` model that is the reversed audio, and its aligning layer is the
anti-diagonal one. With ``--text`` the rows follow the reference's tokens instead of the hypothesis (the
encoder's attention does not depend on the text; only the number of rows and their labels do). See
docs/analysis.md for the score.
"""

from __future__ import annotations

import argparse
import importlib.util
from typing import Optional

INSTALL_HINT = 'pip install matplotlib (or pip install -e ".[plot]")'


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help=".nemo file of an AlignerEncoderModel")
    parser.add_argument("--audio", required=True, help="audio file (resampled to the model's rate, channels averaged)")
    parser.add_argument("--text", default=None, help="reference text: rows follow its tokens instead of the hypothesis")
    parser.add_argument("--out", required=True, help="output PNG; the JSON goes next to it with suffix .json")
    parser.add_argument("--layers", default="all", help="'all' or comma-separated encoder layer indices")
    parser.add_argument(
        "--heads",
        choices=("best", "mean"),
        default="best",
        help="per layer, plot and score its most diagonal head (best) or the head average (mean)",
    )
    parser.add_argument(
        "--reverse",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="score the anti-diagonal; default: the model's reverse_audio setting",
    )
    parser.add_argument("--device", default="cpu", help="torch device for the forward pass")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> dict:
    args = parse_args(argv)
    if importlib.util.find_spec("matplotlib") is None:  # one line naming the install, before NeMo or the model load
        raise SystemExit(f"error: plot_alignment.py draws with matplotlib, which is not installed: {INSTALL_HINT}")
    from nemo_aligner_plugin.demo.alignment_plot import plot_alignment

    return plot_alignment(
        args.model, args.audio, args.out, args.text, args.layers, args.heads, args.reverse, args.device
    )


if __name__ == "__main__":
    main()
