"""Does NumPy cumsum's speed depend on where its input lies relative to its output?

``python scripts/aliasing_probe.py`` (from the repository root, nothing else running) builds the
suite's NumPy ``cumsum`` case at 8x32x256 (the adapter and input the suite times) and times it
with its input placed at several offsets within a page, printing one markdown row per offset:
per-call time (median of 30 blocks of 50 calls, pinned to the last core) and the output's
offset from the input modulo 4096. A store that lands a few bytes after a load modulo 4096
("4K aliasing") makes the CPU wait on a false dependency; which offset a process gets depends
on its heap layout, so the same case can run at two speeds in two processes.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backends.numpy_backend import NumpyBackend
from suite.cases import Case, RunOptions
from suite.placement import PAGE, offset_of, place
from suite.runner import case_input


def per_call(fn: Callable[[], object], blocks: int = 30, calls: int = 50) -> float:
    for _ in range(100):
        fn()
    times = []
    for _ in range(blocks):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t) / calls)
    return statistics.median(times)


def main() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[-1]})
    backend = NumpyBackend()
    x = case_input(Case("numpy", "cumsum", 8, 32, 256), RunOptions())
    print(f"load average {os.getloadavg()[0]:.2f}; numpy {np.__version__}")
    print("| input offset in its page | output - input, mod 4096 | per call |")
    print("|---|---|---|")
    offsets = [offset_of(x), 0, 64, 1024, 2048, 3296, 4032]
    for k, off in enumerate(offsets):
        if k == 0:
            placed, label = x, f"{off} (as its process's heap placed it)"
        else:
            placed, label = place(x, off), str(off)
        fn = backend.build("cumsum", placed, "ieee").fn
        out = fn()
        delta = (offset_of(out) - offset_of(placed)) % PAGE
        print(f"| {label} | {delta} | {per_call(fn) * 1e6:.0f} us |")


if __name__ == "__main__":
    main()
