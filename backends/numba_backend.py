"""Numba adapter: the forms as compiled CPU loops (``@njit(parallel=True)``).

Two forms are loops by nature and compile to what a C programmer would write:

- ``cumsum``: one pass over x. Each task owns one row b (a C-tile of it when B
  is smaller than the thread count); it walks T once, carries the running sums
  of its columns in float64 (so float32 input keeps full accuracy under the
  large common offset), and writes the mean at once: the division is fused into
  the pass. Tasks run in parallel (``prange``); the columns are contiguous in
  memory and vectorise. This is the form that can reach the memory roofline on
  a CPU.
- ``loop``: the notebook's double loop, compiled: for every (b, t) the mean of
  x[b, :t+1] recomputed from scratch, O(B T^2 C), parallel over b. It shows what
  compiling the Python loop buys without changing the algorithm (the form's
  cost model counts exactly this work).

Matmul forms belong to BLAS-backed backends and the chunked form is a way to
vectorise a scan that a compiled loop does not need; they are reported as
skipped with that reason.

The first call of a compiled function compiles it for the input's dtype; that
first call is timed into ``Built.compile_s``. A later case of the same process
with the same argument types compiles nothing: its ``compile_s`` is NaN and
its reason says so (``CACHED_NOTE``). Threads are numba's own pool
(``numba.set_num_threads``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, ClassVar

import numpy as np

from backends._common import HostBackend, timed_first_call
from backends.base import Built

Kernel = Callable[[np.ndarray, np.ndarray], None]

#: Each form's numba dispatcher, once made: its ``signatures`` say what it has compiled.
DISPATCHERS: dict[str, Any] = {}
#: The reason of a row whose build compiled nothing (``compile_s`` is NaN).
CACHED_NOTE = "compile_s: cached (numba compiled this kernel for these argument types earlier in this process)"

#: Fewest columns a task of the one-pass loop takes when rows are split.
MIN_TILE = 16


def column_tile(B: int, C: int, threads: int) -> int:
    """Columns per task of the one-pass loop: whole rows unless B leaves threads idle.

    A task that owns whole rows streams x[b] and out[b] front to back, which the
    prefetchers like best (measured: results/tuning/numba_column_tile.md). When B
    is smaller than the thread count the rows are split so every thread has work.
    """
    splits = max(1, min(-(-threads // B), C // MIN_TILE))
    return -(-C // splits)


@cache
def running_mean_kernel() -> Kernel:
    """The ``cumsum`` form's one-pass loop, ``kernel(x, out)``; made once per process."""
    import numba
    from numba import prange

    def running_mean(x: Any, out: Any, tile: int) -> None:
        B, T, C = x.shape
        tiles = (C + tile - 1) // tile
        for task in prange(B * tiles):
            b = task // tiles
            c0 = (task % tiles) * tile
            n = min(c0 + tile, C) - c0
            acc = np.zeros(n, dtype=np.float64)
            xb = x[b]
            ob = out[b]
            for t in range(T):
                inv = 1.0 / (t + 1)
                # Row slices, not x[b, t, c]: numba then sees unit-stride views and
                # vectorises the column loop (the speed-up was not kept in results/).
                xrow = xb[t, c0 : c0 + n]
                orow = ob[t, c0 : c0 + n]
                for c in range(n):
                    a = acc[c] + xrow[c]
                    acc[c] = a
                    orow[c] = a * inv

    compiled = _njit(running_mean)
    DISPATCHERS["cumsum"] = compiled
    return lambda x, out: compiled(x, out, column_tile(x.shape[0], x.shape[2], numba.get_num_threads()))


@cache
def double_loop_kernel() -> Kernel:
    """The ``loop`` form's double loop, ``kernel(x, out)``; made once per process."""
    from numba import prange

    def double_loop(x: Any, out: Any) -> None:
        B, T, C = x.shape
        for b in prange(B):
            acc = np.empty(C, dtype=np.float64)
            xb = x[b]
            ob = out[b]
            for t in range(T):
                acc[:] = 0.0
                for s in range(t + 1):
                    xrow = xb[s]
                    for c in range(C):
                        acc[c] += xrow[c]
                orow = ob[t]
                for c in range(C):
                    orow[c] = acc[c] / (t + 1)

    compiled: Kernel = _njit(double_loop)
    DISPATCHERS["loop"] = compiled
    return compiled


def _njit(fn: Callable[..., None]) -> Any:
    """A compile-on-first-call dispatcher of ``fn``.

    njit called, not used as a decorator: without numba installed mypy would see an
    untyped decorator. parallel=True turns prange into threads; no on-disk cache, so
    the first call of a process compiles and the build can time it.
    """
    import numba

    return numba.njit(parallel=True, cache=False)(fn)


class NumbaBackend(HostBackend):
    name = "numba"
    module = "numba"
    extra = "numba"
    unimplemented_forms: ClassVar[Mapping[str, str]] = {
        "matrix": "matmul forms are left to the BLAS-backed backends",
        "softmax": "matmul forms are left to the BLAS-backed backends",
        "chunked": "blocking is how array libraries vectorise a scan; the compiled cumsum loop needs none",
        "attention": "the fused attention kernels are torch's and JAX's",
    }
    #: Each form's kernel maker: ``maker()(x, out)`` computes the form into ``out``.
    forms: ClassVar[Mapping[str, Callable[..., Any]]] = {"cumsum": running_mean_kernel, "loop": double_loop_kernel}

    def versions(self) -> dict[str, str]:
        from importlib.metadata import version

        return {"numba": version("numba"), "llvmlite": version("llvmlite")}

    def supports(self, form: str, dtype: str, precision: str) -> str | None:
        if dtype not in ("float32", "float64"):
            return f"the numba backend compiles float32 and float64 loops, not {dtype}"
        return super().supports(form, dtype, precision)

    def _build(self, form: str, x: Any, precision: str) -> Built:
        kernel = self.forms[form]()
        # One output buffer for every call, as torch's caching allocator gives. A fresh
        # array per call is mmap'd memory whose first touch page-faults: at 8x4096x1024
        # 45 ms a call against 17.5 ms into a reused buffer (results/cpu-roofline/README.md).
        out: np.ndarray = np.empty_like(x)

        def call() -> np.ndarray:
            kernel(x, out)
            return out

        compiled_before = len(DISPATCHERS[form].signatures)
        _, seconds = timed_first_call(call, self.sync)
        if len(DISPATCHERS[form].signatures) == compiled_before:
            # The dispatcher already held this signature: the first call was a plain call.
            return Built(call, compile_s=math.nan, notes=CACHED_NOTE)
        return Built(call, compile_s=seconds)

    def set_threads(self, n: int | None) -> int | None:
        import numba

        if n is not None:
            # The pool's size is fixed at import (NUMBA_NUM_THREADS); ask for no more.
            numba.set_num_threads(min(n, int(vars(numba.config)["NUMBA_NUM_THREADS"])))
        return int(numba.get_num_threads())

    def thread_pools(self) -> dict[str, int]:
        import numba

        return {"numba": int(numba.get_num_threads())}
