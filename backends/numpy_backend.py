"""NumPy adapter: the host baseline every other backend is compared with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from backends.base import Built, CaseUnsupported, HostBackend


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


#: Block size of the chunked form, chosen by measurement: scripts/chunk_block_size.py
#: at 8x1024x256 float32 on the project's 2-core CPU (AMD EPYC, OpenBLAS), three
#: runs on a shared machine, median ms for K = 8/16/32/64/128:
#:   5.24/4.15/3.11/3.94/5.20,  5.80/4.33/3.42/13.1/7.87,  5.23/4.46/3.49/13.8/13.4.
#: K = 32 won every run. Smaller blocks pay for more block totals and BLAS calls
#: (one (K, K) @ (K, C) call per block); larger ones for the 2K FLOP per element
#: of the triangular matmul.
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


FORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "loop": loop,
    "matrix": matrix,
    "softmax": softmax,
    "cumsum": cumsum,
    "chunked": chunked,
}


class NumpyBackend(HostBackend):
    name = "numpy"
    module = "numpy"
    extra = "numpy"
    chunk_block: ClassVar[dict[str, int]] = {"cpu": CHUNK_K}

    def versions(self) -> dict[str, str]:
        return {"numpy": np.__version__}

    def supports(self, form: str, dtype: str, precision: str) -> str | None:
        if dtype == "bfloat16":
            return "numpy has no bfloat16 dtype"
        return super().supports(form, dtype, precision)

    def build(self, form: str, x: Any, precision: str) -> Built:
        reason = self.supports(form, str(x.dtype), precision)
        if reason:
            raise CaseUnsupported(reason)
        if form == "chunked":
            return Built(lambda: chunked(x, self.chunk_block["cpu"]))
        impl = FORMS[form]
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
