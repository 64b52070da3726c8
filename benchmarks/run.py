#!/usr/bin/env python3
"""Speed of the aligner decoder against NeMo's RNN-T, AED and CTC, from the same encoder output, on CPU.

B: batch size, T: encoder frames, U: tokens per utterance (EOS excluded), V: word pieces.

    python benchmarks/run.py --quick                                     # tiny shapes, ~30 s (the smoke test)
    python benchmarks/run.py --out benchmarks/results/$(date +%F)-cpu.md  # everything, ~40 min on 2 shared CPUs
    python benchmarks/run.py --sections infer,floor --batches 8

Sections: ``infer`` (encoder + decoding at T=300, U=100, B in 1/8/32; paper sec. 5 shape), ``floor`` (a bare loop
of U+1 LSTM + joint steps), ``train`` (decoder + loss forward/backward, time and peak RSS), ``scaling`` (greedy
decoding vs U and vs B). Every decoder is forced to emit exactly U tokens (see bench_models.py) and every run is
checked for it. All ratios compare cases timed in the same process, interleaved, with one intra-op thread.
"""

from __future__ import annotations

import os
import sys

# One thread everywhere (the cores are shared); set before torch, MKL and numba read them (not when imported).
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
if __name__ == "__main__":
    os.environ.update(dict.fromkeys(THREAD_ENV, "1"))
# Memory subprocesses only: glibc returns freed buffers >= 64 KiB to the OS at once (slows timing, so not here).
MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}

import argparse  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, field, replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Optional  # noqa: E402

import bench_models as bm  # noqa: E402
import nemo  # noqa: E402
import torch  # noqa: E402
from bench_timing import (  # noqa: E402
    Case,
    Stat,
    fmt_ms,
    fmt_ratio,
    load_average,
    markdown_table,
    measure,
    peak_rss_delta_mb,
    torch_threads,
)
from nemo.utils import logging as nemo_logging  # noqa: E402

from nemo_aligner_plugin.decoding.greedy import GreedyBatchConfig, _greedy_stepwise, greedy_batch  # noqa: E402
from nemo_aligner_plugin.decoding.prediction import input_gate_table  # noqa: E402

SECTIONS = ("infer", "floor", "train", "scaling")

# Row labels (the smoke test checks that every one is in the report).
ENCODER = "encoder: preprocessor + Conformer"
ALIGNER_GREEDY = "aligner greedy_batch"
ALIGNER_GREEDY_NODNN = "aligner greedy_batch, oneDNN LSTM off"
ALIGNER_GREEDY_STEPWISE = "aligner greedy, stepwise loop (the fallback for other prediction networks)"
ALIGNER_BEAM = "aligner beam 6"
ALIGNER_BEAM_NODNN = "aligner beam 6, oneDNN LSTM off"
RNNT_GREEDY = "RNN-T greedy_batch (label looping)"
RNNT_GREEDY_NODNN = "RNN-T greedy_batch, oneDNN LSTM off"
RNNT_BEAM = "RNN-T malsd_batch beam 6"
RNNT_BEAM_NODNN = "RNN-T malsd_batch beam 6, oneDNN LSTM off"
AED_GREEDY = "AED greedy"
AED_BEAM = "AED beam 6"
AED_GREEDY_CACHED = "AED greedy, cross-attn K/V cached (not NeMo)"
AED_BEAM_CACHED = "AED beam 6, cross-attn K/V cached (not NeMo)"
CTC_GREEDY = "CTC greedy_batch"
INFER_ROWS = (
    ALIGNER_GREEDY,
    ALIGNER_GREEDY_NODNN,
    ALIGNER_GREEDY_STEPWISE,
    ALIGNER_BEAM,
    ALIGNER_BEAM_NODNN,
    RNNT_GREEDY,
    RNNT_GREEDY_NODNN,
    RNNT_BEAM,
    RNNT_BEAM_NODNN,
    AED_GREEDY,
    AED_BEAM,
    AED_GREEDY_CACHED,
    AED_BEAM_CACHED,
    CTC_GREEDY,
)
BEAM_ROWS = (ALIGNER_BEAM, ALIGNER_BEAM_NODNN, RNNT_BEAM, RNNT_BEAM_NODNN, AED_BEAM, AED_BEAM_CACHED)
FLOOR_MODULE = "floor: nn.LSTM module step + joint step"
FLOOR_CELL = "floor: torch.lstm_cell step + joint step"
FLOOR_FOLDED = "floor: gathered input gates + W_hh GEMM + joint step"
FLOOR_ROWS = (FLOOR_MODULE, FLOOR_CELL, FLOOR_FOLDED, ALIGNER_GREEDY, ALIGNER_GREEDY_NODNN, ALIGNER_GREEDY_STEPWISE)
SCALING_ROWS = (ALIGNER_GREEDY, ALIGNER_GREEDY_STEPWISE, RNNT_GREEDY, RNNT_GREEDY_NODNN)
TRAIN_ROWS = tuple(bm.TRAIN_CASES)
TARGET_ROWS = (
    "decode, greedy: RNN-T greedy_batch / aligner greedy_batch >= 5x",
    "total (encoder + greedy decode): RNN-T / aligner >= 2x",
    "total (encoder + beam 6): AED / aligner >= 16x",
    "aligner greedy_batch / floor (nn.LSTM module) <= 1.2x",
    "training decoder+loss: fastest RNN-T / aligner >= 10x",
    "training decoder+loss: fastest RNN-T / chunkwise aligner >= 5x",
)


@dataclass
class Config:
    """Shapes and measurement policy of one run."""

    is_quick: bool = False  # tiny models and shapes (--quick)
    sizes: bm.Sizes = field(default_factory=bm.Sizes)
    frames: int = 300  # T (12 s of audio at 40 ms frames)
    tokens: int = 100  # U
    batches: tuple[int, ...] = (1, 8, 32)
    main_batch: int = 8  # the batch of the targets and of the floor/train sections
    scale_tokens: tuple[int, ...] = (25, 50, 100, 200, 400)  # with T = frames_per_token * U
    frames_per_token: int = 3
    scale_batches: tuple[int, ...] = (1, 8, 32, 64)
    repeats: int = 5  # measured runs per case at most
    budget_s: float = 60.0  # fewer repeats when a case's runs would take longer than this in total
    warmup_max_s: float = 30.0  # no separate warm-up run at a shape above this estimate
    max_case_s: float = 900.0  # skip a case estimated above this per run
    train_warmup_scale: int = 4  # training warm-up (numba JIT) at T/4, U/4: its time x 16 is the estimate

    @classmethod
    def quick(cls) -> Config:
        return cls(
            is_quick=True,
            sizes=bm.QUICK_SIZES,
            frames=12,
            tokens=4,
            batches=(1, 2),
            main_batch=2,
            scale_tokens=(2, 4),
            scale_batches=(1, 2),
            repeats=2,
            budget_s=2.0,
            warmup_max_s=5.0,
            max_case_s=60.0,
            train_warmup_scale=2,
        )

    @property
    def max_tokens(self) -> int:
        return max(self.tokens, *self.scale_tokens)


@dataclass
class Report:
    """Markdown chunks plus the numbers the targets table needs."""

    main_batch: int
    chunks: list[str] = field(default_factory=list)
    numbers: dict[str, float] = field(default_factory=dict)

    def add(self, text: str) -> None:
        self.chunks.append(text)
        print(text + "\n", flush=True)


# ------------------------------------------------------------------------------------------------ helpers
def expect_tokens(count: int) -> Callable[[list], None]:
    def check(hyps: list) -> None:
        lengths = bm.hyp_lengths(hyps)
        if any(n != count for n in lengths):
            raise AssertionError(f"forcing failed: expected {count} tokens per utterance, got {lengths}")

    return check


def inference(fn: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        with torch.inference_mode():
            return fn()

    return run


def scaled_estimate(previous: Optional[Stat], factor: float) -> Optional[float]:
    return previous.median * factor if previous is not None and previous.n else None


def section_header(title: str, report: Report) -> None:
    report.add(f"## {title}\n\nload average (1/5/15 min) at start: {load_average()}")


def notes(stats: dict[str, Stat]) -> str:
    lines = [f"- {name}: {stat.note}" for name, stat in stats.items() if stat.note]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ sections
@dataclass
class Decoders:
    """Every system's decoding callable, built once with forced random weights."""

    table: dict[str, tuple[bm.Decode, Optional[int]]]  # row -> (decode, expected tokens or None)
    aligner: tuple[torch.nn.Module, torch.nn.Module]  # (decoder, joint) of the aligner


def greedy_stepwise(decoder, joint, enc, lens, eos_id, cfg=None, state=None):
    """The package's generic greedy loop (used for prediction networks other than a plain LSTM in eval mode)."""
    return _greedy_stepwise(decoder, joint, enc, lens, eos_id, cfg or GreedyBatchConfig(), state)


def build_decoders(cfg: Config, tokens: int) -> Decoders:
    sizes = cfg.sizes
    delta = bm.counter_delta(cfg.max_tokens)
    ad, aj = bm.build_transducer(sizes)
    bm.force_aligner(aj, eos_id=sizes.vocab)
    rd, rj = bm.build_transducer(sizes)
    bm.force_rnnt(rd, rj, delta, cfg.max_tokens)
    aed = bm.build_aed(sizes)
    bm.force_aed(aed)
    _, ctc = bm.ctc_decoder(sizes)
    vocab = sizes.vocab
    rnnt_greedy = bm.rnnt_decoder(rd, rj, "greedy_batch", vocab)
    rnnt_beam = bm.rnnt_decoder(rd, rj, "malsd_batch", vocab)
    aligner_greedy = bm.aligner_decoder(ad, aj, "greedy_batch")
    aligner_beam = bm.aligner_decoder(ad, aj, "beam")
    table = {
        ALIGNER_GREEDY: (aligner_greedy, tokens),
        ALIGNER_GREEDY_NODNN: (bm.without_onednn(aligner_greedy), tokens),
        ALIGNER_GREEDY_STEPWISE: (bm.aligner_decoder(ad, aj, "greedy_batch", search_fn=greedy_stepwise), tokens),
        ALIGNER_BEAM: (aligner_beam, tokens),
        ALIGNER_BEAM_NODNN: (bm.without_onednn(aligner_beam), tokens),
        RNNT_GREEDY: (rnnt_greedy, tokens),
        RNNT_GREEDY_NODNN: (bm.without_onednn(rnnt_greedy), tokens),
        RNNT_BEAM: (rnnt_beam, tokens),
        RNNT_BEAM_NODNN: (bm.without_onednn(rnnt_beam), tokens),
        AED_GREEDY: (bm.aed_decoder(aed, tokens), tokens + 1),
        AED_BEAM: (bm.aed_decoder(aed, tokens, beam_size=6), tokens + 1),
        AED_GREEDY_CACHED: (bm.aed_decoder(aed, tokens, cache_cross_kv=True), tokens + 1),
        AED_BEAM_CACHED: (bm.aed_decoder(aed, tokens, beam_size=6, cache_cross_kv=True), tokens + 1),
        CTC_GREEDY: (ctc, None),
    }
    return Decoders(table, (ad, aj))


def decode_case(
    name: str,
    decode: bm.Decode,
    expected: Optional[int],
    enc: torch.Tensor,
    lens: torch.Tensor,
    estimate: Optional[float],
) -> Case:
    return Case(name, inference(lambda: decode(enc, lens)), expect_tokens(expected) if expected else None, estimate)


def run_infer(cfg: Config, report: Report) -> None:
    section_header(f"1. Inference: T={cfg.frames}, U={cfg.tokens}", report)
    sizes, frames, tokens = cfg.sizes, cfg.frames, cfg.tokens
    preprocessor, encoder = bm.build_encoder(sizes)
    decoders = build_decoders(cfg, tokens)
    delta = bm.counter_delta(cfg.max_tokens)
    previous: dict[str, tuple[int, Stat]] = {}
    gen = torch.Generator().manual_seed(0)
    for batch in sorted(cfg.batches):
        audio = torch.randn(batch, bm.audio_samples(frames), generator=gen) * 0.1
        with torch.inference_mode():
            enc_out, enc_lens = bm.encode(preprocessor, encoder, audio)
        if enc_out.size(2) != frames or int(enc_lens.min()) != frames:
            raise AssertionError(f"encoder gave {tuple(enc_out.shape)} / {enc_lens.tolist()}, expected T={frames}")
        enc = bm.forcing_channels(enc_out.transpose(1, 2).contiguous(), tokens, delta)  # (B, T, D)

        def estimate(name: str, batch: int = batch) -> Optional[float]:
            prev = previous.get(name)
            return scaled_estimate(prev[1], batch / prev[0]) if prev else None

        def run_encoder(audio: torch.Tensor = audio) -> tuple[torch.Tensor, torch.Tensor]:
            return bm.encode(preprocessor, encoder, audio)

        cases = [Case(ENCODER, inference(run_encoder), None, estimate(ENCODER))]
        for name, (fn, expected) in decoders.table.items():
            cases.append(decode_case(name, fn, expected, enc, enc_lens, estimate(name)))
        stats = measure(cases, cfg.repeats, cfg.budget_s, cfg.warmup_max_s, cfg.max_case_s)
        previous.update({name: (batch, stat) for name, stat in stats.items() if stat.n})
        report.add(infer_table(batch, stats) + ("\n\n" + notes(stats) if notes(stats) else ""))
        if batch == cfg.main_batch:
            for name, stat in stats.items():
                report.numbers[f"infer:{name}"] = stat.median
    report.add(f"load average at end: {load_average()}")


def infer_table(batch: int, stats: dict[str, Stat]) -> str:
    encoder = stats[ENCODER]
    rows = [[ENCODER, fmt_ms(encoder), "", "", "", str(encoder.n)]]
    for name in INFER_ROWS:
        stat = stats[name]
        ref = stats[ALIGNER_BEAM if name in BEAM_ROWS else ALIGNER_GREEDY]
        total = stat.median + encoder.median if stat.n else None
        ref_total = ref.median + encoder.median if ref.n else None
        rows.append(
            [
                name,
                fmt_ms(stat),
                f"{total * 1e3:,.0f}" if total else "n/a",
                fmt_ratio(stat.median, ref.median),
                fmt_ratio(total, ref_total),
                str(stat.n),
            ]
        )
    header = [f"B={batch}", "decode ms", "total ms (enc + dec)", "decode / aligner", "total / aligner", "n"]
    return f"### B={batch}\n\n" + markdown_table(header, rows)


def floor_loop(decoder: torch.nn.Module, joint: torch.nn.Module, enc: torch.Tensor, steps: int, eos_id: int,
               lstm_step: str) -> torch.Tensor:  # fmt: skip
    """The least work a greedy aligner decoder must do: LSTM step, joint step, argmax, nothing else.

    lstm_step: "module" (the nn.LSTM as RNNTDecoder.predict calls it), "cell" (torch.lstm_cell) or "folded"
    (input gates gathered from a precomputed (V1, 4H) table, as the package's greedy_batch does).
    """
    embed, rnn = decoder.prediction["embed"], decoder.prediction["dec_rnn"]
    w_ih, w_hh, b_ih, b_hh = rnn.lstm.all_weights[0]
    table = input_gate_table(embed, rnn.lstm)
    enc_proj = joint.project_encoder(enc[:, :steps])
    token = torch.full((enc.size(0),), eos_id, dtype=torch.long)
    h = c = enc.new_zeros(enc.size(0), rnn.lstm.hidden_size)
    state = None
    for step in range(steps):
        if lstm_step == "module":
            out, state = rnn(embed(token).unsqueeze(0), state)
            h = out[0]
        elif lstm_step == "cell":
            h, c = torch.lstm_cell(embed(token), (h, c), w_ih, w_hh, b_ih, b_hh)
        else:
            in_gate, forget_gate, cell_gate, out_gate = torch.addmm(table[token], h, w_hh.t()).chunk(4, dim=1)
            c = torch.sigmoid(forget_gate) * c + torch.sigmoid(in_gate) * torch.tanh(cell_gate)
            h = torch.sigmoid(out_gate) * torch.tanh(c)
        token = joint.joint_net(enc_proj[:, step] + joint.project_prednet(h)).argmax(dim=-1)
    return token


def run_floor(cfg: Config, report: Report) -> None:
    batch, frames, tokens, sizes = cfg.main_batch, cfg.frames, cfg.tokens, cfg.sizes
    section_header(f"2. Floor: B={batch}, T={frames}, U={tokens} ({tokens + 1} steps incl. EOS)", report)
    decoders = build_decoders(cfg, tokens)
    ad, aj = decoders.aligner
    enc = bm.forcing_channels(torch.randn(batch, frames, sizes.enc_dim), tokens, bm.counter_delta(cfg.max_tokens))
    lens = torch.full((batch,), frames, dtype=torch.long)
    eos = sizes.vocab
    cases = [
        Case(name, inference(lambda kind=kind: floor_loop(ad, aj, enc, tokens + 1, eos, kind)))
        for name, kind in ((FLOOR_MODULE, "module"), (FLOOR_CELL, "cell"), (FLOOR_FOLDED, "folded"))
    ]
    cases += [decode_case(name, *decoders.table[name], enc, lens, None) for name in FLOOR_ROWS[3:]]
    cases.append(
        Case("greedy_batch (tensors, no Hypothesis objects)", inference(lambda: greedy_batch(ad, aj, enc, lens, eos)))
    )
    stats = measure(cases, cfg.repeats * 2, cfg.budget_s, cfg.warmup_max_s, cfg.max_case_s)
    floors = [stats[name].median for name in FLOOR_ROWS[:3]]
    rows = [
        [name, fmt_ms(stat), *(fmt_ratio(stat.median, floor) for floor in floors), str(stat.n)]
        for name, stat in stats.items()
    ]
    header = ["case", "ms", "/ floor (nn.LSTM)", "/ floor (lstm_cell)", "/ floor (folded)", "n"]
    report.add(markdown_table(header, rows) + f"\n\nload average at end: {load_average()}")
    report.numbers["floor:module"], report.numbers["floor:cell"], report.numbers["floor:folded"] = floors
    report.numbers["floor:aligner"] = stats[ALIGNER_GREEDY].median
    report.numbers["floor:stepwise"] = stats[ALIGNER_GREEDY_STEPWISE].median


def train_case(name: str, cfg: Config) -> tuple[Case, str]:
    """A training-step case, warmed up (numba JIT, first calls) at T/k, U/k; returns it and that warm-up's time."""
    spec = bm.TRAIN_CASES[name]
    modules, step = spec.build(cfg.sizes)
    for module in modules:
        module.train()
    params = [p for module in modules for p in module.parameters()]
    batch = bm.make_batch(cfg.main_batch, cfg.frames, cfg.tokens, cfg.sizes)
    k = cfg.train_warmup_scale
    small_tokens = max(1, cfg.tokens // k)
    small = bm.make_batch(cfg.main_batch, cfg.frames // k, small_tokens, cfg.sizes)

    def run(b: bm.Batch) -> float:
        for p in params:
            p.grad = None
        b.encoder_out.grad = None
        loss = step(b)
        loss.backward()
        return float(loss)

    elapsed = [0.0, 0.0]
    for i in range(2):  # the second run (if cheap) is free of first-call costs
        start = time.perf_counter()
        run(small)
        elapsed[i] = time.perf_counter() - start
        if elapsed[0] > cfg.warmup_max_s:
            elapsed[1] = elapsed[0]
            break
    estimate = elapsed[1] * (k * k) ** spec.cost_power
    small_note = f"{elapsed[1] * 1e3:,.0f} ms at T={cfg.frames // k}, U={small_tokens}"
    return Case(name, lambda: run(batch), None, estimate), small_note


def train_memory(names: Sequence[str], quick: bool) -> dict[str, Optional[float]]:
    """Peak RSS increase (MiB) of one full-shape training step per case, measured in one separate process."""
    if not names:
        return {}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-cases", json.dumps(list(names))]
    proc = subprocess.run(
        cmd + (["--quick"] if quick else []), env={**os.environ, **MEMORY_ENV}, capture_output=True, text=True
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        print(f"memory subprocess failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}", file=sys.stderr)
        return {}
    return json.loads(lines[-1])


def memory_cases_main(names: Sequence[str], quick: bool) -> None:
    """Subprocess side of ``train_memory``: each case warmed up at the small shape, then one measured step each.

    A case's tensors are freed before the next one runs and (with MEMORY_ENV) leave RSS, so each high-water mark,
    reset before its step, is that step's own.
    """
    cfg = Config.quick() if quick else Config()
    cases = [train_case(name, cfg)[0] for name in names]
    peaks = {}
    for case in cases:
        gc.collect()
        with peak_rss_delta_mb() as peak:
            case.run()
        peaks[case.name] = peak()
    print(json.dumps(peaks))


def run_train(cfg: Config, report: Report) -> None:
    batch, frames, tokens, vocab = cfg.main_batch, cfg.frames, cfg.tokens, cfg.sizes.vocab
    section_header(
        f"3. Training step (decoder + loss, forward + backward): B={batch}, T={frames}, U={tokens}, V={vocab}", report
    )
    cases, small = zip(*(train_case(name, cfg) for name in TRAIN_ROWS), strict=True)
    stats = measure(cases, cfg.repeats, cfg.budget_s, cfg.warmup_max_s, cfg.max_case_s)
    for stat, small_note in zip(stats.values(), small, strict=True):
        if not stat.n:
            stat.note += f" (warm-up: {small_note})"
    peaks = train_memory([name for name, stat in stats.items() if stat.n], cfg.is_quick)
    for name, peak in peaks.items():
        stats[name].peak_mb = peak
    aligner = stats[TRAIN_ROWS[0]]
    rows = [
        [
            name,
            fmt_ms(stat),
            fmt_ratio(stat.median, aligner.median),
            "n/a" if stat.peak_mb is None else f"{stat.peak_mb:,.0f}" if stat.peak_mb >= 100 else f"{stat.peak_mb:.3g}",
            fmt_ratio(stat.peak_mb, aligner.peak_mb),
            str(stat.n),
        ]
        for name, stat in stats.items()
    ]
    header = ["case", "ms", "/ aligner", "peak RSS increase MiB (own process)", "/ aligner", "n"]
    report.add(
        markdown_table(header, rows)
        + ("\n\n" + notes(stats) if notes(stats) else "")
        + f"\n\n{bm.CHUNKWISE_TRAIN}: {bm.CHUNKWISE_NOTE}"
        + f"\n\nload average at end: {load_average()}"
    )
    for name, stat in stats.items():
        report.numbers[f"train:{name}"] = stat.median


def run_scaling(cfg: Config, report: Report) -> None:
    section_header("4. Scaling of greedy decoding (synthetic encoder output, forced U tokens)", report)
    decoders = build_decoders(cfg, cfg.tokens)
    dim = cfg.sizes.enc_dim
    delta = bm.counter_delta(cfg.max_tokens)
    shapes = [("U", tokens, cfg.main_batch, tokens * cfg.frames_per_token) for tokens in cfg.scale_tokens]
    shapes += [("B", batch, batch, cfg.frames) for batch in cfg.scale_batches]
    results: dict[tuple[str, int], dict[str, Stat]] = {}
    previous: dict[tuple[str, str], tuple[float, Stat]] = {}
    for axis, value, batch, frames in shapes:
        tokens = value if axis == "U" else cfg.tokens
        enc = bm.forcing_channels(torch.randn(batch, frames, dim), tokens, delta)
        lens = torch.full((batch,), frames, dtype=torch.long)
        cases = []
        for name in SCALING_ROWS:
            fn = decoders.table[name][0]
            prev = previous.get((axis, name))
            estimate = scaled_estimate(prev[1], value / prev[0]) if prev else None
            cases.append(decode_case(name, fn, tokens, enc, lens, estimate))
        results[(axis, value)] = measure(cases, cfg.repeats, cfg.budget_s, cfg.warmup_max_s, cfg.max_case_s)
        for name, stat in results[(axis, value)].items():
            if stat.n:
                previous[(axis, name)] = (value, stat)
    for axis, values, fixed in (
        ("U", cfg.scale_tokens, f"B={cfg.main_batch}, T={cfg.frames_per_token}*U"),
        ("B", cfg.scale_batches, f"T={cfg.frames}, U={cfg.tokens}"),
    ):
        header = [f"ms ({fixed})"] + [f"{axis}={v}" for v in values]
        rows = [[name] + [fmt_ms(results[(axis, v)][name]) for v in values] for name in SCALING_ROWS]
        for num, den in ((RNNT_GREEDY, ALIGNER_GREEDY), (RNNT_GREEDY_NODNN, ALIGNER_GREEDY)):
            rows.append(
                [f"ratio {num} / {den}"]
                + [fmt_ratio(results[(axis, v)][num].median, results[(axis, v)][den].median) for v in values]
            )
        report.add(markdown_table(header, rows))
    report.add(f"load average at end: {load_average()}")


# ------------------------------------------------------------------------------------------------ report
def targets_table(report: Report) -> str:
    """The issue's targets, each with the number it is judged on and other views of the same comparison."""
    numbers = report.numbers

    def get(key: str) -> Optional[float]:
        value = numbers.get(key)
        return value if value is not None and value == value else None  # NaN: not measured

    def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
        return a / b if a is not None and b else None

    def dec(name: str) -> Optional[float]:
        return get(f"infer:{name}")

    def total(name: str) -> Optional[float]:
        enc, value = dec(ENCODER), dec(name)
        return enc + value if enc is not None and value is not None else None

    rnnt_train = {name: get(f"train:{name}") for name in TRAIN_ROWS[1:4] if get(f"train:{name}") is not None}
    fastest_rnnt = min(rnnt_train, key=rnnt_train.get) if rnnt_train else None
    aligner_train = get(f"train:{TRAIN_ROWS[0]}")
    chunkwise_train = get(f"train:{bm.CHUNKWISE_TRAIN}")
    specs = [  # (target, value, goal, value must be >= goal, other views)
        (TARGET_ROWS[0], ratio(dec(RNNT_GREEDY), dec(ALIGNER_GREEDY)), 5.0, True, [
            ("both oneDNN LSTM off", ratio(dec(RNNT_GREEDY_NODNN), dec(ALIGNER_GREEDY_NODNN))),
            ("aligner as is vs RNN-T oneDNN off", ratio(dec(RNNT_GREEDY_NODNN), dec(ALIGNER_GREEDY))),
            ("stepwise aligner loop vs RNN-T as is", ratio(dec(RNNT_GREEDY), dec(ALIGNER_GREEDY_STEPWISE))),
        ]),
        (TARGET_ROWS[1], ratio(total(RNNT_GREEDY), total(ALIGNER_GREEDY)), 2.0, True, [
            ("stepwise aligner loop", ratio(total(RNNT_GREEDY), total(ALIGNER_GREEDY_STEPWISE))),
        ]),
        (TARGET_ROWS[2], ratio(total(AED_BEAM), total(ALIGNER_BEAM)), 16.0, True, [
            ("AED with cached cross-attn K/V", ratio(total(AED_BEAM_CACHED), total(ALIGNER_BEAM))),
            ("decode only, NeMo AED", ratio(dec(AED_BEAM), dec(ALIGNER_BEAM))),
            ("decode only, cached AED", ratio(dec(AED_BEAM_CACHED), dec(ALIGNER_BEAM))),
        ]),
        (TARGET_ROWS[3], ratio(get("floor:aligner"), get("floor:module")), 1.2, False, [
            ("package vs lstm_cell floor", ratio(get("floor:aligner"), get("floor:cell"))),
            ("package vs folded floor", ratio(get("floor:aligner"), get("floor:folded"))),
            ("stepwise loop vs lstm_cell floor", ratio(get("floor:stepwise"), get("floor:cell"))),
        ]),
        (TARGET_ROWS[4], ratio(rnnt_train.get(fastest_rnnt), aligner_train), 10.0, True, [
            (f"vs {name}", ratio(value, aligner_train)) for name, value in rnnt_train.items() if name != fastest_rnnt
        ] + [("vs RNN-T with the plugin's vectorized loss", ratio(get(f"train:{TRAIN_ROWS[4]}"), aligner_train))]),
        (TARGET_ROWS[5], ratio(rnnt_train.get(fastest_rnnt), chunkwise_train), 5.0, True, [
            (f"vs {name}", ratio(value, chunkwise_train)) for name, value in rnnt_train.items() if name != fastest_rnnt
        ] + [
            ("vs RNN-T with the plugin's vectorized loss", ratio(get(f"train:{TRAIN_ROWS[4]}"), chunkwise_train)),
            ("chunkwise / aligner CE", ratio(chunkwise_train, aligner_train)),
        ]),
    ]  # fmt: skip
    rows = []
    for label, value, goal, at_least, views in specs:
        if value is None:
            verdict, shown = "n/a (section not run)", "n/a"
        else:
            verdict, shown = ("met" if (value >= goal if at_least else value <= goal) else "missed"), f"{value:.2f}x"
        rows.append([label, shown, verdict, "; ".join(f"{what}: {v:.2f}x" for what, v in views if v is not None)])
    return markdown_table([f"target (B={report.main_batch})", "measured", "verdict", "other views"], rows)


def header(cfg: Config, args: argparse.Namespace) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    kind = "quick: tiny models, numbers are meaningless" if args.quick else "full"
    return "\n".join(
        [
            f"# Aligner decoder benchmarks ({kind}), {datetime.datetime.now():%Y-%m-%d %H:%M}",
            "",
            f"- command: `{shlex.join([Path(sys.executable).name, *sys.argv])}`",
            f"- machine: {platform.node()}, {cpu}, {os.cpu_count()} CPUs (shared with other jobs), no GPU",
            f"- torch {torch.__version__}, nemo_toolkit {nemo.__version__}, Python {platform.python_version()}",
            f"- threads: {torch_threads()}; env " + ", ".join(f"{k}={os.environ.get(k)}" for k in THREAD_ENV),
            f"- load average (1/5/15 min) at start: {load_average()}",
            f"- sizes: {cfg.sizes}",
            "- times: median of n interleaved runs after a warm-up run (wall clock, one thread); totals = median"
            " encoder + median decode; ratio columns = this row / the aligner row of the same search (greedy or beam)",
            "",
            bm.FORCING,
        ]
    )


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny models and shapes, 2 repeats (smoke test)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset of: %(default)s")
    parser.add_argument("--out", type=Path, help="write the markdown report here (it is always printed)")
    parser.add_argument("--batches", help="inference batch sizes, e.g. 1,8,32")
    parser.add_argument("--repeats", type=int, help="measured runs per case at most (default 5; quick 2)")
    parser.add_argument("--budget-s", type=float, help="seconds of measured runs per case before repeats are cut")
    parser.add_argument("--max-case-s", type=float, help="skip cases estimated to take longer per run")
    parser.add_argument("--encoder-layers", type=int, help="Conformer layers (default 17, the paper's)")
    parser.add_argument("--memory-cases", help=argparse.SUPPRESS)  # internal: JSON list of training cases
    args = parser.parse_args(argv)
    unknown = set(args.sections.split(",")) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    return args


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    warnings.filterwarnings("ignore")
    nemo_logging.setLevel(logging.ERROR)
    if args.memory_cases:
        memory_cases_main(json.loads(args.memory_cases), args.quick)
        return
    cfg = Config.quick() if args.quick else Config()
    overrides = {
        "batches": tuple(int(b) for b in args.batches.split(",")) if args.batches else None,
        "repeats": args.repeats,
        "budget_s": args.budget_s,
        "max_case_s": args.max_case_s,
    }
    for key, value in overrides.items():
        if value is not None:
            setattr(cfg, key, value)
    if args.encoder_layers:
        cfg.sizes = replace(cfg.sizes, enc_layers=args.encoder_layers)
    if cfg.main_batch not in cfg.batches:
        cfg.main_batch = cfg.batches[len(cfg.batches) // 2]
    torch.manual_seed(0)
    report = Report(cfg.main_batch)
    report.add(header(cfg, args))
    runners = {"infer": run_infer, "floor": run_floor, "train": run_train, "scaling": run_scaling}
    for section in args.sections.split(","):
        runners[section](cfg, report)
    report.add("## Targets\n\n" + targets_table(report))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n\n".join(report.chunks) + "\n")


if __name__ == "__main__":
    main()
