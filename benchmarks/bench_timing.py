"""Interleaved wall-clock timing, peak-RSS measurement and markdown tables for benchmarks/run.py.

The CPUs are shared with other jobs, so absolute times drift with the load: cases are timed in interleaved rounds
(every case once per round) and reported as medians, and ratios are taken between cases of the same run.
"""

from __future__ import annotations

import os
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

__all__ = ["Case", "Stat", "measure", "load_average", "peak_rss_delta_mb", "markdown_table", "fmt_ms", "fmt_ratio"]


@dataclass
class Case:
    """One thing to time; ``run`` is called with no arguments and its result passed to ``check`` once."""

    name: str
    run: Callable[[], Any]
    check: Optional[Callable[[Any], None]] = None  # raises if the forced output is not what was intended
    estimate_s: Optional[float] = None  # predicted seconds per run (from a smaller shape); None: unknown


@dataclass
class Stat:
    times: list[float] = field(default_factory=list)  # seconds, measured runs only
    peak_mb: Optional[float] = None  # peak RSS increase of one run, measured in its own process
    note: str = ""  # why a case was skipped or how it was warmed up

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else float("nan")

    @property
    def n(self) -> int:
        return len(self.times)


def _timed(case: Case, stat: Stat, record: bool) -> float:
    start = time.perf_counter()
    out = case.run()
    elapsed = time.perf_counter() - start
    if case.check is not None:
        case.check(out)
    del out
    if record:
        stat.times.append(elapsed)
    return elapsed


def measure(
    cases: Sequence[Case],
    repeats: int,
    budget_s: float,
    warmup_max_s: float,
    max_case_s: float,
) -> dict[str, Stat]:
    """Time ``cases`` in interleaved rounds; returns name -> Stat.

    Each case gets one warm-up run (discarded) unless its estimate exceeds ``warmup_max_s`` (its code paths were
    warmed at a smaller shape already), then up to ``repeats`` measured runs, fewer if they would take more than
    ``budget_s`` in total (at least one). A case whose estimate exceeds ``max_case_s`` is skipped and says so.
    """
    stats = {case.name: Stat() for case in cases}
    planned: dict[str, int] = {}
    for case in cases:
        stat, estimate = stats[case.name], case.estimate_s
        if estimate is not None and estimate > max_case_s:
            stat.note = f"skipped: estimated {estimate:.0f} s per run > --max-case-s {max_case_s:.0f}"
            continue
        if estimate is None or estimate <= warmup_max_s:
            estimate = _timed(case, stat, record=False)
        else:
            stat.note = "no warm-up at this shape (warmed at a smaller one)"
        planned[case.name] = max(1, min(repeats, int(budget_s / max(estimate, 1e-9))))
    for round_idx in range(max(planned.values(), default=0)):
        for case in cases:
            if round_idx < planned.get(case.name, 0):
                _timed(case, stats[case.name], record=True)
    return stats


# ------------------------------------------------------------------------------------------------ memory
def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.M).group(1))


class peak_rss_delta_mb:
    """Context manager: peak resident memory above the level at entry, in MiB, via Linux VmHWM.

    Writing 5 to /proc/self/clear_refs resets the high-water mark. torch's CPU allocator does not cache; run the
    process with glibc's mmap threshold fixed (MALLOC_MMAP_THRESHOLD_=65536) so freed tensors leave RSS at once,
    and the number is the step's own peak of live tensors (+ allocator slack), not earlier leftovers. That setting
    slows small allocations, so memory is measured in a separate process from timing.
    """

    def __enter__(self) -> Callable[[], Optional[float]]:
        self.result: Optional[float] = None
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.base_kb = _status_kb("VmRSS")
        except OSError:
            self.base_kb = None
        return lambda: self.result

    def __exit__(self, *exc: object) -> None:
        if self.base_kb is not None:
            self.result = (_status_kb("VmHWM") - self.base_kb) / 1024


# ------------------------------------------------------------------------------------------------ reporting
def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def fmt_ms(stat: Optional[Stat]) -> str:
    if stat is None or not stat.n:
        return "n/a"
    ms = stat.median * 1e3
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.3g}"


def fmt_ratio(num: Optional[float], den: Optional[float]) -> str:
    if num is None or den is None or not (num == num and den == den) or den <= 0:
        return "n/a"
    return f"{num / den:.2f}x"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def torch_threads() -> str:
    return f"torch intra-op {torch.get_num_threads()}, inter-op {torch.get_num_interop_threads()}"
