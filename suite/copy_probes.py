"""The copy probes behind the host's memory ceiling: one-pass read-and-write loops.

A ceiling must be an upper bound: no form that reads its input once and writes its
output once may move bytes faster than the best copy the machine does. A single
probe is not that (``np.copyto`` on one thread lost to Numba's parallel ``cumsum``
by 9% at 8x4096x1024, issue 22), so the ceiling is the best of several
(``suite.ceilings.host_copy``):

- ``numpy``: ``np.copyto`` on one thread;
- ``numpy-split``: ``np.copyto`` over ``threads`` slices in a thread pool (NumPy
  releases the GIL while it copies);
- ``numba-prange``: a compiled copy loop over ``threads`` Numba threads, the same
  machinery as Numba's ``cumsum[parallel]`` (only where numba is installed; lazy).

Non-temporal (streaming) stores would beat all three on some machines, since they
skip reading the destination into the cache; no installed library offers them from
Python (NumPy does not expose them, Numba has no intrinsic for them, torch's
``copy_`` uses ordinary stores), so none is probed (results/tuning/ceilings.md).

Each probe takes the destination, the source and the thread count, and returns
its best seconds for one copy, or None when it cannot run here.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

import numpy as np

from backends._common import best_seconds

CopyProbe = Callable[[np.ndarray, np.ndarray, int], float | None]
#: Each probe's copy is the best of at least this many calls over ``MIN_TIME_S`` or more.
REPEATS = 5
#: Seconds each probe keeps timing at the least, so that thread pools are awake
#: (why, measured: results/tuning/ceilings.md).
MIN_TIME_S = 0.1


def numpy_copy(dst: np.ndarray, src: np.ndarray, threads: int) -> float | None:
    """``np.copyto`` on one thread."""
    return best_seconds(lambda: np.copyto(dst, src), REPEATS, MIN_TIME_S)


def numpy_split_copy(dst: np.ndarray, src: np.ndarray, threads: int) -> float | None:
    """``np.copyto`` over ``threads`` slices at once; None on one thread (that is ``numpy_copy``)."""
    if threads < 2:
        return None
    edges = np.linspace(0, src.size, threads + 1).astype(int)
    parts = [slice(int(a), int(b)) for a, b in itertools.pairwise(edges)]
    with ThreadPoolExecutor(threads) as pool:

        def split_copy() -> None:
            for _ in pool.map(lambda s: np.copyto(dst[s], src[s]), parts):
                pass

        return best_seconds(split_copy, REPEATS, MIN_TIME_S)


@cache
def parallel_copy_kernel() -> Any:
    """The compiled ``prange`` copy of flat arrays, ``kernel(dst, src)``; made once per process."""
    import numba
    from numba import prange

    def copy(dst: Any, src: Any) -> None:
        for i in prange(src.size):
            dst[i] = src[i]

    return numba.njit(parallel=True)(copy)


def numba_parallel_copy(dst: np.ndarray, src: np.ndarray, threads: int) -> float | None:
    """A Numba ``prange`` copy on ``threads`` threads; None without numba."""
    try:
        import numba
    except ImportError:
        return None
    kernel = parallel_copy_kernel()
    before = numba.get_num_threads()
    # The pool's size is fixed at import (NUMBA_NUM_THREADS); ask for no more.
    numba.set_num_threads(max(1, min(threads, int(vars(numba.config)["NUMBA_NUM_THREADS"]))))
    try:
        return best_seconds(lambda: kernel(dst, src), REPEATS, MIN_TIME_S)
    finally:
        numba.set_num_threads(before)


#: Every probe of the copy ceiling, by name; the fastest sets it.
COPY_PROBES: Mapping[str, CopyProbe] = {
    "numpy": numpy_copy,
    "numpy-split": numpy_split_copy,
    "numba-prange": numba_parallel_copy,
}
