"""PyTorch eager adapter; also the base that the torch.compile adapter extends.

The form functions below are plain PyTorch written the way a user would write
them. ``torch_compile`` compiles exactly these functions, so the two backends
differ only in compilation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from backends.base import (
    Availability,
    Backend,
    Built,
    CaseUnsupported,
    Ceilings,
    DeviceTimer,
    flush_bytes,
    matmul_key,
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


def chunked(x: torch.Tensor, block: int = 32) -> torch.Tensor:
    """Blocked prefix sums: a K x K triangular matmul per block, then block totals.

    T is padded with zeros to a multiple of the block. The caller keeps float32
    matmuls in IEEE precision (see ``TorchEagerBackend._prepare``): TF32 rounds
    x to 10 mantissa bits before summing, far outside float32 agreement.
    """
    import torch

    B, T, C = x.shape
    K = min(block, T)
    nb = -(-T // K)
    if nb * K != T:
        x = torch.nn.functional.pad(x, (0, 0, 0, nb * K - T))
    tril = torch.tril(torch.ones(K, K, dtype=x.dtype, device=x.device))
    sums = torch.matmul(tril, x.reshape(B, nb, K, C))
    totals = sums[:, :, -1, :]
    offsets = torch.cumsum(totals, dim=1) - totals  # exclusive: what precedes each block
    sums.add_(offsets.unsqueeze(2))
    counts = torch.arange(1, T + 1, dtype=x.dtype, device=x.device).view(1, T, 1)
    return sums.reshape(B, nb * K, C)[:, :T] / counts


FORMS: dict[str, Callable[[Any], Any]] = {
    "loop": loop,
    "matrix": matrix,
    "softmax": softmax,
    "cumsum": cumsum,
    "chunked": chunked,
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
    #: Block size of the chunked form per device type. CPU: chosen with
    #: scripts/chunk_block_size.py at 8x1024x256 float32 on the project's 2-core
    #: CPU, three runs on a shared machine, median ms for K = 8/16/32/64/128:
    #:   1.84/1.87/1.75/2.73/3.89,  47.9/6.54/6.73/32.0/31.8,  6.49/9.98/6.26/31.9/12.6.
    #: K = 32 is best or within noise of it; K >= 64 is always slower. CUDA: not
    #: measured (no GPU at hand); 64 keeps the IEEE float32 block matmul at
    #: 16 FLOP per byte moved, near an H100's FP32 ridge, so it stays memory bound.
    chunk_block: ClassVar[dict[str, int]] = {"cpu": 32, "cuda": 64}

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
            # The chunked form's block matmul must stay IEEE whatever the mode.
            set_matmul_precision("ieee" if form == "chunked" else precision)
        if form == "chunked":
            return partial(chunked, block=self.chunk_block[self._torch_device().type])
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
            n = flush_bytes(self.cache_bytes())
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

    def measure_ceilings(self) -> Ceilings | None:
        """Device-to-device copy bandwidth and matmul rates, timed with CUDA events.

        None on the CPU (the harness measures the host). Measured once per adapter.
        """
        if not self.is_gpu():
            return None
        cached: Ceilings | None = getattr(self, "_ceilings", None)
        if cached is None:
            cached = self._ceilings = measure_cuda_ceilings(self._torch_device(), self.device(), self.cache_bytes())
        return cached

    def peak_memory(self) -> int | None:
        if not self.is_gpu():
            return None
        return int(self._torch().cuda.max_memory_allocated(self._torch_device()))


#: Matmul ceilings measured on a GPU: (dtype, precision mode).
GPU_MATMUL_MODES: tuple[tuple[str, str], ...] = (
    ("float32", "ieee"),
    ("float32", "tf32"),
    ("bfloat16", "ieee"),
    ("float16", "ieee"),
    ("float64", "ieee"),
)
#: Side of the square matmuls timed for the compute ceilings.
GPU_MATMUL_N = 8192
#: Copy buffer for the bandwidth ceiling: this many bytes at least, and 8x the L2.
GPU_COPY_BYTES = 512 << 20


def measure_cuda_ceilings(dev: Any, label: str, l2_bytes: int, repeats: int = 5) -> Ceilings:
    """Best of ``repeats`` CUDA-event-timed copies and matmuls on ``dev`` (about a second)."""
    import torch

    def best(fn: Callable[[], Any]) -> float:
        fn()
        torch.cuda.synchronize()
        seconds = math.inf
        for _ in range(repeats):
            timer = _CudaEventTimer()
            timer.start()
            fn()
            seconds = min(seconds, timer.stop())
        return seconds

    def copy_seconds(nbytes: int) -> float:
        src = torch.ones(nbytes // 4, dtype=torch.float32, device=dev)
        dst = torch.empty_like(src)
        return best(lambda: dst.copy_(src))

    def matmul_seconds(n: int, dtype: str) -> float:
        a = torch.randn(n, n, device=dev).to(getattr(torch, dtype))
        b = torch.randn(n, n, device=dev).to(getattr(torch, dtype))
        c = torch.empty_like(a)
        return best(lambda: torch.matmul(a, b, out=c))

    nbytes = max(GPU_COPY_BYTES, 8 * l2_bytes)
    copy_gbs = 2 * nbytes / copy_seconds(nbytes) / 1e9
    rates: dict[str, float] = {}
    n = GPU_MATMUL_N
    try:
        for dtype, precision in GPU_MATMUL_MODES:
            set_matmul_precision(precision)
            rates[matmul_key(dtype, precision)] = 2.0 * n**3 / matmul_seconds(n, dtype) / 1e9
    finally:
        set_matmul_precision("ieee")
        torch.cuda.empty_cache()
    return Ceilings(
        device=label,
        copy_gbs=copy_gbs,
        matmul_gflops=rates,
        measured_by="torch",
        notes=f"copy_ of {nbytes >> 20} MiB and {n}^3 matmuls, CUDA events, best of {repeats}",
    )


def _dtype_name(x: Any) -> str:
    return str(x.dtype).removeprefix("torch.")
