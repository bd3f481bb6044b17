"""PyTorch eager adapter; also the base that the torch.compile adapter extends.

The form functions below are plain PyTorch written the way a user would write
them. ``torch_compile`` compiles exactly these functions, so the two backends
differ only in compilation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from backends.base import (
    Availability,
    Backend,
    Built,
    CaseUnsupported,
    DeviceTimer,
    numpy_input_dtype,
)

if TYPE_CHECKING:
    import torch

_TORCH_DTYPES = {
    "float32": "float32",
    "float64": "float64",
    "float16": "float16",
    "bfloat16": "bfloat16",
}


def loop(x: torch.Tensor) -> torch.Tensor:
    """The notebook's double loop, as written there."""
    import torch

    B, T, _ = x.shape
    out = torch.empty_like(x)
    for b in range(B):
        for t in range(T):
            out[b, t] = torch.mean(x[b, : t + 1], 0)
    return out


def matrix(x: torch.Tensor) -> torch.Tensor:
    import torch

    T = x.shape[1]
    wei = torch.tril(torch.ones(T, T, dtype=x.dtype, device=x.device))
    wei = wei / wei.sum(1, keepdim=True)
    return wei @ x


def softmax(x: torch.Tensor) -> torch.Tensor:
    import torch

    T = x.shape[1]
    tril = torch.tril(torch.ones(T, T, dtype=torch.bool, device=x.device))
    wei = torch.zeros(T, T, dtype=x.dtype, device=x.device)
    wei = wei.masked_fill(~tril, float("-inf"))
    wei = torch.softmax(wei, dim=-1)
    return wei @ x


def cumsum(x: torch.Tensor) -> torch.Tensor:
    import torch

    T = x.shape[1]
    counts = torch.arange(1, T + 1, dtype=x.dtype, device=x.device).view(1, T, 1)
    return torch.cumsum(x, dim=1) / counts


FORMS: dict[str, Callable[[Any], Any]] = {
    "loop": loop,
    "matrix": matrix,
    "softmax": softmax,
    "cumsum": cumsum,
}


class _CudaEventTimer(DeviceTimer):
    def __init__(self) -> None:
        import torch

        self._start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        self._end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]

    def start(self) -> None:
        self._start.record()

    def stop(self) -> float:
        self._end.record()
        self._end.synchronize()
        return float(self._start.elapsed_time(self._end)) / 1e3


def set_matmul_precision(precision: str) -> None:
    """Make float32 matmuls IEEE or TF32, with the knob this torch version has."""
    import torch

    tf32 = precision == "tf32"
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):
        # torch >= 2.9: the new per-backend API; mixing it with allow_tf32 warns.
        matmul.fp32_precision = "tf32" if tf32 else "ieee"
    else:  # pragma: no cover - older torch
        matmul.allow_tf32 = tf32


class TorchEagerBackend(Backend):
    name = "torch"
    module = "torch"
    extra = "torch"

    def _torch(self) -> Any:
        import torch

        return torch

    def _device_availability(self) -> Availability:
        if self.requested_device == "gpu" and not self._torch().cuda.is_available():
            return Availability(False, "torch sees no CUDA GPU (torch.cuda.is_available() is False)")
        return Availability(True)

    def is_gpu(self) -> bool:
        return bool(self._torch_device().type == "cuda")

    def _torch_device(self) -> Any:
        torch = self._torch()
        if self.requested_device == "cpu":
            return torch.device("cpu")
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if self.requested_device == "gpu":
            raise CaseUnsupported("torch sees no CUDA GPU")
        return torch.device("cpu")

    def device(self) -> str:
        dev = self._torch_device()
        if dev.type == "cuda":
            return f"cuda:{dev.index} ({self._torch().cuda.get_device_name(dev)})"
        return "cpu"

    def versions(self) -> dict[str, str]:
        torch = self._torch()
        out = {"torch": torch.__version__}
        if torch.version.cuda:
            out["cuda"] = str(torch.version.cuda)
        return out

    def to_device(self, x: np.ndarray, dtype: str) -> Any:
        torch = self._torch()
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=numpy_input_dtype(dtype)))
        t = t.to(device=self._torch_device(), dtype=getattr(torch, _TORCH_DTYPES[dtype]))
        self.sync(t)
        return t

    def to_numpy(self, y: Any) -> np.ndarray:
        return np.asarray(y.detach().to("cpu", dtype=self._torch().float64).numpy())

    def _prepare(self, form: str, x: Any, precision: str) -> Callable[[Any], Any]:
        reason = self.supports(form, _dtype_name(x), precision)
        if reason:
            raise CaseUnsupported(reason)
        if self.is_gpu():
            set_matmul_precision(precision)
        return FORMS[form]

    def build(self, form: str, x: Any, precision: str) -> Built:
        impl = self._prepare(form, x, precision)
        return Built(lambda: impl(x))

    def sync(self, result: Any) -> None:
        torch = self._torch()
        if self.is_gpu():
            torch.cuda.synchronize()

    def set_threads(self, n: int | None) -> int | None:
        torch = self._torch()
        if n is not None:
            torch.set_num_threads(n)
        return int(torch.get_num_threads())

    def device_timer(self) -> DeviceTimer | None:
        return _CudaEventTimer() if self.is_gpu() else None

    def cache_bytes(self) -> int:
        if not self.is_gpu():
            return 0
        props = self._torch().cuda.get_device_properties(self._torch_device())
        return int(getattr(props, "L2_cache_size", 0))

    def flush_cache(self) -> None:
        if not self.is_gpu():
            return
        torch = self._torch()
        buf = getattr(self, "_flush_buf", None)
        if buf is None:
            # Twice the L2 so that nothing of the previous call survives.
            n = max(2 * self.cache_bytes(), 1 << 20)
            buf = self._flush_buf = torch.empty(n, dtype=torch.int8, device=self._torch_device())
        buf.zero_()
        torch.cuda.synchronize()

    def memory_available(self) -> int | None:
        if not self.is_gpu():
            return None
        free, _total = self._torch().cuda.mem_get_info(self._torch_device())
        return int(free)

    def reset_peak_memory(self) -> None:
        if self.is_gpu():
            self._torch().cuda.reset_peak_memory_stats(self._torch_device())

    def peak_memory(self) -> int | None:
        if not self.is_gpu():
            return None
        return int(self._torch().cuda.max_memory_allocated(self._torch_device()))


def _dtype_name(x: Any) -> str:
    return str(x.dtype).removeprefix("torch.")
