"""JAX adapter: every form under ``jax.jit``, on the GPU when there is one.

The loop form is written with ``lax.fori_loop`` so it compiles once whatever T is;
a Python loop under jit would unroll into B*T steps. Each step masks x[b] to the
positions <= t and sums, which keeps the notebook's O(B*T^2*C) work.

JAX's default float32 matmul precision on Ampere and Hopper GPUs is TF32. The
``ieee`` precision mode asks for ``Precision.HIGHEST``; ``tf32`` keeps the default.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from backends.base import Availability, Backend, Built, CaseUnsupported, numpy_input_dtype


def _jax() -> Any:
    # JAX grabs 75% of a GPU's memory when it starts unless told not to; the torch
    # backends may share the GPU in the same run, so allocate on demand.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import jax

    return jax


def loop(x: Any, precision: Any = None) -> Any:
    import jax.numpy as jnp
    from jax import lax

    B, T, _ = x.shape
    positions = jnp.arange(T)

    def row(b: Any, out: Any) -> Any:
        xb = lax.dynamic_index_in_dim(x, b, axis=0, keepdims=False)

        def step(t: Any, out: Any) -> Any:
            seen = (positions <= t)[:, None]
            mean = jnp.sum(jnp.where(seen, xb, 0), axis=0) / (t + 1).astype(x.dtype)
            return out.at[b, t].set(mean)

        return lax.fori_loop(0, T, step, out)

    return lax.fori_loop(0, B, row, jnp.zeros_like(x))


def matrix(x: Any, precision: Any = None) -> Any:
    import jax.numpy as jnp

    T = x.shape[1]
    wei = jnp.tril(jnp.ones((T, T), dtype=x.dtype))
    wei = wei / wei.sum(axis=1, keepdims=True)
    return jnp.matmul(wei, x, precision=precision)


def softmax(x: Any, precision: Any = None) -> Any:
    import jax
    import jax.numpy as jnp

    T = x.shape[1]
    tril = jnp.tril(jnp.ones((T, T), dtype=bool))
    wei = jnp.where(tril, jnp.zeros((T, T), dtype=x.dtype), -jnp.inf).astype(x.dtype)
    wei = jax.nn.softmax(wei, axis=-1)
    return jnp.matmul(wei, x, precision=precision)


def cumsum(x: Any, precision: Any = None) -> Any:
    import jax.numpy as jnp

    T = x.shape[1]
    counts = jnp.arange(1, T + 1, dtype=x.dtype).reshape(1, T, 1)
    return jnp.cumsum(x, axis=1) / counts


FORMS: dict[str, Callable[..., Any]] = {
    "loop": loop,
    "matrix": matrix,
    "softmax": softmax,
    "cumsum": cumsum,
}


class JaxJitBackend(Backend):
    name = "jax"
    module = "jax"
    extra = "jax"

    def _device_availability(self) -> Availability:
        if self.requested_device == "gpu" and not self._gpus():
            return Availability(False, "jax sees no GPU: install a CUDA build (pip install 'jax[cuda13]')")
        return Availability(True)

    def _gpus(self) -> list[Any]:
        try:
            return list(_jax().devices("gpu"))
        except RuntimeError:
            return []

    def _device(self) -> Any:
        jax = _jax()
        if self.requested_device != "cpu":
            gpus = self._gpus()
            if gpus:
                return gpus[0]
            if self.requested_device == "gpu":
                raise CaseUnsupported("jax sees no GPU")
        return jax.devices("cpu")[0]

    def is_gpu(self) -> bool:
        return bool(self._device().platform == "gpu")

    def device(self) -> str:
        dev = self._device()
        if dev.platform == "gpu":
            return f"cuda:{dev.id} ({dev.device_kind})"
        return "cpu"

    def versions(self) -> dict[str, str]:
        from importlib.metadata import version

        return {"jax": str(_jax().__version__), "jaxlib": version("jaxlib")}

    def to_device(self, x: np.ndarray, dtype: str) -> Any:
        jax = _jax()
        import jax.numpy as jnp

        if dtype == "float64":
            # Without x64 JAX silently computes "float64" in float32.
            jax.config.update("jax_enable_x64", True)
        host = np.ascontiguousarray(x, dtype=numpy_input_dtype(dtype))
        arr = jax.device_put(host, self._device()).astype(getattr(jnp, dtype))
        if str(arr.dtype) != dtype:
            raise CaseUnsupported(f"jax holds the input as {arr.dtype}, not {dtype}")
        self.sync(arr)
        return arr

    def to_numpy(self, y: Any) -> np.ndarray:
        return np.asarray(y, dtype=np.float64)

    def build(self, form: str, x: Any, precision: str) -> Built:
        jax = _jax()
        reason = self.supports(form, str(x.dtype), precision)
        if reason:
            raise CaseUnsupported(reason)
        # HIGHEST is IEEE float32 on every platform; DEFAULT is TF32 on recent GPUs.
        prec = jax.lax.Precision.HIGHEST if precision == "ieee" else jax.lax.Precision.DEFAULT
        fn = jax.jit(partial(FORMS[form], precision=prec))
        t0 = time.perf_counter()
        compiled = fn.lower(x).compile()
        compile_s = time.perf_counter() - t0
        return Built(lambda: compiled(x), compile_s=compile_s)

    def sync(self, result: Any) -> None:
        result.block_until_ready()

    def set_threads(self, n: int | None) -> int | None:
        # XLA's CPU thread pool is fixed when the backend starts; it can only be
        # shaped with XLA_FLAGS before import, so a requested count is not applied.
        return None

    def cache_bytes(self) -> int:
        # JAX does not expose the L2 size; 50 MiB covers the H100's (and the H200's).
        return 50 * (1 << 20) if self.is_gpu() else 0

    def flush_cache(self) -> None:
        if not self.is_gpu():
            return
        import jax.numpy as jnp

        # A fresh fill of twice the L2 evicts whatever the previous call left there.
        jnp.zeros(2 * self.cache_bytes(), dtype=jnp.int8, device=self._device()).block_until_ready()

    def _memory_stats(self) -> dict[str, int]:
        stats = self._device().memory_stats()
        return dict(stats) if stats else {}

    def memory_available(self) -> int | None:
        if not self.is_gpu():
            return None
        stats = self._memory_stats()
        if "bytes_limit" not in stats:
            return None
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))

    def peak_memory(self) -> int | None:
        stats = self._memory_stats() if self.is_gpu() else {}
        return int(stats["peak_bytes_in_use"]) if "peak_bytes_in_use" in stats else None
