"""A test-only backend for the fleet tests, registered as a plugin in every Ray worker.

``CAUSAL_BENCH_BACKENDS=tests.fleet_backends:SpanBackend`` adds ``spans``: NumPy's
forms, whose build sleeps ``FLEET_DELAY_S`` and appends ``start KEY TIME PID``
and ``end KEY TIME PID`` lines to the file ``FLEET_SPANS`` around the sleep. The
lines say, independently of the runner, which cases ran when (the fleet tests
check that no two overlap on one node) and which ran at all (what a resume re-ran).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from backends.base import Built
from backends.numpy_backend import NumpyBackend

PLUGIN = "tests.fleet_backends:SpanBackend"


class SpanBackend(NumpyBackend):
    name = "spans"
    #: Its hooks wrap ``build``: it runs the idioms only, no variant.
    form_variants: ClassVar[Mapping[str, Mapping[str, Callable[..., Any]]]] = {}

    def build(self, form: str, x: Any, precision: str) -> Built:
        B, T, C = x.shape
        key = f"{form}:{B}x{T}x{C}"
        log = os.environ.get("FLEET_SPANS")
        if log:
            with open(log, "a") as f:
                f.write(f"start {key} {time.time():.6f} {os.getpid()}\n")
        time.sleep(float(os.environ.get("FLEET_DELAY_S", "0")))
        if log:
            with open(log, "a") as f:
                f.write(f"end {key} {time.time():.6f} {os.getpid()}\n")
        return super().build(form, x, precision)
