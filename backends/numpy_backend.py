"""NumPy adapter: the host baseline every other backend is compared with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from backends.base import Availability, Backend, Built, CaseUnsupported, numpy_input_dtype


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


FORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "loop": loop,
    "matrix": matrix,
    "softmax": softmax,
    "cumsum": cumsum,
}


class NumpyBackend(Backend):
    name = "numpy"
    module = "numpy"
    extra = "numpy"

    def _device_availability(self) -> Availability:
        if self.requested_device == "gpu":
            return Availability(False, "numpy runs on the CPU only")
        return Availability(True)

    def device(self) -> str:
        return "cpu"

    def versions(self) -> dict[str, str]:
        return {"numpy": np.__version__}

    def supports(self, form: str, dtype: str, precision: str) -> str | None:
        if dtype == "bfloat16":
            return "numpy has no bfloat16 dtype"
        return super().supports(form, dtype, precision)

    def to_device(self, x: np.ndarray, dtype: str) -> np.ndarray:
        return np.ascontiguousarray(x, dtype=numpy_input_dtype(dtype))

    def to_numpy(self, y: Any) -> np.ndarray:
        return np.asarray(y, dtype=np.float64)

    def build(self, form: str, x: Any, precision: str) -> Built:
        reason = self.supports(form, str(x.dtype), precision)
        if reason:
            raise CaseUnsupported(reason)
        impl = FORMS[form]
        return Built(lambda: impl(x))

    def sync(self, result: Any) -> None:
        # NumPy returns only when the work is done.
        return None

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
