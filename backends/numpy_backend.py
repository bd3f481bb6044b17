"""NumPy adapter: the host baseline every other backend is compared with."""

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


#: Below this many columns per step (B * C) ``cumsum`` calls ``np.cumsum``: a step of
#: the row scan then costs more in Python than the strided accumulate saves.
ROW_SCAN_MIN_COLUMNS = 256


def cumsum(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Running sums walked as rows: for each t, ``acc += x[:, t]; out[:, t] = acc / (t+1)``.

    ``np.cumsum(x, axis=1)`` runs its inner loop down T with a stride of C elements:
    every element touches a new cache line, 2-3% of copy bandwidth at 8x4096x1024
    (the cProfile trace is one C call; README, "Why is it slow"). Walking t in the
    outer (Python) loop with a (B, C) row per step reads x and writes out once, in
    memory order, and fuses the division: the same float32 additions in the same
    order as ``np.cumsum``. ``out`` is reused when given (the adapter keeps one).
    """
    B, T, C = x.shape
    out = np.empty_like(x) if out is None else out
    if B * C < ROW_SCAN_MIN_COLUMNS:
        np.cumsum(x, axis=1, out=out)
        out /= np.arange(1, T + 1, dtype=x.dtype).reshape(1, T, 1)
        return out
    acc = np.zeros((B, C), dtype=x.dtype)
    inv = 1.0 / np.arange(1, T + 1, dtype=np.float64)
    add, multiply = np.add, np.multiply
    for xt, ot, it in zip(np.moveaxis(x, 1, 0), np.moveaxis(out, 1, 0), inv.astype(x.dtype), strict=True):
        add(acc, xt, out=acc)
        multiply(acc, it, out=ot)
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
    chunk_block: ClassVar[dict[str, int]] = {"cpu": CHUNK_K}

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
        if form == "cumsum":
            # One output buffer for every call, as torch's caching allocator gives: a fresh
            # 128 MiB array costs its page faults on every call (+10 ms at 8x4096x1024).
            impl = partial(impl, out=np.empty_like(x))
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
