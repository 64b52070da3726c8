"""The main job on built-in data (`make demo`): corpus -> training -> transcription -> WER -> alignment plot -> report.

    python recipes/run_demo.py --work-dir data/demo            # the full demo (see docs/demo.md for time/WER)
    python recipes/run_demo.py --work-dir /tmp/d --smoke       # a 1-minute pipeline check on a tiny corpus
    python recipes/run_demo.py --baselines                     # also NeMo CTC and RNN-T (`make demo-baselines`)
    python recipes/run_demo.py --ctc-warmup-steps 700          # CTC first, then the aligner from its encoder
    python recipes/run_demo.py --baselines --model aligner=a.nemo --model ctc=c.nemo --model rnnt=r.nemo
                                                               # evaluate trained models, train nothing

Everything runs on the CPU with no downloads: speech is synthesized by espeak-ng (installed through apt
when missing and running as root). Each stage is a plain recipe that can also be run by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import jiwer

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
SPLITS = ("dev", "dev_long", "test", "test_long", "test_long_nopause", "test_long_sentences", "test_padded")
# An aligner also transcribes these with its long-form chunking (the config's ``longform`` section, enabled): the
# paper's answer to audio longer than the model can align in one piece.
# dev_long (like test_long, with the train voices) is where long-form settings are chosen.
LONGFORM_SPLITS = ("dev_long", "test_long", "test_long_nopause")
# test_padded: the test utterances with this much digital silence before and after. The corpus is trimmed to the
# speech, and a model that only saw trimmed audio can fail on audio that is not (docs/demo.md).
PAD_SECONDS = 0.25
SMOKE_CORPUS = "--num-train 40 --num-dev 8 --num-test 8 --num-test-long 4 --num-dev-long 2 --vocab-size 64".split()
SMOKE_OVERRIDES = [
    "model.encoder.n_layers=2",
    "model.aux_ctc.layer=0",
    "model.encoder.d_model=48",
    "model.encoder.subsampling_conv_channels=16",
    "model.model_defaults.pred_hidden=32",
    "model.model_defaults.joint_hidden=32",
    "model.train_ds.batch_size=8",
    "trainer.max_steps=6",
    "trainer.check_val_every_n_epoch=1",
    "model.optim.sched.warmup_steps=2",
]


def log(message: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


def ensure_espeak() -> None:
    if shutil.which("espeak-ng"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit("espeak-ng is missing: install it with `sudo apt-get install espeak-ng` and rerun.")
    log("installing espeak-ng with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "espeak-ng"], check=True, env=env)


def run(args: list[str]) -> None:
    """Run a recipe with our interpreter; its output streams to the terminal (progress bars included)."""
    subprocess.run([sys.executable, *args], check=True, cwd=REPO)


# system -> (training recipe, config name under configs/); the baselines inherit the aligner demo config
SYSTEMS = {
    "aligner": ("train_aligner.py", "aligner_demo"),
    "ctc": ("train_baseline.py", "baselines/ctc_demo"),
    "rnnt": ("train_baseline.py", "baselines/rnnt_demo"),
}


def train(corpus: Path, exp_dir: Path, overrides: list[str], system: str = "aligner") -> dict:
    script, config = SYSTEMS[system]
    run(
        [
            str(RECIPES / script),
            "--config-path=../configs",
            f"--config-name={config}",
            f"model.train_ds.manifest_filepath={corpus / 'train_manifest.json'}",
            f"model.validation_ds.manifest_filepath={corpus / 'dev_manifest.json'}",
            f"model.tokenizer.dir={corpus / 'tokenizer'}",
            f"exp_manager.exp_dir={exp_dir}",
            *overrides,
        ]
    )
    summaries = sorted(exp_dir.rglob("training_summary.json"), key=lambda p: p.stat().st_mtime)
    if not summaries:
        sys.exit(f"training finished without a training_summary.json under {exp_dir}")
    return json.loads(summaries[-1].read_text())


def schedule_steps(overrides: list[str]) -> int:
    """trainer.max_steps of the demo run: the last override, else configs/aligner_demo.yaml's."""
    for item in reversed(overrides):
        if item.startswith("trainer.max_steps="):
            return int(item.split("=", 1)[1])
    from omegaconf import OmegaConf

    return int(OmegaConf.load(REPO / "configs" / "aligner_demo.yaml").trainer.max_steps)


def train_aligner_after_ctc(corpus: Path, run_dir: Path, overrides: list[str], ctc_steps: int) -> dict:
    """Split the step budget: NeMo CTC (same encoder) for ``ctc_steps``, then the aligner from its encoder."""
    total = schedule_steps(overrides)
    if not 0 < ctc_steps < total:
        sys.exit(f"--ctc-warmup-steps {ctc_steps}: must be between 1 and the schedule's {total - 1} steps")
    log(f"stage 2a/4: CTC warm-up, {ctc_steps} of {total} steps -> {run_dir / 'ctc_warmup'}")
    ctc = train(corpus, run_dir / "ctc_warmup", [*overrides, f"trainer.max_steps={ctc_steps}"], "ctc")
    log(f"stage 2b/4: aligner from the CTC encoder, {total - ctc_steps} steps -> {run_dir / 'aligner'}")
    summary = train(
        corpus,
        run_dir / "aligner",
        [
            *overrides,
            f"trainer.max_steps={total - ctc_steps}",
            f"+init_from_nemo_model.encoder.path={ctc['nemo_path']}",
            "+init_from_nemo_model.encoder.include=[preprocessor,encoder]",
        ],
    )
    return {**summary, "ctc_warmup": {k: ctc[k] for k in ("nemo_path", "global_step", "minutes")}}


def wer_by_length(entries: list[dict]) -> dict[str, float]:
    """WER per reference length bucket (words), to show how error grows with length."""
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


def evaluate(model_path: Path, corpus: Path, out_dir: Path, longform: dict | None = None) -> tuple[dict, dict]:
    """WER/CER per split through recipes/transcribe_aligner.py (any NeMo ASR model: aligner, CTC, RNN-T), and the
    greedy decoding time (``decode_ms_per_batch``); the model is restored once for all of it.

    Greedy decoding for every system (the side-by-side table); an aligner is also scored with its beam search
    (``decoding.beam`` of its config: the paper's width 6 with label-smoothing debiasing) as ``wer_beam``, and on
    the long splits with its ``longform`` section, ``longform`` (options) merged over it.
    """
    sys.path.insert(0, str(RECIPES))
    from omegaconf import OmegaConf, open_dict
    from probe_joined_length import join_manifest
    from transcribe_aligner import TranscriptionConfig, load_model, read_manifest, set_longform, write_manifest
    from transcribe_aligner import run as transcribe

    from nemo_aligner_plugin import AlignerEncoderModel

    model = load_model(TranscriptionConfig(model_path=str(model_path)))
    manifests = {split: corpus / f"{split}_manifest.json" for split in SPLITS if split != "test_padded"}
    test = read_manifest(manifests["test"], required=("audio_filepath", "text"))
    padded = join_manifest(test, 1, len(test), 0.0, 0, out_dir / "test_padded", pad_seconds=PAD_SECONDS)
    manifests["test_padded"] = write_manifest(out_dir / "test_padded_manifest.json", padded)

    def score(split: str, suffix: str = "") -> tuple[dict, list[dict]]:
        predictions = out_dir / f"{split}_predictions{suffix}.json"
        metrics = transcribe(
            TranscriptionConfig(
                model_path=str(model_path),
                dataset_manifest=str(manifests[split]),
                output_filename=str(predictions),
                batch_size=32,
                use_lhotse=False,
            ),
            model=model,
        )
        return metrics, [json.loads(line) for line in predictions.read_text().splitlines()]

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
    if isinstance(model, AlignerEncoderModel):
        greedy = OmegaConf.to_container(model.cfg.decoding)
        beam, plain = {**greedy, "strategy": "beam"}, model.cfg.get("longform")
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
        model.change_decoding_strategy(greedy, verbose=False)
        with open_dict(model.cfg):
            model.cfg.longform = plain
    return results, decode_ms_per_batch(model, corpus / "test_manifest.json")


def decode_ms_per_batch(model, manifest: Path, batch_size: int = 32, repeats: int = 5) -> dict:
    """Median greedy decoding time for one batch of test utterances, encoder excluded (and encoder time apart)."""
    import soundfile as sf
    import torch
    from nemo.collections.asr.models import EncDecCTCModel

    entries = [json.loads(line) for line in manifest.read_text().splitlines()[:batch_size]]
    audio = [torch.from_numpy(sf.read(e["audio_filepath"], dtype="float32")[0]) for e in entries]
    device = next(model.parameters()).device
    lengths = torch.tensor([a.numel() for a in audio], device=device)
    signal = torch.nn.utils.rnn.pad_sequence(audio, batch_first=True).to(device)

    def median_ms(fn) -> float:
        fn()  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append((time.perf_counter() - start) * 1000)
        return sorted(times)[len(times) // 2]

    def encode():
        return model.forward(input_signal=signal, input_signal_length=lengths)

    with torch.inference_mode():
        encoder_ms = median_ms(encode)
        outputs = encode()
        if isinstance(model, EncDecCTCModel):  # (log-probs, lengths, argmax)

            def decode():
                return model.decoding.ctc_decoder_predictions_tensor(outputs[0], decoder_lengths=outputs[1])
        else:  # aligner and RNN-T: (encoder output, lengths) through their RNNTDecoding-style wrapper

            def decode():
                return model.decoding.rnnt_decoder_predictions_tensor(
                    encoder_output=outputs[0], encoded_lengths=outputs[1]
                )

        decode_ms = median_ms(decode)
    return {"batch": len(entries), "encoder_ms": round(encoder_ms, 1), "decode_ms": round(decode_ms, 2),
            "threads": torch.get_num_threads()}  # fmt: skip


def plot(model_path: Path, corpus: Path, out_dir: Path) -> dict | None:
    """Per-layer attention maps for one test utterance (needs the analysis module and matplotlib)."""
    script = RECIPES / "plot_alignment.py"
    if not script.exists():
        return None
    first = json.loads((corpus / "test_manifest.json").read_text().splitlines()[0])
    png = out_dir / "alignment.png"
    run(
        [
            str(script),
            "--model",
            str(model_path),
            "--audio",
            first["audio_filepath"],
            "--text",
            first["text"],
            "--out",
            str(png),
        ]
    )
    scores = png.with_suffix(".json")
    return {"png": str(png), **(json.loads(scores.read_text()) if scores.exists() else {})}


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
        row = {"test": test, "sentences_alone": alone, "sentences_alone_vs_test": _ratio(alone, test)}
        for how, key in (("whole", f"wer{suffix}"), ("longform", f"wer_longform{suffix}")):
            if key in splits["test_long"]:
                wer = splits["test_long"][key]
                row[how] = {"wer": wer, "vs_test": _ratio(wer, test), "vs_sentences_alone": _ratio(wer, alone)}
        out[decoding] = row
    return out


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b > 0 else None


def _ratio_text(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def write_report(out_dir: Path, report: dict) -> Path:
    lines = [
        "# Aligner-Encoder demo report",
        "",
        f"- model: `{report['model']}`",
        f"- training: {report['training']['global_step']} steps, {report['training']['minutes']:.1f} min "
        f"({report['training']['stop_reason']})",
        *(
            [f"- CTC warm-up before it: {w['global_step']} steps, {w['minutes']:.1f} min (`{w['nemo_path']}`)"]
            if (w := report["training"].get("ctc_warmup"))
            else []
        ),
        f"- whole demo: {report['total_minutes']:.1f} min",
    ]
    if report.get("alignment"):
        a = report["alignment"]
        score = a.get("aligning_score", float("nan"))
        head = f", head {a['aligning_head']}" if a.get("aligning_head") is not None else ""
        lines.append(f"- aligning layer: {a.get('aligning_layer')}{head} (diagonality {score:.3f}), plot: `{a['png']}`")
    lines += [
        "",
        "| split | utterances | WER greedy | CER greedy | WER beam | CER beam | WER long-form | WER long-form beam "
        "| greedy WER by reference words |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for split, r in report["splits"].items():
        buckets = ", ".join(f"{k}: {v:.3f}" for k, v in r["wer_by_words"].items())
        beam = f"{r['wer_beam']:.4f} | {r['cer_beam']:.4f}" if "wer_beam" in r else "- | -"
        chunked = " | ".join(f"{r[k]:.4f}" if k in r else "-" for k in ("wer_longform", "wer_longform_beam"))
        lines.append(
            f"| {split} | {r['utterances']} | {r['wer']:.4f} | {r['cer']:.4f} | {beam} | {chunked} | {buckets} |"
        )
    lines.append("\nbeam: the config's `decoding.beam` (paper: width 6, label-smoothing debiasing).")
    lines.append(
        "long-form: audio longer than the config's `longform.chunk_seconds` transcribed in chunks (its "
        "`longform` section, enabled; docs/longform.md), greedy or with the beam search above."
        + (f" Options given for this report: {report['longform_options']}." if report.get("longform_options") else "")
    )
    lines.append(
        "test_long: 2-3 unseen sentences read as sentences (a pause at each end); test_long_nopause: the same read "
        "straight on; test_long_sentences: each of those sentences read alone; dev_long: built like test_long with the"
        " train voices, for tuning long-audio settings."
        f" test_padded: the test utterances with {PAD_SECONDS} s of silence before and after (the corpus "
        "is trimmed)."
    )
    if report.get("length_ratios"):
        lines += [
            "",
            "## test_long / test, in two factors",
            "",
            "| decoding | test_long as | test_long / test | = sentences alone / test | x test_long / sentences alone |",
            "|---|---|---|---|---|",
        ]
        for decoding, r in report["length_ratios"].items():
            for how in ("whole", "longform"):
                if how in r:
                    lines.append(
                        f"| {decoding} | {'long-form' if how == 'longform' else 'one piece'} | "
                        f"{_ratio_text(r[how]['vs_test'])} | {_ratio_text(r['sentences_alone_vs_test'])} | "
                        f"{_ratio_text(r[how]['vs_sentences_alone'])} |"
                    )
        lines.append(
            "\nsentences alone: test_long_sentences, each test_long sentence read alone with its voice and noise. The"
            " first factor is the sentences (longer than test's on average), the second what long audio costs."
        )
    if report.get("systems"):
        lines += [
            "",
            "## Side by side (same corpus, encoder, optimizer and budget)",
            "",
            "| system (greedy) | dev WER | test WER | test_long WER | test_long_nopause WER | test_padded WER | steps "
            "| train min | encoder ms | decode ms |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, r in report["systems"].items():
            t, d, sp = r.get("training") or {}, r["decode"], r["splits"]
            minutes = f"{t['minutes']:.1f}" if t.get("minutes") is not None else "?"
            lines.append(
                f"| {name} | {sp['dev']['wer']:.4f} | {sp['test']['wer']:.4f} | {sp['test_long']['wer']:.4f} | "
                f"{sp['test_long_nopause']['wer']:.4f} | {sp['test_padded']['wer']:.4f} | "
                f"{t.get('global_step', '?')} | {minutes} | {d['encoder_ms']} | {d['decode_ms']} |"
            )
        first = next(iter(report["systems"].values()))["decode"]
        lines.append(f"\nms: median for one batch of {first['batch']} test utterances, {first['threads']} thread(s).")
    text = "\n".join(lines) + "\n"
    (out_dir / "report.md").write_text(text)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    return out_dir / "report.md"


def parse_longform_options(parser: argparse.ArgumentParser, items: list[str]) -> dict:
    """``KEY=VALUE`` strings -> long-form options (YAML values: 5 -> int, true -> bool), checked up front."""
    import yaml

    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--longform {item}: expected KEY=VALUE")
        options[key] = yaml.safe_load(value)
    if options:
        from nemo_aligner_plugin.longform import longform_config

        try:
            longform_config({**options, "enabled": True})
        except (TypeError, ValueError) as err:
            parser.error(f"--longform: {err}")
    return options


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=Path, default=REPO / "data" / "demo", help="corpus, runs and report go here")
    parser.add_argument("--smoke", action="store_true", help="tiny corpus and model, a few steps: checks the pipeline")
    parser.add_argument("--seed", type=int, default=0, help="corpus and training seed")
    parser.add_argument("--baselines", action="store_true", help="also train/evaluate NeMo CTC and RNN-T baselines")
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="SYSTEM=PATH",
        help="evaluate this trained .nemo for SYSTEM (aligner, ctc, rnnt) instead of training it",
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
    longform = parse_longform_options(parser, args.longform)
    given = {}
    for item in args.model:
        system, _, path = item.partition("=")
        if system not in SYSTEMS or not path:
            parser.error(f"--model {item}: expected SYSTEM=PATH with SYSTEM in {sorted(SYSTEMS)}")
        if not Path(path).is_file():
            parser.error(f"--model {item}: {path} does not exist")
        given[system] = Path(path).resolve()
    systems = ["aligner", "ctc", "rnnt"] if args.baselines else ["aligner"]

    start = time.perf_counter()
    work = args.work_dir.resolve()
    corpus = work / ("corpus_smoke" if args.smoke else "corpus")
    sys.path.insert(0, str(RECIPES))
    from make_demo_corpus import current_corpus_info

    if len(given) < len(systems) or current_corpus_info(corpus) is None:
        ensure_espeak()
        log(f"stage 1/4: corpus -> {corpus}")
        run(
            [str(RECIPES / "make_demo_corpus.py"), "--out", str(corpus), "--seed", str(args.seed)]
            + (SMOKE_CORPUS if args.smoke else [])
        )

    run_dir = work / "runs" / time.strftime("%Y-%m-%d_%H-%M-%S")
    overrides = [f"seed={args.seed}"] + (SMOKE_OVERRIDES if args.smoke else []) + args.overrides
    results = {}
    for system in systems:
        if system in given:
            model_path = given[system]
            summary_file = model_path.parent / "training_summary.json"
            summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
            log(f"{system}: evaluating the given model {model_path}")
        elif system == "aligner" and args.ctc_warmup_steps:
            summary = train_aligner_after_ctc(corpus, run_dir, overrides, args.ctc_warmup_steps)
            model_path = Path(summary["nemo_path"])
        else:
            log(f"stage 2/4: training {system} (configs/{SYSTEMS[system][1]}.yaml) -> {run_dir / system}")
            summary = train(corpus, run_dir / system, overrides, system)
            model_path = Path(summary["nemo_path"])
        log(
            f"stage 3/4: {system}: transcribing dev, test (unseen voices and sentences), test_long (~2x longer), "
            f"test_long_nopause (the same without pauses), test_long_sentences (its sentences alone), test_padded "
            f"(test with {PAD_SECONDS} s of silence around)"
        )
        splits, decode = evaluate(model_path, corpus, model_path.parent, longform if system == "aligner" else None)
        results[system] = {"model": str(model_path), "training": summary, "splits": splits, "decode": decode}

    aligner = results["aligner"]
    model_path = Path(aligner["model"])
    log("stage 4/4: alignment plot")
    alignment = plot(model_path, corpus, model_path.parent)

    report = {
        "model": str(model_path),
        "training": aligner["training"],
        "splits": aligner["splits"],
        "alignment": alignment,
        "longform_options": longform,
        "length_ratios": length_ratios(aligner["splits"]),
        "systems": results if len(results) > 1 else None,
        "total_minutes": (time.perf_counter() - start) / 60,
    }
    out_dir = run_dir if given.get("aligner") else model_path.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    path = write_report(out_dir, report)
    print("\n" + path.read_text())
    log(f"report: {path} (and report.json)")


if __name__ == "__main__":
    main()
