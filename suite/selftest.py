"""The harness measured against its peers, on what users run: ``python -m suite selftest``.

For the forms and sizes of the default sweep (``KERNELS``: NumPy and torch ``cumsum``
and ``matrix`` at 8 x {8, 128, 1024} x 256, torch ``matrix`` 8x1024x256 among them)
it times each kernel with the suite's ``Timer`` and with three peers, on one thread
count for all: ``timeit``, ``torch.utils.benchmark`` (``blocked_autorange``, told
the thread count: its default is one thread) and pyperf (``suite.pyperf_timer``:
its own worker processes, the threads pinned through their environment). It prints
one table, the median of each and the largest disagreement of a peer with the suite,
and writes the same table to ``--out`` when asked. This is a benchmark, not a test:
its figures go into the README from a quiet machine.

Timers are injectable (``measure(timers=...)``), so the table's making is tested
without timing anything. torch and pyperf are imported only when their timer runs.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import timeit
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from backends import get_backend
from suite.format import format_seconds, markdown_table
from suite.timing import Timer, TimerConfig

Shape = tuple[int, int, int]
#: (backend, form, shape): the default sweep's forms at three of its sizes (B = 8, C = 256).
KERNELS: tuple[tuple[str, str, Shape], ...] = tuple(
    (backend, form, (8, t, 256))
    for backend in ("numpy", "torch")
    for form in ("cumsum", "matrix")
    for t in (8, 128, 1024)
)
#: The table's timer columns, in order.
TIMERS = ("suite", "timeit", "torch.utils.benchmark", "pyperf")
#: Seconds of sampling each in-process timer gets per kernel.
BUDGET_S = 1.0


@dataclass(frozen=True)
class Kernel:
    """One kernel of the selftest: what it is, and the zero-argument call the timers run."""

    backend: str
    form: str
    shape: Shape
    fn: Callable[[], Any] = field(compare=False, repr=False)

    @property
    def name(self) -> str:
        return f"{self.backend} {self.form} {'x'.join(map(str, self.shape))}"


#: A timer: (kernel, threads) -> median seconds per call, or None where it cannot run.
TimerFn = Callable[[Kernel, int], float | None]


def set_threads(threads: int) -> None:
    """Size torch's and the BLAS thread pools of this process to ``threads`` (torch only where imported)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


def build_kernel(backend: str, form: str, shape: Shape, threads: int) -> Callable[[], Any]:
    """The kernel's call as the sweep builds it (seeded float32 input, IEEE precision), on ``threads``.

    Also the setup pyperf's workers run (``suite.pyperf_timer``).
    """
    set_threads(threads)
    adapter = get_backend(backend, "cpu")
    x = adapter.to_device(np.random.default_rng(0).standard_normal(shape), "float32")
    return adapter.build(form, x, "ieee").fn


def kernels(threads: int, specs: Sequence[tuple[str, str, Shape]] = KERNELS) -> list[Kernel]:
    """The kernels whose backend is installed."""
    out = []
    for backend, form, shape in specs:
        if get_backend(backend, "cpu").availability().ok:
            out.append(Kernel(backend, form, shape, build_kernel(backend, form, shape, threads)))
    return out


def time_suite(k: Kernel, threads: int) -> float | None:
    return Timer(k.fn, lambda _: None, TimerConfig(budget_s=BUDGET_S)).measure().median


def time_timeit(k: Kernel, threads: int) -> float | None:
    t = timeit.Timer(k.fn)
    number, _ = t.autorange()
    return statistics.median(s / number for s in t.repeat(repeat=7, number=number))


def time_torch(k: Kernel, threads: int) -> float | None:
    """``torch.utils.benchmark`` on ``threads`` threads; None without torch."""
    try:
        from torch.utils.benchmark import Timer as TorchTimer
    except ImportError:
        return None
    timer = TorchTimer(stmt="fn()", globals={"fn": k.fn}, num_threads=threads)
    return float(timer.blocked_autorange(min_run_time=BUDGET_S).median)


def time_pyperf(k: Kernel, threads: int) -> float | None:
    """pyperf's median in its own worker processes; None (with a one-line note) when it cannot run."""
    from suite.pyperf_timer import PyperfUnavailable, pyperf_median

    setup = (
        f"from suite.selftest import build_kernel; fn = build_kernel({k.backend!r}, {k.form!r}, {k.shape!r}, {threads})"
    )
    try:
        return pyperf_median(setup, "fn()", threads)
    except PyperfUnavailable as e:
        print(f"selftest: {k.name}: {e}", file=sys.stderr)
        return None


DEFAULT_TIMERS: Mapping[str, TimerFn] = {
    "suite": time_suite,
    "timeit": time_timeit,
    "torch.utils.benchmark": time_torch,
    "pyperf": time_pyperf,
}


@dataclass
class KernelTimes:
    """One line of the table: a kernel's median under each timer (NaN where it did not run)."""

    name: str
    medians: dict[str, float]

    @property
    def disagreement(self) -> float:
        """The largest ``|peer / suite - 1|`` over the peers that ran; NaN without the suite or a peer."""
        base = self.medians.get("suite", math.nan)
        peers = [v for k, v in self.medians.items() if k != "suite" and math.isfinite(v)]
        if not (base > 0) or not peers:
            return math.nan
        return max(abs(v / base - 1) for v in peers)


def measure(found: Sequence[Kernel], threads: int, timers: Mapping[str, TimerFn] = DEFAULT_TIMERS) -> list[KernelTimes]:
    """Each kernel under each timer, one after the other; a timer that cannot run leaves NaN."""
    out = []
    for k in found:
        medians = {}
        for name in TIMERS:
            fn = timers.get(name)
            value = fn(k, threads) if fn is not None else None
            medians[name] = math.nan if value is None else float(value)
        out.append(KernelTimes(k.name, medians))
    return out


def table(results: Sequence[KernelTimes]) -> list[str]:
    """The selftest's one table: kernel, each timer's median, the largest disagreement with the suite."""
    body = [
        [
            r.name,
            *(format_seconds(r.medians.get(t, math.nan)) for t in TIMERS),
            "-" if math.isnan(r.disagreement) else f"{r.disagreement:.1%}",
        ]
        for r in results
    ]
    return markdown_table(["kernel", *(f"{t} median" for t in TIMERS), "max disagreement"], body)


def main(out: Path | None = None, threads: int | None = None, timers: Mapping[str, TimerFn] = DEFAULT_TIMERS) -> int:
    """Measure, print the table (and write it to ``out``); 0, or 1 when no kernel could be built."""
    threads = threads or os.cpu_count() or 1
    set_threads(threads)
    found = kernels(threads)
    if not found:
        print("selftest: no kernel could be built (is numpy importable?)")
        return 1
    header = (
        f"Each timer's median per call on {threads} threads; max disagreement: the largest |peer / suite - 1|. "
        "pyperf ran in its own worker processes."
    )
    lines = [header, "", *table(measure(found, threads, timers))]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out}")
    return 0
