"""PyTorch eager adapter; also the base that the torch.compile adapter extends.

The form functions below are plain PyTorch written the way a user would write
them. ``torch_compile`` compiles exactly these functions, so the two backends
differ only in compilation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from backends._attention import (
    TORCH_KERNELS,
    gpu_only_reason,
    pin_sdpa,
    torch_attention,
    torch_check,
    torch_inputs,
    torch_picked,
)
from backends._common import flush_bytes, forms_table, numpy_input_dtype
from backends._cuda import (
    CEILING_REPEATS,
    EVENT_COPY_BYTES,
    GPU_MATMUL_MODES,
    CudaEventTimer,
    event_seconds,
    gpu_ceilings,
    set_matmul_precision,
    torch_dtype,
    torch_dtype_name,
)
from backends.base import Availability, Backend, Built, CaseUnsupported, Ceilings, DeviceTimer

if TYPE_CHECKING:
    import torch


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


class TorchEagerBackend(Backend):
    name = "torch"
    module = "torch"
    extra = "torch"
    forms: ClassVar[Mapping[str, Callable[..., Any]]] = {
        **forms_table(loop, matrix, softmax, cumsum, chunked),
        "attention": torch_attention,
    }
    form_kernels: ClassVar[Mapping[str, tuple[str, ...]]] = {"attention": TORCH_KERNELS}
    #: Block size of the chunked form per device type: results/tuning/chunk_block.md.
    chunk_block: ClassVar[dict[str, int]] = {"cpu": 32, "cuda": 64}

    @cached_property
    def torch(self) -> Any:
        """torch, imported on first use."""
        import torch

        return torch

    def _device_availability(self) -> Availability:
        if self.requested_device == "gpu" and not self.torch.cuda.is_available():
            return Availability(False, "torch sees no CUDA GPU (torch.cuda.is_available() is False)")
        return Availability(True)

    def is_gpu(self) -> bool:
        return bool(self._torch_device().type == "cuda")

    def _torch_device(self) -> Any:
        torch = self.torch
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
            return f"cuda:{dev.index} ({self.torch.cuda.get_device_name(dev)})"
        return "cpu"

    def versions(self) -> dict[str, str]:
        torch = self.torch
        out = {"torch": torch.__version__}
        if torch.version.cuda:
            out["cuda"] = str(torch.version.cuda)
        return out

    def to_device(self, x: np.ndarray, dtype: str) -> Any:
        t = self.torch.from_numpy(np.ascontiguousarray(x, dtype=numpy_input_dtype(dtype)))
        t = t.to(device=self._torch_device(), dtype=torch_dtype(dtype))
        self.sync(t)
        return t

    def to_numpy(self, y: Any) -> np.ndarray:
        return np.asarray(y.detach().to("cpu", dtype=self.torch.float64).numpy())

    def dtype_name(self, x: Any) -> str:
        return torch_dtype_name(x)

    def _prepare(self, form: str, precision: str) -> Callable[[Any], Any]:
        """The form's function on this device, with the matmul precision set for it."""
        if self.is_gpu():
            # The chunked form's block matmul must stay IEEE whatever the mode.
            set_matmul_precision("ieee" if form == "chunked" else precision)
        impl = self.forms[form]
        if form == "chunked":
            return partial(impl, block=self.chunk_block[self._torch_device().type])
        return impl

    def _build(self, form: str, x: Any, precision: str) -> Built:
        impl = self._prepare(form, precision)
        return Built(lambda: impl(x))

    def kernel_unsupported(self, form: str, kernel: str, dtype: str) -> str | None:
        why = super().kernel_unsupported(form, kernel, dtype)
        return why or (None if self.is_gpu() else gpu_only_reason("torch", kernel, self.device()))

    def _attention(self, x: Any, precision: str, kernel: str) -> tuple[Callable[..., Any], tuple[Any, Any, Any]]:
        """The attention function and its (q, k, v), with ``kernel`` pinned and shown to take them."""
        impl = self._prepare("attention", precision)
        qkv = torch_inputs(x)
        pin_sdpa(kernel)
        torch_check(kernel, *qkv)
        return impl, qkv

    def _build_kernel(self, form: str, x: Any, precision: str, kernel: str) -> Built:
        impl, qkv = self._attention(x, precision, kernel)
        notes = f"auto ran {torch_picked(*qkv)} (torch._fused_sdp_choice)" if kernel == "auto" else ""
        return Built(lambda: impl(*qkv), notes=notes)

    def sync(self, result: Any) -> None:
        if self.is_gpu():
            self.torch.cuda.synchronize()

    def set_threads(self, n: int | None) -> int | None:
        torch = self.torch
        if n is not None:
            torch.set_num_threads(n)
            # Inter-op threads can be set once, before any inter-op work; later the
            # read-back (thread_pools) shows what they stayed at.
            with contextlib.suppress(RuntimeError):
                torch.set_num_interop_threads(n)
        return int(torch.get_num_threads())

    def thread_pools(self) -> dict[str, int]:
        torch = self.torch
        return {"torch intra-op": int(torch.get_num_threads()), "torch inter-op": int(torch.get_num_interop_threads())}

    def device_timer(self) -> DeviceTimer | None:
        return CudaEventTimer() if self.is_gpu() else None

    def cache_bytes(self) -> int:
        if not self.is_gpu():
            return 0
        props = self.torch.cuda.get_device_properties(self._torch_device())
        return int(getattr(props, "L2_cache_size", 0))

    def flush_cache(self) -> None:
        if not self.is_gpu():
            return
        torch = self.torch
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
        free, _total = self.torch.cuda.mem_get_info(self._torch_device())
        return int(free)

    def reset_peak_memory(self) -> None:
        if self.is_gpu():
            self.torch.cuda.reset_peak_memory_stats(self._torch_device())

    def peak_memory(self) -> int | None:
        if not self.is_gpu():
            return None
        return int(self.torch.cuda.max_memory_allocated(self._torch_device()))

    def measure_ceilings(self) -> Ceilings | None:
        """Device-to-device copy bandwidth and matmul rates, timed with CUDA events.

        None on the CPU (the harness measures the host). Measured once per adapter.
        """
        return self._gpu_ceilings if self.is_gpu() else None

    @cached_property
    def _gpu_ceilings(self) -> Ceilings:
        torch, dev = self.torch, self._torch_device()
        nbytes = max(EVENT_COPY_BYTES, 8 * self.cache_bytes())

        def copy_seconds() -> float:
            src = torch.ones(nbytes // 4, dtype=torch.float32, device=dev)
            dst = torch.empty_like(src)
            return event_seconds(lambda: dst.copy_(src), CEILING_REPEATS)

        def matmul_seconds(n: int, dtype: str, precision: str) -> float:
            set_matmul_precision(precision)
            a = torch.randn(n, n, device=dev).to(torch_dtype(dtype))
            b = torch.randn(n, n, device=dev).to(torch_dtype(dtype))
            c = torch.empty_like(a)
            return event_seconds(lambda: torch.matmul(a, b, out=c), CEILING_REPEATS)

        try:
            return gpu_ceilings(
                device=self.device(),
                measured_by="torch",
                copy_op="copy_ of",
                copy_bytes=nbytes,
                copy_seconds=copy_seconds,
                matmul_seconds=matmul_seconds,
                modes=GPU_MATMUL_MODES,
                clock="CUDA events",
                repeats=CEILING_REPEATS,
            )
        finally:
            set_matmul_precision("ieee")
            torch.cuda.empty_cache()
