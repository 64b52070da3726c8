"""How long can a trained aligner align? Score it on utterances of a manifest joined k at a time.

    python recipes/probe_joined_length.py --model model.nemo --manifest data/demo/corpus/dev_manifest.json \
        --join 1 2 3 --groups 60 --out-dir data/demo/probe

Joins ``--groups`` disjoint random groups of k utterances (a ``--gap-seconds`` silence between them, as the
training concatenation does, and ``--pad-seconds`` before and after each input: a model trained on trimmed
audio may not expect silence at the start), transcribes them and prints per k the WER and the
hypothesis/reference word ratio: a ratio well below 1 means the model stops early (deletions), a ratio near 1
with a high WER means it goes on but invents the later sentences (the alignment did not reach them).
Writes the joined WAVs and manifests under ``--out-dir`` and ``probe.json`` with the table.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help=".nemo of a trained aligner (any NeMo ASR model works)")
    parser.add_argument("--manifest", required=True, help="NeMo manifest with text, e.g. the dev split")
    parser.add_argument("--join", type=int, nargs="+", default=[1, 2, 3], help="utterances per joined input")
    parser.add_argument("--groups", type=int, default=60, help="joined inputs per k (fewer if the manifest is short)")
    parser.add_argument("--gap-seconds", type=float, default=0.1, help="silence between joined utterances")
    parser.add_argument("--pad-seconds", type=float, default=0.0, help="silence before and after each joined input")
    parser.add_argument("--seed", type=int, default=0, help="which utterances are joined")
    parser.add_argument("--out-dir", required=True, help="joined WAVs, manifests, predictions and probe.json")
    args = parser.parse_args(argv)

    from nemo_aligner_plugin.demo.joining import probe
    from nemo_aligner_plugin.manifests import read_manifest
    from nemo_aligner_plugin.transcribe_cli import TranscriptionConfig, load_model

    try:
        entries = read_manifest(Path(args.manifest), required=("audio_filepath", "text"))
        model = load_model(TranscriptionConfig(model_path=args.model))
        out_dir = Path(args.out_dir)
        rows = probe(model, entries, args.join, args.groups, args.gap_seconds, args.seed, out_dir, args.pad_seconds)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}") from err
    (out_dir / "probe.json").write_text(json.dumps({"model": args.model, "rows": rows}, indent=2))
    print("\n| joined | utterances | mean s | WER | CER | hyp/ref words |\n|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['join']} | {r['utterances']} | {r['mean_seconds']:.1f} | {r['wer']:.3f} | {r['cer']:.3f} "
            f"| {r['hyp_ref_words']:.2f} |"
        )


if __name__ == "__main__":
    main()
