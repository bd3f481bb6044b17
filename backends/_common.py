"""Helpers the adapters share: host-array plumbing, compile timing and models, cache sizing."""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backends.base import Availability, Backend


@dataclass
class CompileModel:
    """A fitted model of compile seconds against the number of unrolled steps.

    ``seconds = a * steps ** k`` fitted in log-log space by least squares on the
    compile times actually measured in this process; ``k`` is floored at 1 because
    unrolled graphs never compile faster than linearly in their length.
    """

    points: list[tuple[int, float]] = field(default_factory=list)
    #: How many of ``points`` were measured by an earlier process and kept (``backends._probes``).
    kept: int = 0

    def add(self, steps: int, seconds: float) -> None:
        self.points.append((steps, seconds))

    def distinct_steps(self) -> int:
        return len({s for s, _ in self.points})

    def fit(self) -> tuple[float, float]:
        """Return (a, k) for ``seconds = a * steps**k``."""
        pts = [(s, t) for s, t in self.points if s > 0 and t > 0]
        if len({s for s, _ in pts}) < 2:
            raise ValueError("need compile times at two or more sizes to fit")
        logs = np.log(np.array([s for s, _ in pts], dtype=float))
        logt = np.log(np.array([t for _, t in pts], dtype=float))
        k, log_a = np.polyfit(logs, logt, 1)
        k = max(float(k), 1.0)
        # Refit the intercept with the floored slope so the line still passes the data.
        log_a = float(np.mean(logt - k * logs))
        return float(np.exp(log_a)), k

    def predict(self, steps: int) -> float:
        a, k = self.fit()
        return float(a * steps**k)

    def describe(self) -> str:
        a, k = self.fit()
        n = len(self.points)
        kept = f", {self.kept} kept from an earlier process" if self.kept else ""
        return f"fit {a:.3g} s * steps^{k:.2f} from {n} measured compiles{kept}"


def forms_table(*functions: Callable[..., Any]) -> dict[str, Callable[..., Any]]:
    """A ``Backend.forms`` table of functions named after the forms they compute."""
    return {fn.__name__: fn for fn in functions}


#: What libkineto (torch's profiler) prints on the C stderr each time a profiler starts
#: and stops, whatever ``KINETO_LOG_LEVEL`` says: ``USDT:... SyncActivityProfilerHandler.cpp:52] profiler_start``.
KINETO_LINE = re.compile(r"^(USDT|STAGE):\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \d+:\d+ \S+\.cpp:\d+\] ")


@contextmanager
def kineto_quiet() -> Iterator[None]:
    """Run the block with libkineto's start and stop lines dropped from stderr; every other line passes.

    A sweep profiles torch.compile's attention calls to learn which kernel ran, and
    each profile printed two such lines into ``nox -s bench``'s output.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            for line in caught.read().decode(errors="replace").splitlines(keepends=True):
                if not KINETO_LINE.match(line):
                    sys.stderr.write(line)
            sys.stderr.flush()


def timed_first_call(fn: Callable[[], Any], sync: Callable[[Any], None]) -> tuple[Any, float]:
    """Run ``fn`` once, wait for it, and return (result, seconds)."""
    t0 = time.perf_counter()
    out = fn()
    sync(out)
    return out, time.perf_counter() - t0


def best_seconds(fn: Callable[[], Any], repeats: int, min_time: float = 0.0) -> float:
    """Fastest timed call after one untimed warm-up: at least ``repeats`` calls and ``min_time`` seconds.

    ``fn`` must return only when its work is done (wait for the device inside it).
    """
    fn()
    best = float("inf")
    calls, start = 0, time.perf_counter()
    while calls < repeats or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        calls += 1
    return best


def flush_bytes(cache_bytes: int) -> int:
    """Bytes to write so that nothing a call left in a cache of ``cache_bytes`` survives.

    Twice the cache (replacement is not strictly LRU), and at least 1 MiB for a
    device that reports no cache size. ``triton.testing.do_bench`` writes 256 MB
    whatever the device; sizing by the cache keeps the flush itself short.
    """
    return max(2 * cache_bytes, 1 << 20)


def named_threads(prefix: str) -> int:
    """Threads of this process whose name starts with ``prefix`` (0 where /proc cannot be read)."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 0
    count = 0
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                count += f.read().startswith(prefix)
        except OSError:  # the thread ended meanwhile
            continue
    return count


def numpy_input_dtype(dtype: str) -> np.dtype[Any]:
    """The NumPy dtype an input travels as before the adapter casts it on device."""
    # bfloat16 travels as float32 and is rounded on the device.
    return np.dtype("float32" if dtype == "bfloat16" else dtype)


class HostBackend(Backend):
    """An adapter that computes on the host with NumPy arrays in and out.

    Its calls return when the work is done, so there is nothing to wait for.
    """

    def _device_availability(self) -> Availability:
        if self.requested_device == "gpu":
            return Availability(False, f"{self.name} runs on the CPU only")
        return Availability(True)

    def device(self) -> str:
        return "cpu"

    def to_device(self, x: np.ndarray, dtype: str) -> np.ndarray:
        return np.ascontiguousarray(x, dtype=numpy_input_dtype(dtype))

    def to_numpy(self, y: Any) -> np.ndarray:
        return np.asarray(y, dtype=np.float64)

    def sync(self, result: Any) -> None:
        return None
