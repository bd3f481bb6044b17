"""The attention form: causal averaging through the fused attention kernels of torch and JAX.

Causal averaging is masked self-attention with all scores equal: the softmax of a
causal row of zeros gives ``1/(t+1)`` to every visible position, so
``out = attention(q=0, k=0, v=x, causal)``. The queries and keys are zero arrays
made once per case, outside the timed call, and passed in as arguments: a
compiler that saw them as constants could fold the QK^T product away.

torch: ``scaled_dot_product_attention`` in its (B, heads=1, T, C) layout; the
kernel is pinned with ``torch.nn.attention.sdpa_kernel``. JAX:
``jax.nn.dot_product_attention`` in its (B, T, heads=1, C) layout, with
``implementation="xla"`` or ``"cudnn"``.
"""

from __future__ import annotations

import atexit
import warnings
from collections.abc import Callable
from contextlib import ExitStack, nullcontext
from typing import Any

from backends._common import kineto_quiet
from backends.base import CaseUnsupported

#: torch's kernels: ``auto`` lets the dispatcher pick, the others pin one SDPA backend.
TORCH_KERNELS: tuple[str, ...] = ("auto", "flash", "efficient", "cudnn", "math")
#: JAX's implementations of ``jax.nn.dot_product_attention``.
JAX_KERNELS: tuple[str, ...] = ("xla", "cudnn")
#: Kernels that exist only on a CUDA GPU (torch has a flash kernel for the CPU too).
GPU_ONLY: frozenset[str] = frozenset({"efficient", "cudnn"})

#: ``torch.nn.attention.SDPBackend`` member of each pinned torch kernel.
_SDP_BACKENDS: dict[str, str] = {
    "flash": "FLASH_ATTENTION",
    "efficient": "EFFICIENT_ATTENTION",
    "cudnn": "CUDNN_ATTENTION",
    "math": "MATH",
}
#: The aten operators that show in torch's profiler when each kernel runs.
TORCH_KERNEL_OPS: dict[str, str] = {
    "aten::_scaled_dot_product_flash_attention": "flash",
    "aten::_scaled_dot_product_flash_attention_for_cpu": "flash",
    "aten::_scaled_dot_product_efficient_attention": "efficient",
    "aten::_scaled_dot_product_cudnn_attention": "cudnn",
    "aten::_scaled_dot_product_attention_math": "math",
}


def gpu_only_reason(library: str, kernel: str, device: str) -> str | None:
    """Why ``kernel`` cannot run on a non-GPU ``device``, or None."""
    if kernel in GPU_ONLY:
        return f"the {kernel} attention kernel needs a CUDA GPU; {library} runs on {device}"
    return None


# -- torch -----------------------------------------------------------------------------


def torch_attention(q: Any, k: Any, v: Any) -> Any:
    """The attention form as a user writes it: causal SDPA (the kernel left to the switches), head 0."""
    from torch.nn.functional import scaled_dot_product_attention

    return scaled_dot_product_attention(q, k, v, is_causal=True)[:, 0]


def torch_inputs(x: Any) -> tuple[Any, Any, Any]:
    """(q, k, v) in SDPA's (B, 1, T, C) layout: v is a view of x, q and k zeros."""
    import torch

    v = x.unsqueeze(1)
    return torch.zeros_like(v), torch.zeros_like(v), v


#: The ``sdpa_kernel`` context now entered by :func:`pin_sdpa` (one per process, like the switches).
_PIN = ExitStack()


def pin_sdpa(kernel: str) -> None:
    """Keep torch's SDPA to ``kernel`` until the next pin (``auto``: release it, the dispatcher chooses).

    ``sdpa_kernel`` sets process-wide switches. Entering it inside every timed call
    would add tens of microseconds of Python per call, so an adapter enters it once
    when it builds a case and leaves it when it builds the next attention case.
    """
    _PIN.close()
    if kernel != "auto":
        from torch.nn.attention import SDPBackend, sdpa_kernel

        _PIN.enter_context(sdpa_kernel(getattr(SDPBackend, _SDP_BACKENDS[kernel])))
        # Released before interpreter teardown: the context's exit needs torch still loaded.
        atexit.register(_PIN.close)


def torch_check(kernel: str, q: Any, k: Any, v: Any) -> None:
    """Run SDPA once under the pinned kernel; CaseUnsupported with torch's reasons if it refuses.

    torch refuses a kernel that cannot take the input (its device, head dimension
    or dtype) with "No available kernel" or "No viable backend" and, on CUDA,
    warnings that say why; the reasons go into the skipped row.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            torch_attention(q, k, v)
        except RuntimeError as e:
            why = [str(w.message).strip().splitlines()[0] for w in caught if str(w.message).strip()]
            first = (str(e).strip().splitlines() or [""])[0]
            raise CaseUnsupported(f"torch refuses the {kernel} kernel here: {'; '.join([*why, first])}") from None


def torch_picked(q: Any, k: Any, v: Any) -> str:
    """The kernel torch's dispatcher picks for causal SDPA on these inputs under the current switches.

    ``torch._fused_sdp_choice`` is the function ``scaled_dot_product_attention``
    itself calls to choose; it returns an ``SDPBackend`` value.
    """
    import torch
    from torch.nn.attention import SDPBackend

    choice = SDPBackend(torch._fused_sdp_choice(q, k, v, None, 0.0, True)).name
    names = {member: kernel for kernel, member in _SDP_BACKENDS.items()}
    return names.get(choice, choice.lower())


def torch_ran(call: Callable[[], Any]) -> str:
    """The kernel one call of ``call`` ran, from the aten operators torch's profiler records.

    "" when no SDPA kernel operator ran: Inductor replaced SDPA by its own code
    (on the CPU, batched matmuls and a fused softmax: the math algorithm, compiled).
    """
    from torch.profiler import ProfilerActivity, profile

    with kineto_quiet(), profile(activities=[ProfilerActivity.CPU]) as prof:
        call()
    ran = {TORCH_KERNEL_OPS[e.name] for e in prof.events() if e.name in TORCH_KERNEL_OPS}
    return ",".join(sorted(ran))


# -- JAX -------------------------------------------------------------------------------


def jax_attention(q: Any, k: Any, x: Any, implementation: str) -> Any:
    """``jax.nn.dot_product_attention`` of zero q and k over v = x, causal, in (B, T, 1, C)."""
    import jax

    attention: Any = jax.nn.dot_product_attention  # typed with a Literal implementation
    return attention(q, k, x[:, :, None, :], is_causal=True, implementation=implementation)[:, :, 0, :]


def jax_qk(x: Any) -> Any:
    """A zero query (and key) array in ``dot_product_attention``'s (B, T, 1, C) layout, on x's device."""
    import jax.numpy as jnp

    return jnp.zeros((*x.shape[:2], 1, x.shape[2]), dtype=x.dtype, device=x.device)


def jax_matmul_precision(precision: str, dtype: str) -> Any:
    """A context with the matmul precision of a mode (the attention matmuls take no precision argument).

    Only float32 has a choice (IEEE or TF32); XLA's CPU refuses "highest" for float16
    ("F16_F16_F32 is not supported by dot_general on CPU"), so the other dtypes keep the default.
    """
    import jax

    if dtype != "float32":
        return nullcontext()
    return jax.default_matmul_precision("highest" if precision == "ieee" else "tensorfloat32")
