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
from collections.abc import Callable, Mapping
from functools import cached_property, partial
from typing import Any, ClassVar

import numpy as np

from backends._attention import JAX_KERNELS, gpu_only_reason, jax_attention, jax_matmul_precision, jax_qk
from backends._common import best_seconds, flush_bytes, forms_table, named_threads, numpy_input_dtype
from backends._cuda import CEILING_REPEATS, GPU_MATMUL_MODES, WALL_COPY_BYTES, gpu_ceilings, lax_precision
from backends.base import Availability, Backend, Built, CaseUnsupported, Ceilings

#: Matmul ceilings measured on a GPU; float64 would need x64 mode.
JAX_MATMUL_MODES = tuple(m for m in GPU_MATMUL_MODES if m[0] != "float64")


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


def chunked(x: Any, precision: Any = None, block: int = 32) -> Any:
    """Blocked prefix sums: a K x K triangular matmul per block, then block totals.

    The block matmul always asks for ``Precision.HIGHEST``: under the default
    (TF32 on recent GPUs) x would be rounded to 10 mantissa bits before summing.
    """
    import jax.numpy as jnp
    from jax import lax

    B, T, C = x.shape
    K = min(block, T)
    nb = -(-T // K)
    if nb * K != T:
        x = jnp.pad(x, ((0, 0), (0, nb * K - T), (0, 0)))
    tril = jnp.tril(jnp.ones((K, K), dtype=x.dtype))
    sums = jnp.matmul(tril, x.reshape(B, nb, K, C), precision=lax.Precision.HIGHEST)
    totals = sums[:, :, -1, :]
    offsets = jnp.cumsum(totals, axis=1) - totals  # exclusive: what precedes each block
    out = (sums + offsets[:, :, None, :]).reshape(B, nb * K, C)[:, :T]
    return out / jnp.arange(1, T + 1, dtype=x.dtype).reshape(1, T, 1)


class JaxJitBackend(Backend):
    name = "jax"
    module = "jax"
    extra = "jax"
    forms: ClassVar[Mapping[str, Callable[..., Any]]] = {
        **forms_table(loop, matrix, softmax, cumsum, chunked),
        "attention": jax_attention,
    }
    form_kernels: ClassVar[Mapping[str, tuple[str, ...]]] = {"attention": JAX_KERNELS}
    #: Block size of the chunked form per platform: results/tuning/chunk_block.md.
    chunk_block: ClassVar[dict[str, int]] = {"cpu": 32, "gpu": 64}

    @cached_property
    def jax(self) -> Any:
        """jax, imported on first use."""
        # JAX grabs 75% of a GPU's memory when it starts unless told not to; the torch
        # backends may share the GPU in the same run, so allocate on demand.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        import jax

        return jax

    def _device_availability(self) -> Availability:
        if self.requested_device == "gpu" and not self._gpus():
            return Availability(False, "jax sees no GPU: install a CUDA build (pip install 'jax[cuda13]')")
        return Availability(True)

    def _gpus(self) -> list[Any]:
        try:
            return list(self.jax.devices("gpu"))
        except RuntimeError:
            return []

    def _device(self) -> Any:
        jax = self.jax
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

        return {"jax": str(self.jax.__version__), "jaxlib": version("jaxlib")}

    def to_device(self, x: np.ndarray, dtype: str) -> Any:
        jax = self.jax
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

    def _build(self, form: str, x: Any, precision: str) -> Built:
        impl = self.forms[form]
        if form == "chunked":
            impl = partial(impl, block=self.chunk_block[self._device().platform])
        fn = self.jax.jit(partial(impl, precision=lax_precision(precision)))
        t0 = time.perf_counter()
        compiled = fn.lower(x).compile()
        compile_s = time.perf_counter() - t0
        return Built(lambda: compiled(x), compile_s=compile_s)

    def kernel_unsupported(self, form: str, kernel: str, dtype: str) -> str | None:
        why = super().kernel_unsupported(form, kernel, dtype)
        return why or (None if self.is_gpu() else gpu_only_reason("jax", kernel, self.device()))

    def _build_kernel(self, form: str, x: Any, precision: str, kernel: str) -> Built:
        """``dot_product_attention`` with ``implementation=kernel``, jitted with q and k as arguments.

        The attention matmuls take no precision argument: the mode is the default
        matmul precision while the function is traced. JAX refuses a case an
        implementation cannot take (cuDNN: dtype, head dimension; XLA on the CPU:
        float16) while lowering; that is a skipped case with JAX's words.
        """
        jax = self.jax
        q, k = jax_qk(x), jax_qk(x)
        fn = jax.jit(partial(self.forms[form], implementation=kernel))
        t0 = time.perf_counter()
        try:
            with jax_matmul_precision(precision, self.dtype_name(x)):
                compiled = fn.lower(q, k, x).compile()
        except (ValueError, NotImplementedError, RuntimeError) as e:
            # A refusal is a ValueError or NotImplementedError (XLA's CPU has no float16
            # dot with float32 accumulation); cuDNN also raises RuntimeError. XLA's
            # RuntimeErrors (out of memory, say) stay errors.
            if kernel == "xla" and isinstance(e, RuntimeError):
                raise
            first = (str(e).strip().splitlines() or [""])[0]
            raise CaseUnsupported(f"jax refuses the {kernel} kernel here: {type(e).__name__}: {first}") from None
        compile_s = time.perf_counter() - t0
        return Built(lambda: compiled(q, k, x), compile_s=compile_s)

    def sync(self, result: Any) -> None:
        result.block_until_ready()

    def set_threads(self, n: int | None) -> int | None:
        # jax 0.10's XLA sizes its CPU pools by the process's affinity when the backend
        # starts and ignores XLA_FLAGS' thread flags: pinning the worker is what sizes
        # them (suite.isolation), and a count that differs from the cores is not applied.
        return None if self.is_gpu() else len(os.sched_getaffinity(0))

    def thread_pools(self) -> dict[str, int]:
        if self.is_gpu():
            return {}
        self._device()  # starts the backend, and with it the Eigen pool
        return {"xla eigen": named_threads("tf_XLAEigen")}

    def cache_bytes(self) -> int:
        # JAX does not expose the L2 size; 50 MiB covers the H100's and H200's (NVIDIA's
        # published L2 sizes: 50 MiB), twice flushed by flush_bytes.
        return 50 * (1 << 20) if self.is_gpu() else 0

    def flush_cache(self) -> None:
        if not self.is_gpu():
            return
        import jax.numpy as jnp

        # A fresh fill of twice the L2 evicts whatever the previous call left there.
        jnp.zeros(flush_bytes(self.cache_bytes()), dtype=jnp.int8, device=self._device()).block_until_ready()

    def measure_ceilings(self) -> Ceilings | None:
        """Copy bandwidth and matmul rates on the GPU, timed with ``block_until_ready``.

        The matmul modes are torch's (``GPU_MATMUL_MODES``) but float64, which JAX
        computes only in x64 mode (``JAX_MATMUL_MODES``).

        None on the CPU (the harness measures the host). Host wall time includes
        a dispatch (tens of microseconds), so the buffers are large enough that
        it stays a few percent. Measured once per adapter.
        """
        return self._gpu_ceilings if self.is_gpu() else None

    @cached_property
    def _gpu_ceilings(self) -> Ceilings:
        jax = self.jax
        import jax.numpy as jnp

        dev = self._device()

        def copy_seconds() -> float:
            src = jax.device_put(jnp.ones(WALL_COPY_BYTES // 4, dtype=jnp.float32), dev)
            # x + 1 reads and writes every element once, as a copy does; a bare
            # copy might be elided by XLA.
            add_one = jax.jit(lambda a: a + 1)
            return best_seconds(lambda: add_one(src).block_until_ready(), CEILING_REPEATS)

        def matmul_seconds(n: int, dtype: str, precision: str) -> float:
            a = jax.device_put(jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype=getattr(jnp, dtype)), dev)
            matmul = jax.jit(partial(jnp.matmul, precision=lax_precision(precision)))
            return best_seconds(lambda: matmul(a, a).block_until_ready(), CEILING_REPEATS)

        return gpu_ceilings(
            device=self.device(),
            measured_by="jax",
            copy_op="x + 1 over",
            copy_bytes=WALL_COPY_BYTES,
            copy_seconds=copy_seconds,
            matmul_seconds=matmul_seconds,
            modes=JAX_MATMUL_MODES,
            clock="wall time",
            repeats=CEILING_REPEATS,
        )

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
