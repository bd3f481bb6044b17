"""Every backend computes every form and agrees with the float64 reference."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backends import PLUGINS_ENV, REGISTRY, Backend, Built, CaseUnsupported
from suite.cases import Case, RunOptions
from suite.forms import form_names
from suite.reference import make_input, reference
from suite.runner import run_case
from tests.conftest import adapter_or_skip

# The compile guard has its own tests (test_compile_model): here every case is checked, even
# where a compile model fitted on a busy machine would predict a long compile.
CHECK_ONLY = RunOptions(measure=False, isolate=False, compile_limit_s=600)
ROOT = Path(__file__).resolve().parents[2]


def check(adapter: Backend, form: str, shape: tuple[int, int, int], dtype: str = "float32", kind: str = "normal"):
    row = run_case(Case(adapter.name, form, *shape, dtype=dtype, input=kind), adapter, CHECK_ONLY)
    return row


def compile_heavy(name: str, form: str, shape: tuple[int, int, int]) -> bool:
    """torch.compile unrolls the loop: keep it to sizes that compile in seconds (test_compile_model)."""
    return name == "torch-compile" and form == "loop" and shape[0] * shape[1] > 64


def implemented(shapes: tuple[tuple[int, int, int], ...] = ((4, 8, 2),)) -> list[tuple[str, str]]:
    """(backend, form) pairs each backend implements, all ``shapes`` cheap to build: left out, not skipped."""
    return [
        (name, form)
        for name, cls in REGISTRY.items()
        for form in form_names()
        if form not in cls.unimplemented_forms and not any(compile_heavy(name, form, s) for s in shapes)
    ]


@pytest.mark.parametrize(("name", "form"), implemented())
def test_notebook_example_agrees(name: str, form: str) -> None:
    """The notebook's B, T, C = 4, 8, 2 with seed 1337, on every backend and form."""
    backend = adapter_or_skip(name)
    row = check(backend, form, (4, 8, 2))
    assert row.status == "ok", row.reason
    assert row.rel_err < 1e-6
    assert row.tol == pytest.approx(5 * np.finfo(np.float32).eps * np.sqrt(8))


def test_notebook_loop_matrix_softmax_allclose_in_torch() -> None:
    """The notebook itself: torch.manual_seed(1337); x = randn(4, 8, 2); three forms agree."""
    adapter_or_skip("torch")
    import torch

    from backends import torch_eager

    torch.manual_seed(1337)
    x = torch.randn(4, 8, 2)
    xbow = torch_eager.loop(x)
    # assert_close's float32 defaults (rtol 1.3e-6, atol 1e-5); the notebook's
    # allclose(atol=1e-8) hinges on which BLAS kernel ran for near-zero entries.
    torch.testing.assert_close(torch_eager.matrix(x), xbow)
    torch.testing.assert_close(torch_eager.softmax(x), xbow)
    torch.testing.assert_close(torch_eager.cumsum(x), xbow)
    # And the first position sees only itself, the last sees everything.
    assert torch.equal(xbow[:, 0], x[:, 0])
    assert torch.allclose(xbow[:, -1], x.mean(1))


ADVERSARIAL = (
    ((1, 64, 8), "normal"),  # B = 1
    ((4, 64, 1), "normal"),  # C = 1
    ((4, 1, 8), "normal"),  # T = 1
    ((2, 1000, 4), "offset"),  # T not a power of two, large common offset
    ((1, 4097, 2), "offset"),
)


@pytest.mark.parametrize(
    ("name", "form", "shape", "kind"),
    [(n, f, s, k) for s, k in ADVERSARIAL for n, f in implemented((s,))],
)
def test_adversarial_inputs_agree(name: str, form: str, shape: tuple[int, int, int], kind: str) -> None:
    backend = adapter_or_skip(name)
    row = check(backend, form, shape, kind=kind)
    assert row.status == "ok", row.reason
    assert row.rel_err <= row.tol
    assert np.isfinite(row.max_abs_err)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_shapes_agree(backend: Backend, seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 4)), int(rng.integers(1, 200)), int(rng.integers(1, 17)))
    forms = [f for n, f in implemented((shape,)) if n == backend.name]
    for form in forms:
        row = check(backend, form, shape)
        assert row.status == "ok", f"{form} {shape}: {row.reason}"


def test_float64_is_near_exact(backend: Backend) -> None:
    if backend.name == "torch-compile":
        pytest.skip("same kernels as torch eager; spares a compile")
    row = check(backend, "cumsum", (2, 300, 3), dtype="float64")
    assert row.status == "ok", row.reason
    assert row.rel_err < 1e-13


def test_round_trip_and_result_values(backend: Backend) -> None:
    """to_device/to_numpy keep values, and the result is the causal mean itself."""
    x = make_input((2, 5, 3))
    dev = backend.to_device(x, "float64")
    np.testing.assert_array_equal(backend.to_numpy(dev), x)
    form = next(f for f in ("matrix", "cumsum") if f not in backend.unimplemented_forms)
    built = backend.build(form, dev, "ieee")
    out = built.fn()
    backend.sync(out)
    y = backend.to_numpy(out)
    np.testing.assert_allclose(y[:, 2], x[:, :3].mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(y, reference(x), rtol=1e-12)


def test_adapter_reports_device_and_versions(backend: Backend) -> None:
    # "cpu (triton interpreter)" names the CPU and says the timings are not native.
    assert backend.device().startswith(("cpu", "cuda"))
    versions = backend.versions()
    assert versions and all(isinstance(v, str) and v for v in versions.values())


def test_tf32_refused_on_cpu_and_for_non_float32(backend: Backend) -> None:
    if backend.is_gpu():
        pytest.skip("tf32 runs on a GPU")
    if "matrix" in backend.unimplemented_forms:  # nothing to refuse: supports() names the form instead
        assert "does not implement matrix" in (backend.supports("matrix", "float32", "tf32") or "")
        return
    reason = backend.supports("matrix", "float32", "tf32")
    assert reason is not None and "GPU" in reason
    assert "float32 only" in (backend.supports("matrix", "float64", "tf32") or "")
    row = run_case(Case(backend.name, "matrix", 4, 8, 2, precision="tf32"), backend, CHECK_ONLY)
    assert row.status == "skipped" and "tensor-core" in row.reason


def test_build_refuses_unknown_form(backend: Backend) -> None:
    x = backend.to_device(make_input((1, 4, 1)), "float32")
    with pytest.raises((CaseUnsupported, KeyError)):
        backend.build("fft", x, "ieee")


def test_compile_time_is_recorded_apart(backend: Backend) -> None:
    x = backend.to_device(make_input((2, 16, 4)), "float32")
    built = backend.build("cumsum", x, "ieee")
    if backend.name == "numba" and np.isnan(built.compile_s):  # compiled by an earlier test of this process
        assert "cached" in built.notes
    elif backend.name in ("torch-compile", "jax", "numba", "triton"):
        assert built.compile_s > 0
    else:
        assert built.compile_s == 0


def test_numpy_refuses_bfloat16() -> None:
    adapter = adapter_or_skip("numpy")
    row = run_case(Case("numpy", "cumsum", 2, 8, 2, dtype="bfloat16"), adapter, CHECK_ONLY)
    assert row.status == "skipped" and "bfloat16" in row.reason


@pytest.mark.parametrize("name", ["torch", "jax"])
def test_low_precision_has_its_own_tolerance(name: str) -> None:
    adapter = adapter_or_skip(name)
    row = run_case(Case(name, "cumsum", 2, 64, 4, dtype="bfloat16"), adapter, CHECK_ONLY)
    assert row.status == "ok", row.reason
    assert row.tol == pytest.approx(4e-2)
    assert row.rel_err > 1e-4  # bf16 really is coarse: the tolerance is not decoration


def test_float16_offset_cumsum_overflow_is_a_mismatch() -> None:
    """1e4 * 8 positions exceeds float16's 65504: the sum overflows and must not pass."""
    adapter = adapter_or_skip("numpy")
    row = run_case(Case("numpy", "cumsum", 1, 8, 2, dtype="float16", input="offset"), adapter, CHECK_ONLY)
    assert row.status == "mismatch"
    assert "non-finite" in row.reason


def test_unimplemented_forms_are_skipped_rows_with_the_reason(backend: Backend) -> None:
    for form in form_names():
        row = check(backend, form, (2, 8, 2))
        if form in backend.unimplemented_forms:
            assert row.status == "skipped"
            assert f"does not implement {form}" in row.reason
            assert backend.unimplemented_forms[form] in row.reason
        else:
            assert row.status == "ok", f"{form}: {row.reason}"


@pytest.mark.parametrize("name", ["numpy", "torch", "torch-compile", "jax"])
def test_chunked_handles_t_not_a_multiple_of_the_block(name: str) -> None:
    """T = 2K + 3 and T < K: the padded tail and the single short block agree."""
    adapter = adapter_or_skip(name)
    blocks = getattr(adapter, "chunk_block", {"cpu": 32})
    K = blocks["cpu"]
    for shape in ((2, 2 * K + 3, 5), (3, K - 1, 2), (1, K, 1)):
        row = check(adapter, "chunked", shape, kind="offset")
        assert row.status == "ok", f"{shape}: {row.reason}"
        assert row.rel_err <= row.tol


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["torch", "torch-compile", "jax"])
def test_chunked_stays_ieee_under_tf32_on_gpu(name: str) -> None:
    """TF32 would round x to 10 mantissa bits inside the block matmul; the form must not let it."""
    adapter = adapter_or_skip(name)
    if not adapter.is_gpu():
        pytest.skip("needs a CUDA GPU")
    row = run_case(Case(name, "chunked", 4, 4096, 64, precision="tf32", input="offset"), adapter, CHECK_ONLY)
    assert row.status == "ok", row.reason
    assert row.rel_err < 5 * np.finfo(np.float32).eps * np.sqrt(4096)  # the IEEE float32 tolerance


def test_cold_cache_flush_is_sized_by_the_cache() -> None:
    from backends._common import flush_bytes

    h100_l2 = 50 * 2**20
    assert flush_bytes(h100_l2) == 100 * 2**20
    assert flush_bytes(0) == 2**20  # a device that reports no cache still gets a flush
    assert flush_bytes(256 * 2**10) == 2**20


@pytest.mark.parametrize("name", ["torch", "jax"])
def test_no_flush_and_no_cache_on_the_cpu(name: str) -> None:
    adapter = adapter_or_skip(name)
    if adapter.is_gpu():
        pytest.skip("this machine has a GPU")
    assert adapter.cache_bytes() == 0
    adapter.flush_cache()  # a no-op on the host: nothing allocated
    assert getattr(adapter, "_flush_buf", None) is None


def test_tf32_cases_of_forms_without_a_tf32_matmul_are_skipped_not_repeated() -> None:
    from backends.numpy_backend import NumpyBackend

    class AcceptsTf32(NumpyBackend):  # as a GPU adapter would
        def supports(self, form: str, dtype: str, precision: str) -> str | None:
            return None

    for form in ("cumsum", "chunked", "loop"):
        row = run_case(Case("numpy", form, 4, 8, 2, precision="tf32"), AcceptsTf32(), CHECK_ONLY)
        assert row.status == "skipped" and row.reason == f"tf32 changes matmul forms only; {form} runs as ieee"
    row = run_case(Case("numpy", "matrix", 4, 8, 2, precision="tf32"), AcceptsTf32(), CHECK_ONLY)
    assert row.status == "ok"  # NumPy's matmul is IEEE anyway: well within the tf32 tolerance


def test_build_refuses_with_the_supports_reason_before_the_adapter_builds() -> None:
    from backends.numpy_backend import NumpyBackend

    class Recording(NumpyBackend):
        def __init__(self) -> None:
            super().__init__()
            self.built: list[str] = []

        def _build(self, form: str, x, precision: str) -> Built:
            self.built.append(form)
            return super()._build(form, x, precision)

    adapter = Recording()
    x = adapter.to_device(make_input((1, 4, 1)), "float32")
    with pytest.raises(CaseUnsupported, match="tf32 is a GPU tensor-core mode"):
        adapter.build("matrix", x, "tf32")
    with pytest.raises(CaseUnsupported, match=r"^numpy does not implement form 'fft'$"):
        adapter.build("fft", x, "ieee")
    assert adapter.built == []
    adapter.build("cumsum", x, "ieee")
    assert adapter.built == ["cumsum"]


def test_numba_refuses_a_form_it_does_not_implement_by_name() -> None:
    from backends.numba_backend import NumbaBackend

    adapter = NumbaBackend()
    assert adapter.supports("fft", "float32", "ieee") == "numba does not implement form 'fft'"
    assert adapter.supports("matrix", "float32", "ieee") == (
        "numba does not implement matrix: matmul forms are left to the BLAS-backed backends"
    )
    assert adapter.supports("cumsum", "float32", "ieee") is None


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_dtype_name_reads_back_what_to_device_made(backend: Backend, dtype: str) -> None:
    if backend.supports("cumsum", dtype, "ieee") is not None:
        pytest.skip(f"{backend.name} does not run {dtype}")
    x = backend.to_device(make_input((1, 4, 2)), dtype)
    assert backend.dtype_name(x) == dtype


def test_a_plugin_backend_brings_a_form_no_other_backend_knows() -> None:
    """One module and one CAUSAL_BENCH_BACKENDS entry: a new backend and a new form name."""
    from tests.backends.plugin_form import PLUGIN

    code = """
import numpy as np
from backends import REGISTRY, get_backend
from suite.reference import make_input, reference
adapter = get_backend("accumulating")
x = adapter.to_device(make_input((2, 9, 3)), "float64")
np.testing.assert_allclose(adapter.to_numpy(adapter.build("accumulate", x, "ieee").fn()), reference(x), rtol=1e-12)
print(adapter.supports("cumsum", "float64", "ieee"))
print(get_backend("numpy").supports("accumulate", "float64", "ieee"))
"""
    env = {**os.environ, PLUGINS_ENV: PLUGIN}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "accumulating does not implement form 'cumsum'",
        "numpy does not implement form 'accumulate'",
    ]


def test_gpu_ceilings_from_a_timed_copy_and_matmuls() -> None:
    from backends._cuda import GPU_MATMUL_N, gpu_ceilings

    n = GPU_MATMUL_N
    rates = {"ieee": 50e12, "tf32": 400e12}  # FLOP/s
    ceilings = gpu_ceilings(
        device="cuda:0 (test)",
        measured_by="test",
        copy_op="copy_ of",
        copy_bytes=512 << 20,
        copy_seconds=lambda: 1e-3,
        matmul_seconds=lambda n, dtype, precision: 2.0 * n**3 / rates[precision],
        modes=(("float32", "ieee"), ("float32", "tf32")),
        clock="CUDA events",
        repeats=5,
    )
    assert ceilings.copy_gbs == pytest.approx(2 * (512 << 20) / 1e-3 / 1e9)
    assert ceilings.matmul_gflops == pytest.approx({"float32:ieee": 50e3, "float32:tf32": 400e3})
    assert ceilings.notes == f"copy_ of 512 MiB and {n}^3 matmuls, CUDA events, best of 5"
    assert (ceilings.device, ceilings.measured_by) == ("cuda:0 (test)", "test")
