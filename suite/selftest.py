"""The harness measured against its peers: ``python -m suite selftest``.

On the same kernels, in one process and interleaved round by round (so machine
drift hits every timer alike), compare the suite's median with ``timeit`` and
with ``torch.utils.benchmark.Timer.blocked_autorange``; and measure the suite's
own per-call overhead on an empty function. This is a benchmark, not a test: it
prints ratios, and their figures go into the README.
"""

from __future__ import annotations

import statistics
import timeit
from collections.abc import Callable
from typing import Any

import numpy as np

from backends import get_backend
from suite.format import format_seconds
from suite.timing import Timer, TimerConfig, measure_overhead

Kernel = tuple[str, Callable[[], Any]]


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


def time_torch(fn: Callable[[], Any]) -> float | None:
    try:
        import torch
        from torch.utils.benchmark import Timer as TorchTimer
    except ImportError:
        return None
    # torch's Timer runs on one thread unless told otherwise; match the other timers.
    timer = TorchTimer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return float(timer.blocked_autorange(min_run_time=1.0).median)


def main(repeat: int = 3) -> int:
    overhead = measure_overhead()
    print(
        f"suite overhead per call (empty function): median {format_seconds(overhead.median)}, "
        f"{overhead.calls_per_sample} calls per sample"
    )
    found = kernels()
    results: dict[str, dict[str, list[float]]] = {name: {"suite": [], "timeit": [], "torch": []} for name, _ in found}
    for _ in range(repeat):
        for name, fn in found:
            results[name]["suite"].append(time_suite(fn))
            results[name]["timeit"].append(time_timeit(fn))
            t = time_torch(fn)
            if t is not None:
                results[name]["torch"].append(t)
    print(f"\n{'kernel':<24} {'suite':>10} {'timeit':>10} {'torch':>10} {'suite/timeit':>13} {'suite/torch':>12}")
    worst = 0.0
    for name, by in results.items():
        med = {k: statistics.median(v) if v else float("nan") for k, v in by.items()}
        r_timeit = med["suite"] / med["timeit"]
        r_torch = med["suite"] / med["torch"]
        worst = max(worst, abs(r_timeit - 1), abs(r_torch - 1) if r_torch == r_torch else 0.0)
        print(
            f"{name:<24} {format_seconds(med['suite']):>10} {format_seconds(med['timeit']):>10} "
            f"{format_seconds(med['torch']):>10} {r_timeit:>13.3f} {r_torch:>12.3f}"
        )
    print(f"\nlargest deviation from a peer: {worst:.1%} (medians of {repeat} interleaved rounds)")
    return 0
