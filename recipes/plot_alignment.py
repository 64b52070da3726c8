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
import json
import math
from pathlib import Path
from typing import Optional

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

from nemo_aligner_plugin import AlignerEncoderModel  # noqa: E402
from nemo_aligner_plugin.analysis import capture_attention, diagonality, timestamps_from_maps  # noqa: E402


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help=".nemo file of an AlignerEncoderModel")
    parser.add_argument("--audio", required=True, help="audio file at the model's sample rate (mono or first channel)")
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


def load_audio(path: Path, sample_rate: int) -> torch.Tensor:
    """(1, samples) float32; the file must already be at the model's sample rate."""
    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    if rate != sample_rate:
        raise SystemExit(f"{path}: sample rate {rate} Hz, the model expects {sample_rate} Hz; resample first")
    return torch.from_numpy(audio[:, 0]).unsqueeze(0)


def plot(
    blocks: list[torch.Tensor],
    titles: list[str],
    scores: list[float],
    best_position: int,
    labels: list[str],
    out: Path,
) -> None:
    """Grid of (U+1, T') heat maps, one per layer."""
    cols = math.ceil(math.sqrt(len(blocks)))
    rows = math.ceil(len(blocks) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat[len(blocks) :]:
        ax.axis("off")
    for position, (ax, block, title, score) in enumerate(zip(axes.flat, blocks, titles, scores, strict=False)):
        ax.imshow(block.numpy(), aspect="auto", origin="upper", interpolation="nearest", cmap="viridis")
        aligning = position == best_position
        ax.set_title(
            f"{title}: {score:.3f}" + (" (aligning)" if aligning else ""),
            fontsize=9,
            fontweight="bold" if aligning else "normal",
            color="red" if aligning else "black",
        )
        ax.set_xlabel("encoder frame", fontsize=8)
        ax.set_ylabel("output position", fontsize=8)
        if len(labels) <= 40:
            ax.set_yticks(range(len(labels)), labels, fontsize=6)
        if aligning:
            for spine in ax.spines.values():
                spine.set_edgecolor("red")
                spine.set_linewidth(2.5)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv: Optional[list[str]] = None) -> dict:
    args = parse_args(argv)
    out = Path(args.out)
    model = AlignerEncoderModel.restore_from(args.model, map_location=torch.device(args.device)).eval()
    audio = load_audio(Path(args.audio), int(model.preprocessor._sample_rate))
    audio_lens = torch.tensor([audio.size(1)])
    layers = None if args.layers == "all" else [int(i) for i in args.layers.split(",")]

    maps = capture_attention(model, audio, audio_lens, layers=layers, head_average=args.heads == "mean")
    with torch.no_grad():
        encoded, encoded_len = model(input_signal=audio.to(args.device), input_signal_length=audio_lens.to(args.device))
        hyp = model.decoding.rnnt_decoder_predictions_tensor(encoded, encoded_len, return_hypotheses=True)[0]
    token_ids = model.tokenizer.text_to_ids(args.text) if args.text is not None else hyp.y_sequence.tolist()
    num_tokens, enc_len = len(token_ids), int(maps.encoded_len[0])
    reverse = bool(model.cfg.get("reverse_audio", False)) if args.reverse is None else args.reverse

    # (layers, heads) scores; with --heads mean the one "head" is the average
    head_scores = [
        [diagonality(head, num_tokens, enc_len, reverse=reverse) for head in probs[0]] for probs in maps.probs
    ]
    heads = [max(range(len(row)), key=row.__getitem__) for row in head_scores]
    scores = [row[h] for row, h in zip(head_scores, heads, strict=True)]
    best_position = max(range(len(scores)), key=scores.__getitem__)
    best = maps.layers[best_position]
    blocks = [maps.block(i, 0, num_tokens + 1, head=h) for i, h in enumerate(heads)]
    by_head = args.heads == "best"
    titles = [f"layer {layer}" + (f" head {h}" if by_head else "") for layer, h in zip(maps.layers, heads, strict=True)]
    labels = [*model.tokenizer.ids_to_tokens(token_ids), "<eos>"][: blocks[0].size(0)]
    out.parent.mkdir(parents=True, exist_ok=True)
    plot(blocks, titles, scores, best_position, labels, out)

    timestamps = timestamps_from_maps(model, maps, [token_ids], layer=best, reverse=reverse)[0]
    result = {
        "model": str(args.model),
        "audio": str(args.audio),
        "hypothesis": hyp.text,
        "reference": args.text,
        "tokens": labels[:-1],
        "encoded_len": enc_len,
        "heads": args.heads,
        "layer_scores": {str(layer): score for layer, score in zip(maps.layers, scores, strict=True)},
        "head_scores": {str(layer): row for layer, row in zip(maps.layers, head_scores, strict=True)},
        "aligning_layer": best,
        "aligning_head": heads[best_position] if by_head else None,
        "aligning_score": scores[best_position],
        "reverse": reverse,
        "words": timestamps["word"],
    }
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    print(f"hypothesis: {hyp.text!r}")
    where = f"{best}, head {heads[best_position]}" if by_head else f"{best} (head average)"
    print(
        f"aligning layer: {where} (diagonality {scores[best_position]:.3f}); wrote {out} and {out.with_suffix('.json')}"
    )
    return result


if __name__ == "__main__":
    main()
