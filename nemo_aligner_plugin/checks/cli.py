"""``python -m nemo_aligner_plugin.checks``: report the problems of manifests (``file:line: message``) and
whether ``.nemo`` files are complete; exit status 1 on errors (and on warnings with ``--strict``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from nemo_aligner_plugin.checks.archive import check_nemo_archive
from nemo_aligner_plugin.checks.manifest import REQUIRED_FIELDS, inspect_manifest

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m nemo_aligner_plugin.checks",
        description="Report the problems of NeMo manifests (file:line: message). Exit status 1 on errors.",
    )
    parser.add_argument("manifests", nargs="+", help="NeMo JSON-lines manifests (or .nemo files to check)")
    parser.add_argument("--audio", action="store_true", help="open every audio file's header")
    parser.add_argument("--samples", action="store_true", help="also read the samples (NaN/inf, silence)")
    parser.add_argument("--sample-rate", type=int, default=16000, help="the model's rate (default 16000)")
    parser.add_argument("--tokenizer", help="tokenizer dir (tokenizer.model): report characters that become <unk>")
    parser.add_argument("--required", default=",".join(REQUIRED_FIELDS), help="comma-separated required fields")
    parser.add_argument("--max-problems", type=int, default=200, help="problems printed per manifest")
    parser.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    return parser


def _check_archive(path: str) -> bool:
    """Print whether a .nemo is complete; True when it is not."""
    try:
        check_nemo_archive(path)
    except ValueError as err:
        print(err)
        return True
    print(f"{path}: complete .nemo archive")
    return False


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI on ``argv`` (default: the command line); returns the exit status."""
    args = _parser().parse_args(argv)
    tokenizer = None
    if args.tokenizer:
        from nemo.collections.common.tokenizers import SentencePieceTokenizer

        tokenizer = SentencePieceTokenizer(str(Path(args.tokenizer) / "tokenizer.model"))
    failed = False
    for manifest in args.manifests:
        if manifest.endswith(".nemo"):
            failed = _check_archive(manifest) or failed
            continue
        report = inspect_manifest(
            manifest,
            [f for f in args.required.split(",") if f],
            audio=args.audio or args.samples,
            samples=args.samples,
            sample_rate=args.sample_rate,
            tokenizer=tokenizer,
            max_problems=args.max_problems,
        )
        for problem in report.problems:
            print(problem)
        hidden = report.num_errors + report.num_warnings - len(report.problems)
        print(
            f"{manifest}: {report.lines} lines, {report.seconds / 3600:.2f} h, {report.num_errors} errors, "
            f"{report.num_warnings} warnings{f' ({hidden} not printed)' if hidden > 0 else ''}, "
            f"{report.empty_texts} empty transcripts"
        )
        failed = failed or report.num_errors > 0 or (args.strict and report.num_warnings > 0)
    return 1 if failed else 0
