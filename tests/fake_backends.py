"""A test-only backend that misbehaves on request, registered as a plugin.

``CAUSAL_BENCH_BACKENDS=tests.fake_backends:FaultyBackend`` adds it to the
registry in every process, worker processes included. It computes like the NumPy
adapter; environment variables (read when a case is built, so the worker sees
what the test set) make chosen cases fail the way real frameworks do:

- ``FAULTY_KILL_T``: the worker SIGKILLs itself while building a case of this T
  (a segfault or an out-of-memory kill, as far as the parent can tell);
- ``FAULTY_HANG_T``: building a case of this T hangs;
- ``FAULTY_RAISE_T``: building a case of this T raises;
- ``FAULTY_DELAY_S``: every build sleeps this long first (a slow run to interrupt);
- ``FAULTY_LOG``: every build appends ``T`` to this file (who ran what, and how often).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from backends.base import Built
from backends.numpy_backend import NumpyBackend

PLUGIN = "tests.fake_backends:FaultyBackend"


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None


class FaultyBackend(NumpyBackend):
    name = "faulty"

    def build(self, form: str, x: Any, precision: str) -> Built:
        T = x.shape[1]
        if log := os.environ.get("FAULTY_LOG"):
            with open(log, "a") as f:
                f.write(f"{form} {T}\n")
        time.sleep(float(os.environ.get("FAULTY_DELAY_S", "0")))
        if _env_int("FAULTY_KILL_T") == T:
            os.kill(os.getpid(), signal.SIGKILL)
        if _env_int("FAULTY_HANG_T") == T:
            time.sleep(3600)
        if _env_int("FAULTY_RAISE_T") == T:
            raise RuntimeError(f"deliberate failure at T={T}")
        return super().build(form, x, precision)
