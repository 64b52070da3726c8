"""The main job on built-in data (`make demo`): corpus -> training -> transcription -> WER -> alignment plot -> report.

    python recipes/run_demo.py --work-dir data/demo            # the full demo (see docs/demo.md for time/WER)
    python recipes/run_demo.py --work-dir /tmp/d --smoke       # a 1-minute pipeline check on a tiny corpus
    python recipes/run_demo.py --baselines                     # also NeMo CTC and RNN-T (`make demo-baselines`)
    python recipes/run_demo.py --ctc-warmup-steps 700          # CTC first, then the aligner from its encoder
    python recipes/run_demo.py --streaming                     # the Chunkwise Aligner and a cache-aware RNN-T,
                                                               # streamed (`make demo-streaming`; docs/streaming.md)
    python recipes/run_demo.py --streaming --model aligner=a.nemo   # ... with the offline aligner's WER beside them
    python recipes/run_demo.py --baselines --model aligner=a.nemo --model ctc=c.nemo --model rnnt=r.nemo
                                                               # evaluate trained models, train nothing

Everything runs on the CPU with no downloads: speech is synthesized by espeak-ng (installed through apt
when missing and running as root). Everything is written under --work-dir. Each stage is a plain recipe that can
also be run by hand; the stages: nemo_aligner_plugin/demo/pipeline.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SYSTEMS = ("aligner", "ctc", "rnnt")
STREAMING = ("chunkwise", "rnnt_streaming")  # --streaming trains these (or takes them from --model)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=Path, default=REPO / "data" / "demo", help="corpus, runs and report go here")
    parser.add_argument("--smoke", action="store_true", help="tiny corpus and model, a few steps: checks the pipeline")
    parser.add_argument("--seed", type=int, default=0, help="corpus and training seed")
    parser.add_argument("--baselines", action="store_true", help="also train/evaluate NeMo CTC and RNN-T baselines")
    parser.add_argument(
        "--streaming",
        action="store_true",
        help="the streaming demo: Chunkwise Aligner and NeMo cache-aware RNN-T, offline and streamed WER, latency",
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="SYSTEM=PATH",
        help="evaluate this .nemo for SYSTEM (aligner, ctc, rnnt; chunkwise, rnnt_streaming) instead of training it",
    )
    parser.add_argument(
        "--ctc-warmup-steps",
        type=int,
        default=0,
        help="train NeMo CTC for this many of the schedule's steps first, then the aligner from its encoder",
    )
    parser.add_argument(
        "--longform",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="long-form option for scoring the long splits, over the aligner's own longform section (e.g. for a "
        "model trained before the config's setting changed): --longform boundary=every_pause",
    )
    parser.add_argument("overrides", nargs="*", help="extra hydra overrides for the training recipes")
    args = parser.parse_args(argv)
    given = {}
    for item in args.model:
        system, _, path = item.partition("=")
        if system not in SYSTEMS + STREAMING or not path:
            parser.error(f"--model {item}: expected SYSTEM=PATH with SYSTEM in {sorted(SYSTEMS + STREAMING)}")
        if not Path(path).is_file():
            parser.error(f"--model {item}: {path} does not exist")
        given[system] = Path(path).resolve()

    from nemo_aligner_plugin.demo.pipeline import log, run_demo
    from nemo_aligner_plugin.transcribe_cli import parse_longform_options

    if args.streaming:
        from nemo_aligner_plugin.demo.streaming_pipeline import run_streaming_demo

        report = run_streaming_demo(
            args.work_dir.resolve(), given, seed=args.seed, smoke=args.smoke, overrides=args.overrides
        )
        print("\n" + report.read_text())
        log(f"report: {report} (and report_streaming.json)")
        return

    try:
        longform = parse_longform_options(args.longform)
    except ValueError as err:
        parser.error(str(err))
    report = run_demo(
        args.work_dir.resolve(),
        systems=list(SYSTEMS) if args.baselines else ["aligner"],
        given=given,
        seed=args.seed,
        smoke=args.smoke,
        ctc_warmup_steps=args.ctc_warmup_steps,
        longform=longform,
        overrides=args.overrides,
    )
    print("\n" + report.read_text())
    log(f"report: {report} (and report.json)")


if __name__ == "__main__":
    main()
