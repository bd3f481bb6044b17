"""The harness measured against its peers: ``python -m suite selftest``.

On the same kernels, in one process and interleaved round by round (the order of
the timers rotates each round, so machine drift and order hit every timer
alike), compare the suite's median with ``timeit`` and with
``torch.utils.benchmark.Timer.blocked_autorange``; and measure the suite's own
per-call overhead on an empty function. This is a benchmark, not a test: it
prints ratios, and their figures go into the README.

The three must measure the same thing. ``torch.utils.benchmark.Timer`` runs its
statement on **one** thread unless told otherwise (``num_threads=1`` by default),
while the suite and ``timeit`` run torch at its own thread count: the selftest
pins one count for all three (torch's, read once) and, as a diagnostic, also
times each torch kernel with ``torch.utils.benchmark`` on one thread. At the end
it says which explains a disagreement: **threads** (the one-thread figure is
where the odd timer was), **noise** (the timers disagree by no more than each
disagrees with itself between rounds, or the machine was busy: the foreign load
of ``suite.contention``), or neither (a real disagreement).
"""

from __future__ import annotations

import math
import statistics
import timeit
from collections.abc import Callable
from typing import Any

import numpy as np

from backends import get_backend
from suite.format import format_seconds
from suite.timing import Timer, TimerConfig, measure_overhead

Kernel = tuple[str, Callable[[], Any]]
TIMERS = ("suite", "timeit", "torch")


def kernels() -> list[Kernel]:
    """NumPy and torch (CPU) kernels from about 10 us to about 1 ms."""
    out: list[Kernel] = []
    rng = np.random.default_rng(0)
    for backend in ("numpy", "torch"):
        adapter = get_backend(backend, "cpu")
        if not adapter.availability().ok:
            continue
        for form, shape in (("cumsum", (4, 64, 32)), ("matrix", (4, 64, 32)), ("cumsum", (8, 256, 64))):
            x = adapter.to_device(rng.standard_normal(shape), "float32")
            out.append((f"{backend} {form} {'x'.join(map(str, shape))}", adapter.build(form, x, "ieee").fn))
    return out


def time_suite(fn: Callable[[], Any]) -> float:
    return Timer(fn, lambda _: None, TimerConfig(budget_s=1.0)).measure().median


def time_timeit(fn: Callable[[], Any]) -> float:
    t = timeit.Timer(fn)
    number, _ = t.autorange()
    return statistics.median(s / number for s in t.repeat(repeat=7, number=number))


def torch_threads() -> int | None:
    try:
        import torch
    except ImportError:
        return None
    return int(torch.get_num_threads())


def time_torch(fn: Callable[[], Any], threads: int | None) -> float | None:
    """``torch.utils.benchmark`` on ``threads`` threads (its default would be one)."""
    if threads is None:
        return None
    from torch.utils.benchmark import Timer as TorchTimer

    timer = TorchTimer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
    return float(timer.blocked_autorange(min_run_time=1.0).median)


def _spread(values: list[float]) -> float:
    """(max - min) / median of one timer's rounds: how much it disagrees with itself."""
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2:
        return math.nan
    return (max(finite) - min(finite)) / statistics.median(finite)


def diagnose(worst: float, self_spread: float, one_thread_explains: bool, foreign: float) -> str:
    """Which explains the largest deviation: threads, noise, or neither."""
    if worst <= 0.05:
        return "the timers agree (within 5%)"
    if one_thread_explains:
        return "threads: the odd timer matches the one-thread figure; the timers ran on different thread counts"
    if worst <= self_spread or foreign >= 0.25:
        busy = f"; the machine was busy (foreign load {foreign:.2f} cores)" if foreign >= 0.25 else ""
        return (
            f"noise: the timers disagree by no more than each one disagrees with itself between rounds "
            f"(up to {self_spread:.0%}){busy}; re-run on a quiet machine with more --repeat"
        )
    return "neither threads nor noise: a real disagreement between the timers; investigate"


def main(repeat: int = 3) -> int:
    from suite.contention import CpuMonitor

    threads = torch_threads()
    monitor = None
    try:
        monitor = CpuMonitor(threads or 1)
        monitor.start()
    except Exception:  # no psutil: the diagnosis goes without the machine's load
        monitor = None
    overhead = measure_overhead()
    print(
        f"suite overhead per call (empty function): median {format_seconds(overhead.median)}, "
        f"{overhead.calls_per_sample} calls per sample"
    )
    print(f"torch threads for every timer: {threads if threads is not None else 'torch not installed'}")
    found = kernels()
    results: dict[str, dict[str, list[float]]] = {
        name: {"suite": [], "timeit": [], "torch": [], "torch@1": []} for name, _ in found
    }
    for r in range(repeat):
        for name, fn in found:
            order = TIMERS[r % 3 :] + TIMERS[: r % 3]
            for which in order:
                if which == "suite":
                    results[name]["suite"].append(time_suite(fn))
                elif which == "timeit":
                    results[name]["timeit"].append(time_timeit(fn))
                elif (t := time_torch(fn, threads)) is not None:
                    results[name]["torch"].append(t)
            if name.startswith("torch") and threads not in (None, 1) and (t1 := time_torch(fn, 1)) is not None:
                results[name]["torch@1"].append(t1)
    foreign = monitor.stop().foreign if monitor is not None else math.nan
    header = f"{'kernel':<24} {'suite':>10} {'timeit':>10} {'torch':>10} {'torch@1thr':>11}"
    print(f"\n{header} {'suite/timeit':>13} {'suite/torch':>12} {'self-spread':>12}")
    worst, worst_name, self_spread, explains = 0.0, "", 0.0, False
    for name, by in results.items():
        med = {k: statistics.median(v) if v else math.nan for k, v in by.items()}
        r_timeit = med["suite"] / med["timeit"]
        r_torch = med["suite"] / med["torch"]
        spread = max((s for k in TIMERS if math.isfinite(s := _spread(by[k]))), default=math.nan)
        dev = max(abs(r_timeit - 1), abs(r_torch - 1) if math.isfinite(r_torch) else 0.0)
        if dev > worst:
            worst, worst_name, self_spread = dev, name, spread
            # The odd timer out sits within 5% of the one-thread figure while the others do not.
            one = med["torch@1"]
            explains = bool(
                math.isfinite(one)
                and any(abs(med[k] / one - 1) <= 0.05 for k in TIMERS)
                and not all(abs(med[k] / one - 1) <= 0.05 for k in TIMERS)
            )
        print(
            f"{name:<24} {format_seconds(med['suite']):>10} {format_seconds(med['timeit']):>10} "
            f"{format_seconds(med['torch']):>10} {format_seconds(med['torch@1']):>11} "
            f"{r_timeit:>13.3f} {r_torch:>12.3f} {spread:>12.1%}"
        )
    print(
        f"\nlargest deviation from a peer: {worst:.1%} ({worst_name}; medians of {repeat} interleaved rounds); "
        f"foreign load while measuring: {foreign:.2f} cores"
    )
    print(f"diagnosis: {diagnose(worst, self_spread, explains, foreign)}")
    return 0
