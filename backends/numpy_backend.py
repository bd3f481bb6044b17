"""NumPy adapter: the host baseline every other backend is compared with.

Each form is written with NumPy's ordinary calls; the ``cumsum`` form is
``np.cumsum(x, axis=1)`` divided by (t + 1), as a NumPy user writes it. The
hand-staged row scan that beats it at large B * C is the ``cumsum[staged]``
variant (``form_variants``): a tuned row never stands under the library's name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, ClassVar

import numpy as np

from backends._common import HostBackend, forms_table
from backends.base import Built


def loop(x: np.ndarray) -> np.ndarray:
    """The notebook's double loop: each (b, t) is the mean of x[b, :t+1]."""
    B, T, _ = x.shape
    out = np.empty_like(x)
    for b in range(B):
        for t in range(T):
            out[b, t] = x[b, : t + 1].mean(axis=0)
    return out


def matrix(x: np.ndarray) -> np.ndarray:
    T = x.shape[1]
    wei = np.tril(np.ones((T, T), dtype=x.dtype))
    wei = wei / wei.sum(axis=1, keepdims=True)
    out: np.ndarray = wei @ x
    return out


def softmax(x: np.ndarray) -> np.ndarray:
    T = x.shape[1]
    tril = np.tril(np.ones((T, T), dtype=bool))
    wei = np.where(tril, np.zeros((T, T), dtype=x.dtype), np.array(-np.inf, dtype=x.dtype))
    wei = np.exp(wei - wei.max(axis=-1, keepdims=True))
    wei = wei / wei.sum(axis=-1, keepdims=True)
    out: np.ndarray = wei @ x
    return out


def cumsum(x: np.ndarray) -> np.ndarray:
    """NumPy's idiom: ``np.cumsum`` down T, divided by the count of positions seen."""
    T = x.shape[1]
    out: np.ndarray = np.cumsum(x, axis=1) / np.arange(1, T + 1, dtype=x.dtype).reshape(1, T, 1)
    return out


#: Below this many columns per step (B * C) ``staged_cumsum`` calls ``np.cumsum``: a step of
#: the row scan then costs more in Python than the strided accumulate saves.
ROW_SCAN_MIN_COLUMNS = 256

#: Bytes of x the row scan stages at a time (R positions of T, R = this / (B * C * itemsize)):
#: twice this CPU's L2 cache, within its L3. Chosen by measurement: results/tuning/numpy-row-scan.md.
STAGE_BYTES = 2 * 2**20


def aligned_like(shape: tuple[int, ...], like: np.ndarray) -> np.ndarray:
    """An empty array of ``shape`` and ``like``'s dtype at ``like``'s offset within a 64-byte line.

    NumPy aligns its buffers to 16 bytes only. A copy between two arrays whose
    offsets differ by 16 bytes modulo 32 splits every other vector load or store;
    the row scan's staged copies then cost half as much again (36 against 21 ms at
    8x4096x1024, results/tuning/numpy-row-scan.md).
    """
    itemsize = like.dtype.itemsize
    n = int(np.prod(shape))
    buf = np.empty(n + 64 // itemsize, dtype=like.dtype)
    shift = (like.ctypes.data - buf.ctypes.data) % 64 // itemsize
    return buf[shift : shift + n].reshape(shape)


def staged_cumsum(x: np.ndarray, out: np.ndarray | None = None, stage_bytes: int = STAGE_BYTES) -> np.ndarray:
    """The ``cumsum[staged]`` variant: running sums walked as rows of T, staged R rows at a
    time through a cache-sized scratch.

    ``np.cumsum(x, axis=1)`` runs its inner loop down T with a stride of C elements:
    every element touches a new cache line, 2-3% of copy bandwidth at 8x4096x1024
    (the cProfile trace is one C call; README, "Why is it slow"). Here t walks in
    Python and every ufunc call handles a whole row of (B, C) elements, in three
    steps per block of R positions:

    1. copy ``x[:, t0:t0+R]`` into a (R, B, C) scratch: long contiguous reads from
       memory, and each position's row becomes one contiguous vector;
    2. ``row[i] += row[i-1]`` for i in the block (the first row adds the previous
       block's last sum), on those contiguous rows in cache: one cheap ufunc call each;
    3. multiply the block by 1/(t+1) and copy it out, one call each.

    Step 2 on rows taken straight from x (``x[:, t]``: B rows of C, spaced T*C apart)
    cost twice as much, as the unstaged row scan did: each call walks B short strided
    segments. The additions are ``np.cumsum``'s, in the same order; only the division
    became a multiply by 1/(t+1). ``out`` is reused when given (the adapter keeps one).
    """
    B, T, C = x.shape
    out = aligned_like(x.shape, x) if out is None else out
    inv = (1.0 / np.arange(1, T + 1, dtype=np.float64)).astype(x.dtype).reshape(T, 1, 1)
    if B * C < ROW_SCAN_MIN_COLUMNS:
        np.cumsum(x, axis=1, out=out)
        out *= inv.reshape(1, T, 1)
        return out
    R = max(1, min(T, stage_bytes // (B * C * x.itemsize)))
    scratch = aligned_like((R, B, C), x)
    rows = list(scratch)
    carry = np.zeros((B, C), dtype=x.dtype)
    add, multiply, copyto = np.add, np.multiply, np.copyto
    for t0 in range(0, T, R):
        n = min(R, T - t0)
        block = scratch[:n]
        staged = block.transpose(1, 0, 2)  # (B, n, C): the layout of x and out
        copyto(staged, x[:, t0 : t0 + n])
        add(carry, rows[0], out=rows[0])
        for i in range(1, n):
            add(rows[i - 1], rows[i], out=rows[i])
        copyto(carry, rows[n - 1])
        multiply(block, inv[t0 : t0 + n], out=block)
        copyto(out[:, t0 : t0 + n], staged)
    return out


#: Block size of the chunked form, chosen by measurement: results/tuning/chunk_block.md.
CHUNK_K = 32


def chunked(x: np.ndarray, block: int = CHUNK_K) -> np.ndarray:
    """Blocked prefix sums: a K x K triangular matmul per block, then block totals.

    T is padded with zeros to a multiple of the block; the result is a view of
    the first T positions. The in-place steps keep it to one extra array.
    """
    B, T, C = x.shape
    K = min(block, T)
    nb = -(-T // K)
    if nb * K != T:
        x = np.concatenate([x, np.zeros((B, nb * K - T, C), dtype=x.dtype)], axis=1)
    tril = np.tril(np.ones((K, K), dtype=x.dtype))
    # (K, K) @ (B, nb, K, C): prefix sums inside every block, one BLAS call per block.
    sums = np.matmul(tril, x.reshape(B, nb, K, C))
    totals = sums[:, :, -1, :]  # (B, nb, C)
    offsets = np.cumsum(totals, axis=1) - totals  # exclusive: what precedes each block
    sums += offsets[:, :, None, :]
    out: np.ndarray = sums.reshape(B, nb * K, C)[:, :T]
    out /= np.arange(1, T + 1, dtype=x.dtype).reshape(1, T, 1)
    return out


class NumpyBackend(HostBackend):
    name = "numpy"
    module = "numpy"
    extra = "numpy"
    forms: ClassVar[Mapping[str, Callable[..., Any]]] = forms_table(loop, matrix, softmax, cumsum, chunked)
    unimplemented_forms: ClassVar[Mapping[str, str]] = {
        "attention": "NumPy has no fused attention kernel; its softmax form is the unfused one",
    }
    form_variants: ClassVar[Mapping[str, Mapping[str, Callable[..., Any]]]] = {"cumsum": {"staged": staged_cumsum}}
    chunk_block: ClassVar[dict[str, int]] = {"cpu": CHUNK_K}
    #: The loop and the scan are NumPy's own ufunc loops; only the matmul forms call BLAS.
    serial_forms: ClassVar[frozenset[str]] = frozenset({"loop", "cumsum"})

    def versions(self) -> dict[str, str]:
        return {"numpy": np.__version__}

    def supports(self, form: str, dtype: str, precision: str) -> str | None:
        if dtype == "bfloat16":
            return "numpy has no bfloat16 dtype"
        return super().supports(form, dtype, precision)

    def _build(self, form: str, x: Any, precision: str) -> Built:
        impl = self.forms[form]
        if form == "chunked":
            impl = partial(impl, block=self.chunk_block["cpu"])
        return Built(lambda: impl(x))

    def _build_variant(self, form: str, x: Any, precision: str, variant: str) -> Built:
        # staged: one output buffer for every call, as torch's caching allocator gives: a fresh
        # 128 MiB array costs its page faults on every call (+10 ms at 8x4096x1024).
        impl = partial(self.form_variants[form][variant], out=aligned_like(x.shape, x))
        return Built(lambda: impl(x))

    def set_threads(self, n: int | None) -> int | None:
        """Limit NumPy's BLAS pool through threadpoolctl (matrix forms use it)."""
        try:
            from threadpoolctl import threadpool_info, threadpool_limits
        except ImportError:
            return None
        if n is not None:
            # Kept alive on the instance: the limit lasts as long as the adapter.
            self._limits = threadpool_limits(limits=n, user_api="blas")
        blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        return int(blas[0]["num_threads"]) if blas else n
