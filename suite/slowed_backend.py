"""A NumPy adapter that does a known extra fraction of work: the gate's test subject.

Registered as a plugin (``CAUSAL_BENCH_BACKENDS=suite.slowed_backend:SlowedNumpy``)
it replaces ``numpy`` under the same name, so its cases keep their keys and
compare against plain runs. ``CAUSAL_BENCH_SLOWDOWN`` (a fraction, default 0)
is read when a case is built: the adapter times the plain kernel there (the
fastest of short blocks of calls) and every call then does the kernel and spins for
that fraction of its time, so a slowdown of 0.10 makes each call 10% slower in
that process. With 0 the call path is the same (the spin returns at once), so a
run at 0 and a run at 0.10 differ in the injected work alone.

Used by ``suite.gatebench``; not registered by default. It imports only NumPy
and the adapter it extends, because the plugin loader imports it while
``backends`` is still initialising.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from backends.base import Built
from backends.numpy_backend import NumpyBackend

PLUGIN = "suite.slowed_backend:SlowedNumpy"
SLOWDOWN_ENV = "CAUSAL_BENCH_SLOWDOWN"


def spin(seconds: float) -> None:
    """Busy-wait ``seconds`` (a sleep would give the core away and oversleep)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def kernel_seconds(fn: Any, min_block_s: float = 2e-3, blocks: int = 7) -> float:
    """Seconds per call of the fastest of ``blocks`` blocks of at least ``min_block_s`` each.

    The fastest block is the kernel with the least interference from neighbours;
    the timed median carries some, so the injected work is at most the nominal
    fraction of what the timer sees (a detection figure is then conservative).
    """
    fn()
    number = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        if time.perf_counter() - t0 >= min_block_s:
            break
        number *= 2
    per_call = []
    for _ in range(blocks):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        per_call.append((time.perf_counter() - t0) / number)
    return float(np.min(per_call))


class SlowedNumpy(NumpyBackend):
    name = "numpy"

    def build(self, form: str, x: Any, precision: str) -> Built:
        built = super().build(form, x, precision)
        fraction = float(os.environ.get(SLOWDOWN_ENV, "0") or 0)
        if fraction < 0:
            raise ValueError(f"{SLOWDOWN_ENV} must be a fraction >= 0, got {fraction}")
        plain = built.fn
        extra = fraction * kernel_seconds(plain) if fraction else 0.0

        def slowed() -> Any:
            out = plain()
            spin(extra)
            return out

        return Built(slowed, built.compile_s, f"{built.notes} slowed by {fraction:.0%}".strip())
