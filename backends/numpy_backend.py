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


def cumsum(x: np.ndarray) -> np.ndarray:
    T = x.shape[1]
    counts = np.arange(1, T + 1, dtype=x.dtype).reshape(1, T, 1)
    return np.cumsum(x, axis=1) / counts


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
