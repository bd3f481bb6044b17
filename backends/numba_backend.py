"""Numba adapter: the forms as compiled CPU loops.

Each form's idiom is what a Numba user writes first: a plain ``@njit`` loop,
serial. Spreading the work over threads (``prange`` under ``parallel=True``) is
tuning beyond that, so it is the ``parallel`` variant of each form
(``form_variants``; names are promises):

- ``cumsum``: one pass over x, for each row b walking T once, the running sums of
  the columns carried in float64 (``np.zeros(C)``'s own dtype, so float32 input
  keeps full accuracy under a large common offset) and the mean written at once.
  ``cumsum[parallel]`` is the same pass tiled for threads: each task owns one row
  b (a C-tile of it when B is smaller than the thread count), on unit-stride row
  views that vectorise. It is the form that can reach the memory roofline on a CPU.
- ``loop``: the notebook's double loop, compiled: for every (b, t) the mean of
  x[b, :t+1] recomputed from scratch, O(B T^2 C). It shows what compiling the
  Python loop buys without changing the algorithm (the form's cost model counts
  exactly this work). ``loop[parallel]`` runs the rows b in parallel.

Matmul forms belong to BLAS-backed backends and the chunked form is a way to
vectorise a scan that a compiled loop does not need; they are reported as
skipped with that reason.

The first call of a compiled function compiles it for the input's dtype; that
first call is timed into ``Built.compile_s``. A later case of the same process
with the same argument types compiles nothing: its ``compile_s`` is NaN and
its reason says so (``CACHED_NOTE``). Threads are numba's own pool
(``numba.set_num_threads``); the serial idioms use one.
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

#: Each kernel's numba dispatcher by ``form`` or ``form[variant]``, once made: its
#: ``signatures`` say what it has compiled.
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
    """The ``cumsum`` idiom, ``kernel(x, out)``: a plain serial ``@njit`` loop; made once per process."""

    def running_mean(x: Any, out: Any) -> None:
        B, T, C = x.shape
        for b in range(B):
            acc = np.zeros(C)
            for t in range(T):
                for c in range(C):
                    acc[c] += x[b, t, c]
                    out[b, t, c] = acc[c] / (t + 1)

    compiled: Kernel = _njit(running_mean, parallel=False)
    DISPATCHERS["cumsum"] = compiled
    return compiled


@cache
def tiled_running_mean_kernel() -> Kernel:
    """The ``cumsum[parallel]`` variant's tiled one-pass loop, ``kernel(x, out)``; made once per process."""
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

    compiled = _njit(running_mean, parallel=True)
    DISPATCHERS["cumsum[parallel]"] = compiled
    return lambda x, out: compiled(x, out, column_tile(x.shape[0], x.shape[2], numba.get_num_threads()))


def double_loop_kernel() -> Kernel:
    """The ``loop`` idiom, ``kernel(x, out)``: the double loop, serial."""
    return _double_loop(parallel=False)


def parallel_double_loop_kernel() -> Kernel:
    """The ``loop[parallel]`` variant, ``kernel(x, out)``: the double loop, rows b on threads."""
    return _double_loop(parallel=True)


@cache
def _double_loop(parallel: bool) -> Kernel:
    """The double loop compiled once per process and mode; ``prange`` is ``range`` when not parallel."""
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

    compiled: Kernel = _njit(double_loop, parallel=parallel)
    DISPATCHERS["loop[parallel]" if parallel else "loop"] = compiled
    return compiled


def _njit(fn: Callable[..., None], parallel: bool) -> Any:
    """A compile-on-first-call dispatcher of ``fn``.

    njit called, not used as a decorator: without numba installed mypy would see an
    untyped decorator. parallel=True turns prange into threads; no on-disk cache, so
    the first call of a process compiles and the build can time it.
    """
    import numba

    return numba.njit(parallel=parallel, cache=False)(fn)


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
    #: The same makers for the threaded variants (``prange``).
    form_variants: ClassVar[Mapping[str, Mapping[str, Callable[..., Any]]]] = {
        "cumsum": {"parallel": tiled_running_mean_kernel},
        "loop": {"parallel": parallel_double_loop_kernel},
    }

    def versions(self) -> dict[str, str]:
        from importlib.metadata import version

        return {"numba": version("numba"), "llvmlite": version("llvmlite")}

    def supports(self, form: str, dtype: str, precision: str) -> str | None:
        if dtype not in ("float32", "float64"):
            return f"the numba backend compiles float32 and float64 loops, not {dtype}"
        return super().supports(form, dtype, precision)

    def _build(self, form: str, x: Any, precision: str) -> Built:
        return self._compiled(form, self.forms[form], x)

    def _build_variant(self, form: str, x: Any, precision: str, variant: str) -> Built:
        return self._compiled(f"{form}[{variant}]", self.form_variants[form][variant], x)

    def _compiled(self, name: str, maker: Callable[[], Kernel], x: Any) -> Built:
        """``maker``'s kernel on ``x`` into one reused buffer; its first call compiles (``DISPATCHERS[name]``)."""
        kernel = maker()
        # One output buffer for every call, as torch's caching allocator gives. A fresh
        # array per call is mmap'd memory whose first touch page-faults: at 8x4096x1024
        # 45 ms a call against 17.5 ms into a reused buffer (results/cpu-roofline/README.md).
        out: np.ndarray = np.empty_like(x)

        def call() -> np.ndarray:
            kernel(x, out)
            return out

        compiled_before = len(DISPATCHERS[name].signatures)
        _, seconds = timed_first_call(call, self.sync)
        if len(DISPATCHERS[name].signatures) == compiled_before:
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
