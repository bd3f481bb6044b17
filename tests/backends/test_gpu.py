"""GPU paths: device-event timing, precision modes, low-precision softmax, memory
statistics, and torch and JAX sharing one GPU in a run.

Every test here carries the ``gpu`` marker and skips cleanly without a CUDA GPU
(this project's CPU machines and CI). On the GPU machine, where python3 already
has torch, jax, pytest and pandas: ``python3 -m pytest -m gpu tests/backends/test_gpu.py``.
"""

from __future__ import annotations

import math

import pytest

from backends import get_backend
from suite.cases import Case, RunOptions
from suite.reference import tolerance
from suite.runner import run_case
from suite.session import run_cases
from suite.timing import TimerConfig


def _cuda_torch() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _gpu_jax() -> bool:
    try:
        import jax
    except ImportError:
        return False
    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False


pytestmark = pytest.mark.gpu
needs_torch_cuda = pytest.mark.skipif(not _cuda_torch(), reason="needs torch with a CUDA GPU")
needs_jax_gpu = pytest.mark.skipif(not _gpu_jax(), reason="needs jax with a GPU")

QUICK = TimerConfig(budget_s=0.2, warmup_s=0.02)
GPU_SHAPE = (8, 1024, 256)


@needs_torch_cuda
@pytest.mark.parametrize("name", ["torch", "torch-compile"])
def test_torch_times_with_cuda_events_beside_host_time(name: str) -> None:
    adapter = get_backend(name, "gpu")
    options = RunOptions(timer=TimerConfig(budget_s=0.2, warmup_s=0.02, device_events=True), device="gpu")
    row = run_case(Case(name, "cumsum", *GPU_SHAPE), adapter, options)
    assert row.status == "ok", row.reason
    assert row.device.startswith("cuda:")
    assert row.timer == "device-event"
    # Host time includes launch and synchronisation; events bracket the kernels only.
    assert math.isfinite(row.host_median_s) and row.median_s <= row.host_median_s * 1.05
    assert row.peak_mem_bytes >= 2 * 8 * 1024 * 256 * 4  # input and output at least


@needs_torch_cuda
def test_cold_cache_flushes_a_buffer_twice_the_l2() -> None:
    adapter = get_backend("torch", "gpu")
    l2 = adapter.cache_bytes()
    assert l2 >= 1 << 20  # every CUDA GPU since Kepler reports its L2
    adapter.flush_cache()
    assert getattr(adapter, "_flush_buf").numel() == 2 * l2  # noqa: B009 (set by flush_cache)
    options = RunOptions(timer=TimerConfig(budget_s=0.2, warmup_s=0.02, cold_cache=True), device="gpu")
    row = run_case(Case("torch", "cumsum", *GPU_SHAPE), adapter, options)
    assert row.status == "ok" and row.cold_cache and row.calls_per_sample == 1


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("torch", marks=needs_torch_cuda),
        pytest.param("jax", marks=needs_jax_gpu),
    ],
)
def test_tf32_is_its_own_mode_and_fails_float32_tolerance(name: str) -> None:
    adapter = get_backend(name, "gpu")
    options = RunOptions(timer=QUICK, measure=False, device="gpu")
    T = 4096
    ieee = run_case(Case(name, "matrix", 4, T, 256, precision="ieee"), adapter, options)
    tf32 = run_case(Case(name, "matrix", 4, T, 256, precision="tf32"), adapter, options)
    assert ieee.status == "ok" and ieee.rel_err <= tolerance("float32", "ieee", T)
    assert tf32.status == "ok" and tf32.tol == tolerance("float32", "tf32", T)
    # TF32 rounds inputs to 10 mantissa bits: about 3e-4 measured on an H100,
    # far outside what float32 is allowed.
    assert tf32.rel_err > tolerance("float32", "ieee", T)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize(
    "name",
    [
        pytest.param("torch", marks=needs_torch_cuda),
        pytest.param("jax", marks=needs_jax_gpu),
    ],
)
def test_low_precision_masked_softmax_gives_no_nan(name: str, dtype: str) -> None:
    adapter = get_backend(name, "gpu")
    row = run_case(Case(name, "softmax", 4, 1024, 64, dtype=dtype), adapter, RunOptions(measure=False, device="gpu"))
    # A NaN anywhere would make the row a mismatch naming the non-finite values.
    assert row.status == "ok", row.reason
    assert row.rel_err <= tolerance(dtype, "ieee", 1024)


@needs_jax_gpu
def test_jax_reports_peak_device_memory() -> None:
    adapter = get_backend("jax", "gpu")
    row = run_case(Case("jax", "matrix", *GPU_SHAPE), adapter, RunOptions(timer=QUICK, device="gpu"))
    assert row.status == "ok", row.reason
    assert row.peak_mem_bytes >= 1024 * 1024 * 4  # the T x T weights at least


@needs_jax_gpu
@needs_torch_cuda
def test_torch_and_jax_share_the_gpu_in_one_isolated_run() -> None:
    cases = [Case(b, f, *GPU_SHAPE) for b in ("jax", "torch", "jax") for f in ("matrix", "cumsum")]
    rows = list(run_cases(cases, RunOptions(timer=QUICK, device="gpu"), lambda r: None))
    assert [r.status for r in rows] == ["ok"] * len(cases), [r.reason for r in rows]
    assert all("cuda" in r.device.lower() or "gpu" in r.device.lower() for r in rows)


def test_without_a_gpu_gpu_cases_are_skipped_rows_with_the_reason() -> None:
    if _cuda_torch() and _gpu_jax():
        pytest.skip("this machine has a GPU")
    cases = [
        Case(b, "cumsum", 4, 8, 2) for b in ("torch", "jax") if not (_cuda_torch() if b == "torch" else _gpu_jax())
    ]
    rows = list(run_cases(cases, RunOptions(timer=QUICK, device="gpu", isolate=False), lambda r: None))
    assert rows and all(r.status == "skipped" for r in rows)
    assert all("GPU" in r.reason or "gpu" in r.reason for r in rows), [r.reason for r in rows]
