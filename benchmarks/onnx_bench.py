#!/usr/bin/env python3
"""Deployment on CPU, end to end from WAV to text: NeMo ``transcribe()`` in PyTorch, our ONNX export (fp32, int8) and
a NeMo RNN-T with the same encoder decoded by sherpa-onnx (fp32, int8), in one run, side by side.

    python benchmarks/onnx_bench.py --out benchmarks/results/$(date +%F)-onnx-cpu.md      # ~20 min on 2 CPUs
    python benchmarks/onnx_bench.py --quick --demo-model M.nemo --demo-rnnt R.nemo --demo-corpus C --out q.md

Two models: the demo aligner and RNN-T (``make demo`` / ``make demo-baselines`` outputs, scored on the demo test
split) and the paper-size model (configs/aligner_conformer_bpe.yaml, 17x512, LSTM 640, 1024 pieces) with random
weights forced to emit U = T // 3 tokens (forced_e2e.py), the RNN-T sharing its encoder weights. Each system runs
in its own subprocess (its peak RSS is that process's VmHWM; the ONNX and sherpa processes never import torch),
with 2 intra-op threads, in interleaved rounds: load (timed apart), one warm-up batch, then every file once.
"""

from __future__ import annotations

import os
import sys

THREADS = 2  # intra-op threads of every system (the machine's 2 cores)
THREAD_ENV = {key: str(THREADS) for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
if __name__ == "__main__":
    os.environ.update(THREAD_ENV)  # before torch, MKL or onnxruntime read them

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, Optional  # noqa: E402

if TYPE_CHECKING:
    from forced_e2e import Bench

REPO = Path(__file__).resolve().parents[1]
BATCH_SIZE = 8
STAGES = ("features", "encoder", "decoder")


@dataclass(frozen=True)
class System:
    key: str
    label: str
    runner: str  # torch | onnx | sherpa


SYSTEMS = (
    System("a", "(a) NeMo transcribe(), PyTorch fp32", "torch"),
    System("b", "(b) our ONNX fp32", "onnx"),
    System("c", "(c) our ONNX int8", "onnx"),
    System("d32", "(d) NeMo RNN-T, sherpa-onnx fp32", "sherpa"),
    System("d8", "(d) NeMo RNN-T, sherpa-onnx int8", "sherpa"),
)


# ------------------------------------------------------------------------------------------------ child processes
def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux VmHWM), MiB."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1)) / 1024


def timed(stages: dict, key: str, fn: Callable) -> Callable:
    """``fn`` that adds its wall time to ``stages[key]``."""

    def run(*args, **kwargs):
        clock = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            stages[key] += time.perf_counter() - clock

    return run


def load_torch(spec: dict):
    """(a): the .nemo restored, its stages timed by wrapping the preprocessor, encoder and decoding calls."""
    import torch

    torch.set_num_threads(THREADS)
    torch.set_num_interop_threads(1)
    from nemo_aligner_plugin import AlignerEncoderModel

    model = AlignerEncoderModel.restore_from(spec["model"], map_location="cpu").eval()
    if spec["forced"]:
        from forced_e2e import force_encoder  # benchmarks/ is this script's folder

        force_encoder(model.encoder)
    stages = dict.fromkeys(STAGES, 0.0)
    model.preprocessor.forward = timed(stages, "features", model.preprocessor.forward)
    model.encoder.forward = timed(stages, "encoder", model.encoder.forward)
    decoding = model.decoding
    decoding.rnnt_decoder_predictions_tensor = timed(stages, "decoder", decoding.rnnt_decoder_predictions_tensor)

    def transcribe(files: list[str]) -> tuple[list[list[int]], list[str]]:
        hyps = model.transcribe(files, batch_size=spec["batch_size"], return_hypotheses=True, verbose=False)
        return [[int(t) for t in h.y_sequence] for h in hyps], [h.text for h in hyps]

    return transcribe, stages


def load_onnx(spec: dict):
    """(b), (c): AlignerOnnx on the exported folder; its own ``timings`` split the stages."""
    from nemo_aligner_plugin.onnx import AlignerOnnx

    model = AlignerOnnx(spec["model"], num_threads=THREADS)

    def transcribe(files: list[str]) -> tuple[list[list[int]], list[str]]:
        out = model.transcribe(files, batch_size=spec["batch_size"])
        return [o.tokens for o in out], [o.text for o in out]

    return transcribe, model.timings


class _RecordingRecognizer:
    """sherpa-onnx's recognizer, keeping the decoded streams so that their tokens can be read after timing."""

    def __init__(self, inner):
        self.inner, self.streams = inner, []

    def create_stream(self):
        return self.inner.create_stream()

    def decode_streams(self, streams) -> None:
        self.inner.decode_streams(streams)
        self.streams.extend(streams)


def load_sherpa(spec: dict):
    """(d): sherpa-onnx on the export_for_sherpa folder; ``decode_streams`` (encoder + greedy search) is one stage,
    split in the report by the encoder timed alone in a process of its own (``encoder_main``)."""
    from sherpa_transducer import SherpaTransducer

    model = SherpaTransducer(spec["model"], num_threads=THREADS)
    recorder = model.recognizer = _RecordingRecognizer(model.recognizer)
    stages = dict.fromkeys(STAGES, 0.0)

    def transcribe(files: list[str]) -> tuple[list[list[str]], list[str]]:
        recorder.streams.clear()
        model.timings.update(dict.fromkeys(model.timings, 0.0))
        texts = model.transcribe(files, batch_size=spec["batch_size"])
        stages["features"], stages["decoder"] = model.timings["features"], model.timings["decode"]
        return [list(s.result.tokens) for s in recorder.streams], texts

    return transcribe, stages


LOADERS = {"torch": load_torch, "onnx": load_onnx, "sherpa": load_sherpa}


def encoder_main(spec: dict) -> dict:
    """sherpa's encoder.onnx alone on the batch shapes sherpa ran (``sherpa_transducer.encoder_seconds``), in a
    fresh process: run in sherpa's process, it measured slower than sherpa's whole decode."""
    from sherpa_transducer import encoder_seconds

    seconds = encoder_seconds(spec["model"], spec["files"], THREADS, batch_size=spec["batch_size"])
    return {"encoder_s": seconds, "load_average": os.getloadavg()[0], "peak_rss_mb": peak_rss_mb()}


def child_main(spec_path: Path) -> None:
    """Run one system on one model's files; write its measurements next to the spec."""
    spec = json.loads(spec_path.read_text())
    if spec["runner"] == "sherpa_encoder":
        spec_path.with_suffix(".out.json").write_text(json.dumps(encoder_main(spec)))
        return
    clock = time.perf_counter()
    transcribe, stages = LOADERS[spec["runner"]](spec)
    load_s = time.perf_counter() - clock
    transcribe(spec["files"][: spec["batch_size"]])  # warm-up batch
    stages.update(dict.fromkeys(stages, 0.0))
    clock = time.perf_counter()
    tokens, texts = transcribe(spec["files"])
    wall_s = time.perf_counter() - clock
    result = {
        "load_s": load_s,
        "wall_s": wall_s,
        "peak_rss_mb": peak_rss_mb(),
        "torch_imported": "torch" in sys.modules,
        "nemo_imported": "nemo" in sys.modules,
        "tokens": tokens,  # ids; sherpa-onnx: token strings
        "texts": texts,
        "load_average": os.getloadavg()[0],
        "stages": {key: stages[key] for key in STAGES},
    }
    if spec["runner"] != "torch" and (result["torch_imported"] or result["nemo_imported"]):
        raise SystemExit(f"the {spec['runner']} process imported torch or nemo: not a deployment process")
    spec_path.with_suffix(".out.json").write_text(json.dumps(result))


def run_child(runner: str, model: str, files: list[str], forced: bool, work: Path) -> dict:
    spec = {"runner": runner, "model": model, "files": files, "forced": forced, "batch_size": BATCH_SIZE}
    spec_path = Path(tempfile.mkstemp(suffix=".json", dir=work)[1])
    spec_path.write_text(json.dumps(spec))
    env = {**os.environ, **THREAD_ENV}
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{runner} on {model} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(spec_path.with_suffix(".out.json").read_text())


def run_rounds(benches: Sequence[Bench], rounds: int, work: Path) -> None:
    """Every system of every model once per round, in the same order each round (interleaved under drifting load)."""
    for round_index in range(rounds):
        for bench in benches:
            for system in SYSTEMS:
                forced = bench.expected_tokens is not None
                result = run_child(system.runner, bench.folders[system.key], bench.files, forced, work)
                bench.results.setdefault(system.key, []).append(result)
                if system.runner == "sherpa":  # its encoder alone, right after it
                    alone = run_child("sherpa_encoder", bench.folders[system.key], bench.files, forced, work)
                    bench.results.setdefault(f"{system.key} encoder", []).append(alone)
                print(f"round {round_index + 1}/{rounds}, {bench.name}, {system.label}: {result['wall_s']:.2f} s")


# ------------------------------------------------------------------------------------------------ report
def summary(bench: Bench, key: str) -> dict:
    """Medians over rounds (peak RSS: the largest), RTFx = audio seconds / end-to-end wall seconds."""
    from statistics import median

    results = bench.results[key]
    wall = median(r["wall_s"] for r in results)
    stages = {k: median(r["stages"][k] for r in results) for k in STAGES}
    if f"{key} encoder" in bench.results:  # sherpa: decode_streams = encoder (timed alone) + greedy search
        stages["encoder"] = median(r["encoder_s"] for r in bench.results[f"{key} encoder"])
        stages["decoder"] -= stages["encoder"]
    return {
        "wall": wall,
        "rtfx": bench.audio_s / wall,
        "load": median(r["load_s"] for r in results),
        "peak": max(r["peak_rss_mb"] for r in results),
        "stages": stages,
        "other": wall - sum(stages.values()),
        "torch": any(r["torch_imported"] for r in results),
    }


def forced_ok(bench: Bench, key: str) -> Optional[bool]:
    """Every round of the system emitted the forced token count on every file (None: not a forced model)."""
    if bench.expected_tokens is None:
        return None
    return all([len(t) for t in r["tokens"]] == bench.expected_tokens for r in bench.results[key])


def wer(bench: Bench, key: str) -> Optional[float]:
    import jiwer

    if bench.references is None:
        return None
    return 100 * jiwer.wer(bench.references, [t.strip() for t in bench.results[key][0]["texts"]])


def token_diffs(bench: Bench, key: str) -> int:
    """Utterances whose tokens differ from (a)'s (first round)."""
    tokens, reference = bench.results[key][0]["tokens"], bench.results["a"][0]["tokens"]
    return sum(t != r for t, r in zip(tokens, reference, strict=True))


def systems_table(bench: Bench) -> str:
    from bench_timing import markdown_table

    base = summary(bench, "a")
    rows = []
    for system in SYSTEMS:
        got = summary(bench, system.key)
        stages, estimated = got["stages"], "~" if system.runner == "sherpa" else ""
        check, error = forced_ok(bench, system.key), wer(bench, system.key)
        diffs = token_diffs(bench, system.key) if system.runner == "onnx" else None
        rows.append(
            [
                system.label,
                f"{got['rtfx']:.1f}",
                f"{got['rtfx'] / base['rtfx']:.2f}x",
                f"{got['wall']:.2f}",
                f"{stages['features']:.2f}",
                f"{estimated}{stages['encoder']:.2f}",
                f"{estimated}{stages['decoder']:.3f}",
                f"{got['other']:.2f}",
                f"{estimated}{100 * stages['decoder'] / got['wall']:.1f}%",
                f"{got['peak']:,.0f}",
                f"{got['load']:.1f}",
                "yes" if got["torch"] else "no",
                "-" if error is None else f"{error:.2f}",
                "-" if diffs is None else str(diffs),
                "-" if check is None else ("ok" if check else "WRONG"),
            ]
        )
    header = ["system", "RTFx", "vs (a)", "wall s", "features s", "encoder s", "decoder s", "other s"]
    header += ["decoder share", "peak RSS MiB", "load s", "torch imported", "WER %", "tokens != (a)", "forced counts"]
    return markdown_table(header, rows)


def decoder_table(bench: Bench) -> str:
    from bench_timing import markdown_table

    rows = []
    for ours, theirs in (("b", "d32"), ("c", "d8")):
        mine, sherpa = summary(bench, ours)["stages"]["decoder"], summary(bench, theirs)["stages"]["decoder"]
        labels = {s.key: s.label for s in SYSTEMS}
        label = f"{labels[ours]} vs {labels[theirs]}"
        rows.append([label, f"{mine:.3f}", f"{sherpa:.3f}", f"{sherpa / mine:.2f}x"])
    return markdown_table(["pair", "our greedy loop s", "sherpa-onnx greedy s (estimate)", "sherpa / ours"], rows)


def targets(demo: Bench, paper: Bench) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for the issue's targets."""
    diffs = token_diffs(demo, "b")
    wer_gap = wer(demo, "c") - wer(demo, "a")
    speedup = summary(paper, "c")["rtfx"] / summary(paper, "a")["rtfx"]
    vs_sherpa = summary(paper, "c")["rtfx"] / summary(paper, "d8")["rtfx"]
    dec = {k: summary(paper, k)["stages"]["decoder"] for k in ("b", "c", "d32", "d8")}
    forced = [s.label for s in SYSTEMS if not forced_ok(paper, s.key)]
    return [
        ("(b) tokens identical to (a), demo test split", f"{diffs} of {len(demo.files)} utterances differ", diffs == 0),
        ("(c) WER within 0.3 points of (a), demo test split", f"{wer_gap:+.2f} points", wer_gap <= 0.3),
        ("(c) RTFx >= 3x (a)'s, paper size", f"{speedup:.2f}x", speedup >= 3),
        ("(c) end to end >= (d) int8 at the same encoder, paper size", f"{vs_sherpa:.2f}x", vs_sherpa >= 1),
        (
            "our decoder loop >= 3x cheaper than sherpa-onnx's, same encoder output, paper size, int8",
            f"{dec['d8'] / dec['c']:.2f}x (fp32: {dec['d32'] / dec['b']:.2f}x)",
            dec["d8"] / dec["c"] >= 3,
        ),
        ("check: every paper-size system emitted the forced token counts", ", ".join(forced) or "all", not forced),
    ]


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    names = ("torch", "nemo_toolkit", "onnxruntime", "sherpa-onnx", "onnx", "numpy", "nemo_aligner_plugin")
    found = []
    for name in names:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def report(args: argparse.Namespace, demo: Bench, paper: Bench, loads: tuple[str, str], inputs: str) -> str:
    import datetime
    import platform
    import shlex

    import forced_e2e

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    kind = "quick: tiny shapes, numbers are meaningless" if args.quick else "full"
    child_loads = [r["load_average"] for b in (demo, paper) for rs in b.results.values() for r in rs]
    parts = [
        f"# Deployment on CPU: PyTorch, our ONNX export, sherpa-onnx ({kind}), {datetime.datetime.now():%F %H:%M}",
        "",
        f"- command: `{shlex.join([Path(sys.executable).name, *sys.argv])}`",
        f"- machine: {platform.node()}, {cpu}, {os.cpu_count()} CPUs (shared with other jobs), no GPU",
        f"- versions: {versions()}, Python {platform.python_version()}",
        "- threads: " + ", ".join(f"{k}={v}" for k, v in THREAD_ENV.items()) + f"; torch.set_num_threads({THREADS}),"
        f" onnxruntime intra_op_num_threads={THREADS} (inter-op 1), sherpa-onnx num_threads={THREADS}",
        f"- load average (1/5/15 min): {loads[0]} at start, {loads[1]} at end; 1-min load at each system's start"
        f" {min(child_loads):.2f}..{max(child_loads):.2f}",
        f"- inputs: {inputs}",
        f"- each system in its own process, batch size {BATCH_SIZE}, {args.rounds} interleaved round(s): load (timed"
        " apart, `load s`), one warm-up batch, then every file once (`wall s`, end to end from the WAV files to text,"
        " feature extraction included); medians over rounds, peak RSS = the largest VmHWM of the system's process"
        " (model load included). `torch imported`: whether torch was in that process's sys.modules (the ONNX and"
        " sherpa-onnx processes must not import it and are checked). Stages: (a) the preprocessor, encoder and"
        " decoding calls timed in transcribe(); (b)/(c) `AlignerOnnx.timings`; (d) sherpa's fbank time, and its"
        " `decode_streams` time split by timing the same encoder.onnx alone on the same batch shapes"
        " (`sherpa_transducer.encoder_seconds`, in Python's onnxruntime, in a process of its own run right after"
        " sherpa's in every round; marked ~): the decoder estimate is the rest. `other` = wall - the stages (reading"
        " audio, data loaders).",
        "",
        f"## Paper-size model ({paper.about})",
        "",
        systems_table(paper),
        "",
        decoder_table(paper),
        "",
        f"## Demo model ({demo.about})",
        "",
        systems_table(demo),
        "",
        decoder_table(demo),
        "",
        "## Targets",
        "",
        *[f"- {'PASS' if met else 'FAIL'}: {target}: {measured}" for target, measured, met in targets(demo, paper)],
        "",
        forced_e2e.FORCING_E2E,
    ]
    return "\n".join(parts)


def run(args: argparse.Namespace) -> None:
    import logging
    import warnings

    from bench_timing import load_average
    from forced_e2e import demo_inputs, prepare_demo, prepare_paper
    from nemo.utils import logging as nemo_logging

    warnings.filterwarnings("ignore")
    nemo_logging.setLevel(logging.ERROR)
    args.rounds = args.rounds or (1 if args.quick else 3)
    files, frames = args.files or (4 if args.quick else 16), args.frames or (30 if args.quick else 300)
    model, rnnt, manifest = demo_inputs(args.demo_model, args.demo_rnnt, args.demo_corpus)
    start_load = load_average()
    with tempfile.TemporaryDirectory(prefix="onnx-bench-") as scratch:
        work = args.work_dir or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        demo = prepare_demo(work, model, rnnt, manifest, args.demo_limit)
        paper = prepare_paper(work, args.quick, files, frames)
        run_rounds((paper, demo), args.rounds, work)
    inputs = (
        f"demo: {model}, {rnnt}, {manifest} ({len(demo.files)} utterances, {demo.audio_s:.0f} s); paper size:"
        f" {files} noise files of {frames} encoder frames ({paper.audio_s / files:.2f} s each)"
    )
    text = report(args, demo, paper, (start_load, load_average()), inputs)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write the markdown report here (it is always printed)")
    parser.add_argument("--quick", action="store_true", help="tiny paper-size shapes, one round (smoke test)")
    parser.add_argument("--demo-model", type=Path, help="demo aligner .nemo (default: newest under data/demo/runs)")
    parser.add_argument("--demo-rnnt", type=Path, help="demo NeMo RNN-T .nemo (default: newest under data/demo/runs)")
    parser.add_argument("--demo-corpus", type=Path, help="demo corpus folder (its test_manifest.json) or a manifest")
    parser.add_argument("--demo-limit", type=int, help="first N utterances of the demo test split (default: all)")
    parser.add_argument("--files", type=int, help="paper-size audio files (default 16; quick 4)")
    parser.add_argument("--frames", type=int, help="encoder frames per paper-size file (default 300 = 12 s; quick 30)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds of every system (default 3; quick 1)")
    parser.add_argument("--work-dir", type=Path, help="keep the exports and audio here (default: a temp folder)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # internal: one system's measurement spec
    args = parser.parse_args(argv)
    if args.child:
        child_main(args.child)
        return
    run(args)


if __name__ == "__main__":
    main()
