"""Per-layer self-attention of an Aligner-Encoder for one utterance: the aligning layer and head, and its figure.

U: output tokens (EOS included as the last row), T': encoder frames. The figure is one (U+1, T') heat map per
layer; the scores and word timestamps come from nemo_aligner_plugin.analysis. matplotlib is imported only to draw.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

__all__ = ["alignment_figure", "plot_alignment"]

LABEL_FONTSIZE = 9  # token labels on the y axis: readable at the saved dpi
ROW_INCHES = 0.16  # figure height per token row, so that the labels do not overlap


def alignment_figure(
    blocks: list[Any],
    titles: list[str],
    scores: list[float],
    best_position: int,
    labels: list[str],
) -> Any:
    """Grid of (U+1, T') heat maps, one per layer, the aligning one framed in red; returns the matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    cols = math.ceil(math.sqrt(len(blocks)))
    rows = math.ceil(len(blocks) / cols)
    panel_height = max(3.0, ROW_INCHES * len(labels) + 1.0)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, panel_height * rows), squeeze=False)
    for ax in axes.flat[len(blocks) :]:
        ax.axis("off")
    for position, (ax, block, title, score) in enumerate(zip(axes.flat, blocks, titles, scores, strict=False)):
        ax.imshow(block.numpy(), aspect="auto", origin="upper", interpolation="nearest", cmap="viridis")
        aligning = position == best_position
        ax.set_title(
            f"{title}: {score:.3f}" + (" (aligning)" if aligning else ""),
            fontsize=10,
            fontweight="bold" if aligning else "normal",
            color="red" if aligning else "black",
        )
        ax.set_xlabel("encoder frame", fontsize=9)
        ax.set_ylabel("output token", fontsize=9)
        ax.set_yticks(range(len(labels)), labels, fontsize=LABEL_FONTSIZE)
        if aligning:
            for spine in ax.spines.values():
                spine.set_edgecolor("red")
                spine.set_linewidth(2.5)
    fig.tight_layout()
    return fig


def plot_alignment(
    model_path: str,
    audio_path: str,
    out: Path | str,
    text: Optional[str] = None,
    layers: str = "all",
    heads: str = "best",
    reverse: Optional[bool] = None,
    device: str = "cpu",
) -> dict:
    """Restore the model, score every layer and head, write the PNG and, next to it, its JSON; returns the JSON.

    ``layers``: "all" or comma-separated indices; ``heads``: "best" (each layer's most diagonal head) or "mean";
    ``text``: rows follow its tokens instead of the hypothesis; ``reverse``: None reads the model's reverse_audio.
    """
    import matplotlib.pyplot as plt
    import torch

    from nemo_aligner_plugin import AlignerEncoderModel
    from nemo_aligner_plugin.analysis import capture_attention, diagonality, timestamps_from_maps
    from nemo_aligner_plugin.audio import load_audio

    out = Path(out)
    model = AlignerEncoderModel.restore_from(model_path, map_location=torch.device(device)).eval()
    audio = load_audio(str(audio_path), int(model.preprocessor._sample_rate)).unsqueeze(0)  # (1, S)
    audio_lens = torch.tensor([audio.size(1)])
    chosen = None if layers == "all" else [int(i) for i in layers.split(",")]

    maps = capture_attention(model, audio, audio_lens, layers=chosen, head_average=heads == "mean")
    with torch.no_grad():
        encoded, encoded_len = model(input_signal=audio.to(device), input_signal_length=audio_lens.to(device))
        hyp = model.decoding.rnnt_decoder_predictions_tensor(encoded, encoded_len, return_hypotheses=True)[0]
    token_ids = model.tokenizer.text_to_ids(text) if text is not None else hyp.y_sequence.tolist()
    num_tokens, enc_len = len(token_ids), int(maps.encoded_len[0])
    if reverse is None:
        reverse = bool(model.cfg.get("reverse_audio", False))

    # (layers, heads) scores; with --heads mean the one "head" is the average
    head_scores = [
        [diagonality(head, num_tokens, enc_len, reverse=reverse) for head in probs[0]] for probs in maps.probs
    ]
    best_heads = [max(range(len(row)), key=row.__getitem__) for row in head_scores]
    scores = [row[h] for row, h in zip(head_scores, best_heads, strict=True)]
    best_position = max(range(len(scores)), key=scores.__getitem__)
    best = maps.layers[best_position]
    blocks = [maps.block(i, 0, num_tokens + 1, head=h) for i, h in enumerate(best_heads)]
    by_head = heads == "best"
    titles = [
        f"layer {layer}" + (f" head {h}" if by_head else "") for layer, h in zip(maps.layers, best_heads, strict=True)
    ]
    labels = [*model.tokenizer.ids_to_tokens(token_ids), "<eos>"][: blocks[0].size(0)]
    out.parent.mkdir(parents=True, exist_ok=True)
    fig = alignment_figure(blocks, titles, scores, best_position, labels)
    fig.savefig(out, dpi=100)
    plt.close(fig)

    timestamps = timestamps_from_maps(model, maps, [token_ids], layer=best, reverse=reverse)[0]
    result = {
        "model": str(model_path),
        "audio": str(audio_path),
        "hypothesis": hyp.text,
        "reference": text,
        "tokens": labels[:-1],
        "encoded_len": enc_len,
        "heads": heads,
        "layer_scores": {str(layer): score for layer, score in zip(maps.layers, scores, strict=True)},
        "head_scores": {str(layer): row for layer, row in zip(maps.layers, head_scores, strict=True)},
        "aligning_layer": best,
        "aligning_head": best_heads[best_position] if by_head else None,
        "aligning_score": scores[best_position],
        "reverse": reverse,
        "words": timestamps["word"],
    }
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    print(f"hypothesis: {hyp.text!r}")
    where = f"{best}, head {best_heads[best_position]}" if by_head else f"{best} (head average)"
    print(
        f"aligning layer: {where} (diagonality {scores[best_position]:.3f}); wrote {out} and {out.with_suffix('.json')}"
    )
    return result
