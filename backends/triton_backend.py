"""Triton adapter: the causal mean as one fused GPU kernel.

One program per (b, C-tile) walks T once, carrying the running sums of its C
columns. Each step loads a (BLOCK_T, BLOCK_C) tile, scans it along T
(``tl.cumsum``, in float32 or float64 for float64 input), adds the carry held in
float64 (so a long float32 sequence under a large common offset keeps float32
accuracy), multiplies by 1/(t+1) and stores: x is read once, out written once,
nothing else touches memory. That is the ``cumsum`` form's computation, and the
form the kernel answers to; the other forms are left to the array libraries.

Data lives in torch tensors (the adapter extends the torch eager one for
transfers, CUDA-event timing, L2 flush and memory statistics). Without a CUDA
GPU the kernel runs only in Triton's CPU interpreter (``TRITON_INTERPRET=1``):
correct but thousands of times slower, so the device reads
``cpu (triton interpreter)`` and its timings mean nothing beside real devices.
The variable must be set before the process imports triton (Triton defines its
own jitted helpers, ``tl.cumsum`` among them, at import); the runner's worker
processes inherit it from the environment of ``python -m suite``.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, ClassVar

from backends._common import timed_first_call
from backends.base import Availability, Built
from backends.torch_eager import TorchEagerBackend

INTERPRET_ENV = "TRITON_INTERPRET"
#: Positions per step: a 64 x BLOCK_C tile keeps enough loads in flight per program.
BLOCK_T = 64
#: Columns per program, at most: B * C / 32 programs fill a GPU's SMs at the
#: default sizes (8 x 1024 / 32 = 256 on an H100's 132 SMs). Not tuned on a GPU yet.
MAX_BLOCK_C = 32


def interpreting() -> bool:
    return os.environ.get(INTERPRET_ENV, "") not in ("", "0")


@cache
def causal_mean_kernel() -> Any:
    """The jitted kernel, defined on first use (Triton reads TRITON_INTERPRET then)."""
    import triton
    import triton.language as tl

    def causal_mean(
        x_ptr: Any,
        out_ptr: Any,
        T: Any,
        C: Any,
        stride_b: Any,
        stride_t: Any,
        BLOCK_T: tl.constexpr,
        BLOCK_C: tl.constexpr,
        WIDE: tl.constexpr,
    ) -> None:
        b = tl.program_id(0)
        cols = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        col_ok = cols < C
        carry = tl.zeros([BLOCK_C], dtype=tl.float64)
        x_row = x_ptr + b * stride_b
        out_row = out_ptr + b * stride_b
        for t0 in range(0, T, BLOCK_T):
            ts = t0 + tl.arange(0, BLOCK_T)
            mask = (ts[:, None] < T) & col_ok[None, :]
            offsets = ts[:, None] * stride_t + cols[None, :]
            tile = tl.load(x_row + offsets, mask=mask, other=0.0)
            tile = tile.to(tl.float64) if WIDE else tile.to(tl.float32)
            sums = tl.cumsum(tile, axis=0).to(tl.float64) + carry[None, :]
            carry += tl.sum(tile.to(tl.float64), axis=0)
            inv = 1.0 / (ts + 1).to(tl.float64)
            mean = sums * inv[:, None]
            if not WIDE:
                # Through float32: float64 -> bfloat16 directly gives Inf in the interpreter.
                mean = mean.to(tl.float32)
            tl.store(out_row + offsets, mean.to(out_ptr.dtype.element_ty), mask=mask)

    # triton.jit called, not used as a decorator: mypy sees an untyped decorator otherwise.
    return triton.jit(causal_mean)


class TritonBackend(TorchEagerBackend):
    name = "triton"
    module = "triton"
    extra = "triton"
    unimplemented_forms: ClassVar[Mapping[str, str]] = {
        "loop": "the kernel is the one-pass running sum; see the cumsum form",
        "matrix": "matmul forms are left to the array libraries",
        "softmax": "matmul forms are left to the array libraries",
        "chunked": "the fused kernel scans its tiles itself; see the cumsum form",
        "attention": "the fused attention kernels are torch's and JAX's; this kernel is the O(T) scan",
    }
    #: The form's kernel maker: ``maker()`` is the jitted kernel, launched by :meth:`_build`.
    forms: ClassVar[Mapping[str, Callable[..., Any]]] = {"cumsum": causal_mean_kernel}

    def availability(self) -> Availability:
        for module, extra in (("torch", "torch"), ("triton", "triton")):
            if importlib.util.find_spec(module) is None:
                return Availability(False, f"{module} is not installed: pip install '.[{extra}]'")
        return self._device_availability()

    def _device_availability(self) -> Availability:
        cuda = bool(self.torch.cuda.is_available())
        if self.requested_device == "gpu" and not cuda:
            return Availability(False, "triton sees no CUDA GPU (torch.cuda.is_available() is False)")
        if self.requested_device == "cpu" and not interpreting():
            return Availability(
                False, f"triton kernels run on a GPU; {INTERPRET_ENV}=1 runs them on the CPU interpreter"
            )
        if not cuda and not interpreting():
            return Availability(
                False,
                f"triton needs a CUDA GPU (torch.cuda.is_available() is False); "
                f"set {INTERPRET_ENV}=1 to run its kernels in the CPU interpreter (slow, for testing)",
            )
        return Availability(True)

    def device(self) -> str:
        if self.is_gpu():
            return super().device()
        return "cpu (triton interpreter)"

    def versions(self) -> dict[str, str]:
        from importlib.metadata import version

        return {**super().versions(), "triton": version("triton")}

    def _build(self, form: str, x: Any, precision: str) -> Built:
        import triton

        torch = self.torch
        kernel = self.forms[form]()
        x = x.contiguous()
        B, T, C = x.shape
        block_c = min(MAX_BLOCK_C, triton.next_power_of_2(C))
        grid = (B, triton.cdiv(C, block_c))
        wide = x.dtype == torch.float64

        def call() -> Any:
            out = torch.empty_like(x)
            kernel[grid](x, out, T, C, x.stride(0), x.stride(1), BLOCK_T=BLOCK_T, BLOCK_C=block_c, WIDE=wide)
            return out

        _, seconds = timed_first_call(call, self.sync)
        return Built(call, compile_s=seconds)
