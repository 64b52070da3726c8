"""The demo's evaluation matrix: every split, greedy and beam, whole and long-form, for one trained model.

Any NeMo ASR model is scored greedy (the side-by-side table); an aligner also with its beam search and, on the long
splits, with its ``longform`` section enabled. Predictions go to the ``out_dir`` the caller names (the run's folder,
never next to a given model).

The ``nonspeech`` split (clips without speech) is scored apart: no WER (every reference is empty) but the words
invented per minute and the share of clips given no text (demo/nonspeech_split.py), greedy for every system and,
for an aligner, also beam; an aligner reads it as ``transcribe()`` does for a user, with its own ``longform``
section (``enabled: auto`` sends audio longer than its training utterances through long-form chunking).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

from nemo_aligner_plugin.demo.nonspeech_split import NONSPEECH_SPLIT, summarize_nonspeech
from nemo_aligner_plugin.manifests import read_manifest, read_predictions, write_manifest

__all__ = ["SPLITS", "NONSPEECH_SPLIT", "LONGFORM_SPLITS", "PAD_SECONDS", "evaluate", "wer_by_length", "length_ratios"]

SPLITS = ("dev", "dev_long", "test", "test_long", "test_long_nopause", "test_long_sentences", "test_padded")
# An aligner also transcribes these with its long-form chunking (the config's ``longform`` section, enabled): the
# paper's answer to audio longer than the model can align in one piece.
# dev_long (like test_long, with the train voices) is where long-form settings are chosen.
LONGFORM_SPLITS = ("dev_long", "test_long", "test_long_nopause")
# test_padded: the test utterances with this much digital silence before and after. The corpus is trimmed to the
# speech, and a model that only saw trimmed audio can fail on audio that is not (docs/demo.md).
PAD_SECONDS = 0.25


def wer_by_length(entries: list[dict]) -> dict[str, float]:
    """WER per reference length bucket (words), to show how error grows with length."""
    import jiwer

    buckets: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for e in entries:
        n = len(e["text"].split())
        key = "1-4" if n <= 4 else "5-6" if n <= 6 else "7-8" if n <= 8 else "9-12" if n <= 12 else "13+"
        buckets[key][0].append(e["text"])
        buckets[key][1].append(e["pred_text"])
    return {
        k: round(jiwer.wer(r, h), 4)
        for k, (r, h) in sorted(buckets.items(), key=lambda kv: int(kv[0].split("-")[0].rstrip("+")))
    }


def evaluate(model: Any, corpus: Path, out_dir: Path, longform: Optional[dict] = None) -> dict[str, dict]:
    """WER/CER per split of ``corpus`` for a loaded model; prediction files and test_padded/ go under ``out_dir``.

    Greedy for every system; an aligner is also scored with its beam search (``decoding.beam`` of its config: the
    paper's width 6 with label-smoothing debiasing) as ``wer_beam``, and on the long splits with its ``longform``
    section, ``longform`` (options) merged over it. The model's decoding and long-form settings are restored.
    ``nonspeech``: ``{"greedy": ..., "beam": ...}`` of ``summarize_nonspeech`` (beam for an aligner only).
    """
    from omegaconf import OmegaConf, open_dict

    from nemo_aligner_plugin import AlignerEncoderModel
    from nemo_aligner_plugin.demo.joining import join_manifest
    from nemo_aligner_plugin.transcribe_cli import TranscriptionConfig, run, set_longform

    out_dir.mkdir(parents=True, exist_ok=True)
    manifests = {split: corpus / f"{split}_manifest.json" for split in SPLITS if split != "test_padded"}
    test = read_manifest(manifests["test"], required=("audio_filepath", "text"))
    padded = join_manifest(test, 1, len(test), 0.0, 0, out_dir / "test_padded", pad_seconds=PAD_SECONDS)
    manifests["test_padded"] = write_manifest(out_dir / "test_padded_manifest.json", padded)
    # without its empty references: transcribed, not scored (a WER over empty references means nothing)
    clips = read_manifest(corpus / f"{NONSPEECH_SPLIT}_manifest.json")
    audio_only = [{k: v for k, v in e.items() if k != "text"} for e in clips]
    manifests[NONSPEECH_SPLIT] = write_manifest(out_dir / f"{NONSPEECH_SPLIT}_audio_manifest.json", audio_only)

    def score(split: str, suffix: str = "") -> tuple[dict, list[dict]]:
        predictions = out_dir / f"{split}_predictions{suffix}.json"
        cfg = TranscriptionConfig(
            dataset_manifest=str(manifests[split]), output_filename=str(predictions), batch_size=32, use_lhotse=False
        )
        metrics = run(cfg, model=model)
        return metrics, read_predictions(predictions)

    def nonspeech(suffix: str = "") -> dict:
        return summarize_nonspeech(score(NONSPEECH_SPLIT, suffix)[1])

    # first, before the plain columns switch long-form off: the model as a user has it, own `longform` included
    nonspeech_results = {"greedy": nonspeech()}
    one_piece = isinstance(model, AlignerEncoderModel)
    plain = model.cfg.get("longform") if one_piece else None
    if one_piece:  # the plain columns read every file whole, whatever `enabled` says (auto routes long audio)
        set_longform(model, {"enabled": False})
    results = {}
    for split in SPLITS:
        metrics, entries = score(split)
        results[split] = {
            "wer": round(metrics["wer"], 4),
            "cer": round(metrics["cer"], 4),
            "utterances": metrics["num_utterances"],
            "rtfx": round(metrics.get("rtfx", 0.0), 1),
            "wer_by_words": wer_by_length(entries),
        }
    results[NONSPEECH_SPLIT] = nonspeech_results
    if not isinstance(model, AlignerEncoderModel):
        return results
    greedy = OmegaConf.to_container(model.cfg.decoding)
    beam = {**greedy, "strategy": "beam"}
    # (result key, decoding, long-form on, splits): beam on every split, then long-form greedy and beam
    for key, decoding, chunked, splits in (
        ("beam", beam, False, SPLITS),
        ("longform", greedy, True, LONGFORM_SPLITS),
        ("longform_beam", beam, True, LONGFORM_SPLITS),
    ):
        model.change_decoding_strategy(decoding, verbose=False)
        if chunked:
            set_longform(model, {**(longform or {}), "enabled": True})
        for split in splits:
            metrics, _ = score(split, f"_{key}")
            results[split].update({f"wer_{key}": round(metrics["wer"], 4), f"cer_{key}": round(metrics["cer"], 4)})
    with open_dict(model.cfg):
        model.cfg.longform = plain
    model.change_decoding_strategy(beam, verbose=False)
    nonspeech_results["beam"] = nonspeech("_beam")  # with the model's own long-form, as the greedy pass
    model.change_decoding_strategy(greedy, verbose=False)
    return results


def length_ratios(splits: dict) -> dict:
    """test_long's WER over test's, split in two factors that multiply to it: its sentences read alone over test
    (what the sentences cost: longer, other texts) and test_long over those sentences (what long audio costs).

    Per decoding (greedy, beam) and for test_long decoded in one piece and with long-form, where scored.
    """
    out = {}
    for decoding, suffix in (("greedy", ""), ("beam", "_beam")):
        test, alone = splits["test"].get(f"wer{suffix}"), splits["test_long_sentences"].get(f"wer{suffix}")
        if test is None or alone is None:
            continue
        row = {"test": test, "sentences_alone": alone, "sentences_alone_vs_test": ratio(alone, test)}
        for how, key in (("whole", f"wer{suffix}"), ("longform", f"wer_longform{suffix}")):
            if key in splits["test_long"]:
                wer = splits["test_long"][key]
                row[how] = {"wer": wer, "vs_test": ratio(wer, test), "vs_sentences_alone": ratio(wer, alone)}
        out[decoding] = row
    return out


def ratio(a: float, b: float) -> Optional[float]:
    """a / b to two decimals; None when b is 0 (a perfect score has no ratio)."""
    return round(a / b, 2) if b > 0 else None
