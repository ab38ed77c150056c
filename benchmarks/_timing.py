"""Interleaved-median timing for micro-benchmarks, shared by the scripts in this folder.

Candidates are timed in rounds; each round runs every candidate once, in a shuffled order, for a
batch long enough to swamp timer overhead. Comparing candidates *within* a round cancels most of
the drift of a shared machine (frequency changes, a neighbour's load), so ratios are reported as
the median of per-round ratios rather than as a ratio of medians.

    stats = measure({"ours": lambda: v.is_valid(x), "jsonschema": lambda: j.is_valid(x)},
                    baseline="jsonschema")
    print_table("validate a parsed instance", stats, baseline="jsonschema")
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["Stats", "measure", "print_table"]


@dataclass(frozen=True, slots=True)
class Stats:
    """Per-call timings of one candidate over all rounds."""

    median_us: float
    q1_us: float
    q3_us: float
    rounds: int
    calls_per_round: int
    ratio: float | None = None
    """Median over rounds of (this candidate / the baseline in the same round)."""

    @property
    def iqr_pct(self) -> float:
        return 100.0 * (self.q3_us - self.q1_us) / self.median_us if self.median_us else 0.0


def _calibrate(fn: Callable[[], object], batch_s: float) -> int:
    """Calls needed for one batch to last about ``batch_s`` seconds."""
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= batch_s / 4 or n >= 1 << 24:
            return max(1, int(n * batch_s / max(elapsed, 1e-9)))
        n *= 4


def _batch(fn: Callable[[], object], n: int) -> float:
    """Microseconds per call over ``n`` calls, with the GC paused so it lands in no batch."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for _ in range(n):
            fn()
        return (time.perf_counter_ns() - start) / n / 1000.0
    finally:
        if enabled:
            gc.enable()


def measure(
    candidates: Mapping[str, Callable[[], object]],
    *,
    rounds: int = 21,
    baseline: str | None = None,
    batch_s: float = 0.03,
    seed: int = 0,
) -> dict[str, Stats]:
    """Time every candidate in ``rounds`` interleaved, shuffled rounds; per-call statistics.

    ``baseline`` names the candidate the ``ratio`` of every row is taken against.
    """
    if baseline is not None and baseline not in candidates:
        raise ValueError(f"baseline {baseline!r} is not one of the candidates")
    rng = random.Random(seed)
    sizes = {name: _calibrate(fn, batch_s) for name, fn in candidates.items()}
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    order = list(candidates)
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            samples[name].append(_batch(candidates[name], sizes[name]))
    out: dict[str, Stats] = {}
    for name, values in samples.items():
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
        ratio = None
        if baseline is not None:
            base = samples[baseline]
            ratio = statistics.median(v / b for v, b in zip(values, base, strict=True))
        out[name] = Stats(
            median_us=statistics.median(values),
            q1_us=q1,
            q3_us=q3,
            rounds=rounds,
            calls_per_round=sizes[name],
            ratio=ratio,
        )
    return out


def print_table(
    title: str,
    stats: Mapping[str, Stats],
    *,
    baseline: str | None = None,
    speedup: bool = False,
) -> None:
    """A Markdown table: median µs, IQR and the ratio to ``baseline``.

    With ``speedup`` the last column is ``baseline / row`` ("x faster") instead of ``row / baseline``.
    """
    print(f"\n### {title}\n")
    last = f"x faster than {baseline}" if speedup else f"x {baseline}" if baseline else ""
    header = "| candidate | median µs | IQR |" + (f" {last} |" if baseline else "")
    print(header)
    print("|---|--:|--:|" + ("--:|" if baseline else ""))
    for name, s in stats.items():
        row = f"| {name} | {s.median_us:,.3f} | {s.iqr_pct:.0f}% |"
        if baseline:
            ratio = s.ratio if s.ratio is not None else float("nan")
            shown = 1.0 / ratio if speedup and ratio else ratio
            row += f" {shown:,.2f} |"
        print(row)
