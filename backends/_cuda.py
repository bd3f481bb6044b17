"""What the CUDA adapters share: event timing, the TF32 switches, the GPU ceilings, torch dtype names.

Used by the torch-backed adapters (torch, torch-compile, triton) and by JAX on a
GPU. Each function imports its framework when called.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backends.base import DTYPES, Ceilings, DeviceTimer, matmul_key

#: Matmul ceilings measured on a GPU: (dtype, precision mode).
GPU_MATMUL_MODES: tuple[tuple[str, str], ...] = (
    ("float32", "ieee"),
    ("float32", "tf32"),
    ("bfloat16", "ieee"),
    ("float16", "ieee"),
    ("float64", "ieee"),
)
#: Each ceiling is the fastest of this many timed calls, after a warm-up.
CEILING_REPEATS = 5
#: Side of the square matmuls timed for the compute ceilings.
GPU_MATMUL_N = 8192
#: Copy buffer timed with CUDA events: this many bytes at least, and 8x the L2.
EVENT_COPY_BYTES = 512 << 20
#: Copy buffer timed by wall clock: large beside the L2, and long enough that host
#: dispatch (tens of microseconds) stays a few percent of the time: 2 GiB moved at
#: NVIDIA's published 3.35 TB/s for the H100 SXM is about 0.6 ms (not yet measured here).
WALL_COPY_BYTES = 1 << 30


class CudaEventTimer(DeviceTimer):
    """Device-side duration of the work between :meth:`start` and :meth:`stop` (torch CUDA events)."""

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


def event_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """Fastest of ``repeats`` CUDA-event-timed calls of ``fn``, after one warm-up call."""
    import torch

    fn()
    torch.cuda.synchronize()
    seconds = float("inf")
    for _ in range(repeats):
        timer = CudaEventTimer()
        timer.start()
        fn()
        seconds = min(seconds, timer.stop())
    return seconds


def set_matmul_precision(precision: str) -> None:
    """Make torch's float32 matmuls IEEE or TF32, with the knob this torch version has."""
    import torch

    tf32 = precision == "tf32"
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):
        # torch >= 2.9: the new per-backend API; mixing it with allow_tf32 warns.
        matmul.fp32_precision = "tf32" if tf32 else "ieee"
    else:  # pragma: no cover - older torch
        matmul.allow_tf32 = tf32


def lax_precision(precision: str) -> Any:
    """JAX's matmul precision for a mode: HIGHEST is IEEE float32 everywhere, DEFAULT is TF32 on recent GPUs."""
    from jax import lax

    return lax.Precision.HIGHEST if precision == "ieee" else lax.Precision.DEFAULT


def gpu_ceilings(
    *,
    device: str,
    measured_by: str,
    copy_op: str,
    copy_bytes: int,
    copy_seconds: Callable[[], float],
    matmul_seconds: Callable[[int, str, str], float],
    modes: tuple[tuple[str, str], ...],
    clock: str,
    repeats: int,
) -> Ceilings:
    """Ceilings from a timed copy of ``copy_bytes`` and ``GPU_MATMUL_N``-square matmuls per mode.

    A copy reads and writes every byte; an n x n matmul is 2 n^3 FLOP. The adapter
    times each op (best of ``repeats`` on ``clock``); the notes say how.
    """
    copy_gbs = 2 * copy_bytes / copy_seconds() / 1e9
    n = GPU_MATMUL_N
    rates = {matmul_key(d, p): 2.0 * n**3 / matmul_seconds(n, d, p) / 1e9 for d, p in modes}
    return Ceilings(
        device=device,
        copy_gbs=copy_gbs,
        matmul_gflops=rates,
        measured_by=measured_by,
        notes=f"{copy_op} {copy_bytes >> 20} MiB and {n}^3 matmuls, {clock}, best of {repeats}",
    )


def torch_dtype(name: str) -> Any:
    """The torch dtype of a suite dtype name (the suite's names are torch's own)."""
    import torch

    if name not in DTYPES:
        raise KeyError(name)
    return getattr(torch, name)


def torch_dtype_name(x: Any) -> str:
    """The suite's dtype name of a torch tensor (``torch.bfloat16`` -> ``bfloat16``)."""
    return str(x.dtype).removeprefix("torch.")
