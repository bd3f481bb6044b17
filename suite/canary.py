"""The machine canary: a fixed copy and a fixed matmul, timed between cases, that mark rows ``drifted``.

Contention (``suite.contention``) sees other processes; it does not see the machine
itself slow down (thermal or power limits, a neighbour VM on the same socket, a
frequency governor). The canary does: at run start it times two fixed probes (the
reference), then looks again between cases, in the parent, while no case is being
timed, on the worker's cores (``cpus``: the parent's calling thread moves there for the
look and back), so it sees the machine the cases run on, not the harness's own core.
A row whose looks just before and just after its case were off the reference by more
than the run's drift limit (``--drift-limit``, default ``DRIFT_LIMIT``) on
either probe is ``drifted``; the row stores both ratios (``canary_copy``,
``canary_matmul``: speed now / speed at run start, the look farther from 1).

Probes: a copy of ``COPY_BYTES`` (``np.copyto``) and a float64 ``MATMUL_N`` square
matmul on one BLAS thread, each the best of ``REPEATS`` calls: about 20-30 ms per
look on the project's machine. A look is taken after a case only when
``MIN_INTERVAL_S`` have passed since the last one (cases in between share it), so
the canary costs at most about 1.5% of a sweep, plus about 0.3 s at run start.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from suite.isolation import on_cpus

if TYPE_CHECKING:  # suite.results imports suite.cases, which reads DRIFT_LIMIT here
    from suite.results import Row

#: Speed off its run-start value by more than this fraction (either way) marks a row ``drifted``.
#: Above the probes' own spread on the idle 2-core machine: through one idle sweep the matmul
#: probe read a median 0.92 of its reference, 5% of looks below 0.83 (results/tuning/canary-limit.md).
DRIFT_LIMIT = 0.20
#: Seconds between two looks at the least; the cases in between share the last look.
MIN_INTERVAL_S = 2.0
#: The copy probe's buffer (source; the destination is as large): beyond L2, small enough to be quick.
COPY_BYTES = 16 << 20
#: The matmul probe's side (float64, one thread).
MATMUL_N = 256
#: Each probe's figure is its best of this many calls.
REPEATS = 5
#: The reference is each probe's best over this many looks, after a pause that lets the
#: thread pools of the ceilings just measured fall asleep (spinning BLAS or Numba
#: threads made a first look up to 2x slow in a run on the shared 2-core machine).
REFERENCE_LOOKS = 3
SETTLE_S = 0.2

#: A probe: seconds of one look at it (its best call).
Probe = Callable[[], float]
Clock = Callable[[], float]


def _best_of(fn: Callable[[], object], repeats: int = REPEATS) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def copy_probe(nbytes: int = COPY_BYTES) -> Probe:
    """``np.copyto`` of a fixed buffer; the buffers are made (and faulted in) once."""
    src = np.ones(nbytes // 8, dtype=np.float64)
    dst = np.zeros_like(src)
    return lambda: _best_of(lambda: np.copyto(dst, src))


def matmul_probe(n: int = MATMUL_N) -> Probe:
    """A float64 ``n x n`` matmul on one BLAS thread (threadpoolctl), whatever the run's thread count."""
    from threadpoolctl import ThreadpoolController

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    out = np.empty_like(a)
    controller = ThreadpoolController()

    def look() -> float:
        with controller.limit(limits=1, user_api="blas"):
            return _best_of(lambda: np.matmul(a, b, out=out))

    return look


@dataclass(frozen=True)
class Look:
    """One look at both probes: when, and each probe's seconds."""

    at: float
    copy_s: float
    matmul_s: float


@dataclass(frozen=True)
class Verdict:
    """A case's canary figures: speed ratios to run start (1 = unchanged) and whether they drifted."""

    copy: float
    matmul: float
    drifted: bool


@dataclass
class Canary:
    """The reference look at run start, looks between cases, and the verdict for each case.

    ``probes`` and ``clock`` are injectable (tests give fixed speeds and a fake clock).
    """

    limit: float = DRIFT_LIMIT
    min_interval_s: float = MIN_INTERVAL_S
    copy: Probe | None = None
    matmul: Probe | None = None
    clock: Clock = time.monotonic
    #: The CPUs to look on (the worker's); None: wherever the parent runs.
    cpus: tuple[int, ...] | None = None
    reference: Look | None = None
    last: Look | None = None
    looks: int = 0
    spent_s: float = 0.0

    def _take(self) -> Look:
        if self.copy is None:
            self.copy = copy_probe()
        if self.matmul is None:
            self.matmul = matmul_probe()
        t0 = time.perf_counter()
        with on_cpus(self.cpus):
            look = Look(self.clock(), self.copy(), self.matmul())
        self.spent_s += time.perf_counter() - t0
        self.looks += 1
        self.last = look
        return look

    def start(self, sleep: Callable[[float], None] = time.sleep) -> Look:
        """The reference every look is judged by: each probe's best of ``REFERENCE_LOOKS`` looks.

        One look first warms both probes (buffers faulted in, BLAS loaded) and does not count.
        """
        sleep(SETTLE_S)
        self._take()
        looks = [self._take() for _ in range(REFERENCE_LOOKS)]
        self.looks = 1
        self.reference = Look(looks[-1].at, min(x.copy_s for x in looks), min(x.matmul_s for x in looks))
        self.last = self.reference
        return self.reference

    def look(self) -> Look:
        """A fresh look when ``min_interval_s`` have passed since the last, else the last one."""
        if self.reference is None:
            return self.start()
        assert self.last is not None
        if self.clock() - self.last.at >= self.min_interval_s:
            return self._take()
        return self.last

    def ratios(self, look: Look) -> tuple[float, float]:
        """(copy, matmul) speed of ``look`` as a fraction of the reference's: below 1 is slower."""
        ref = self.reference
        if ref is None:
            return math.nan, math.nan
        return ref.copy_s / look.copy_s, ref.matmul_s / look.matmul_s

    def verdict(self, before: Look, after: Look) -> Verdict:
        """Each probe's ratio (of the two looks, the one farther from 1) and whether one is past the limit."""
        pairs = list(zip(self.ratios(before), self.ratios(after), strict=True))
        copy, matmul = (max(pair, key=lambda r: abs(r - 1) if math.isfinite(r) else -1.0) for pair in pairs)
        drifted = any(abs(r - 1) > self.limit for r in (copy, matmul) if math.isfinite(r))
        return Verdict(copy, matmul, drifted)

    def metadata(self) -> dict[str, Any]:
        """What the run stores in ``meta["canary"]``: the reference, the limit and what the looks cost."""
        ref = self.reference
        return {
            "limit": self.limit,
            "min_interval_s": self.min_interval_s,
            "copy_bytes": COPY_BYTES,
            "matmul_n": MATMUL_N,
            "reference_copy_s": ref.copy_s if ref else None,
            "reference_matmul_s": ref.matmul_s if ref else None,
            "looks": self.looks,
            "spent_s": round(self.spent_s, 3),
        }

    def mark(self, row: Row, before: Look, after: Look) -> None:
        """Give a timed ``row`` the canary's figures for the looks around its case, and a note when drifted."""
        if row.status != "ok":
            return
        v = self.verdict(before, after)
        row.canary_copy, row.canary_matmul, row.drifted = v.copy, v.matmul, v.drifted
        if v.drifted:
            note = f"drifted: canary copy {v.copy:.2f}x, matmul {v.matmul:.2f}x of run start (limit ±{self.limit:.0%})"
            row.reason = "; ".join(filter(None, [row.reason, note]))
