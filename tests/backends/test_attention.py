"""The attention form: every kernel a CPU offers agrees with the reference; the others are skipped rows."""

from __future__ import annotations

import numpy as np
import pytest

from backends import Backend, CaseUnsupported
from backends._attention import torch_ran
from backends._common import KINETO_LINE
from suite.cases import Case, RunOptions
from suite.forms import get_form
from suite.guards import memory_guard
from suite.reference import make_input, reference, tolerance
from suite.results import Row
from suite.runner import run_case
from suite.timing import TimerConfig
from tests.conftest import adapter_or_skip

CHECK_ONLY = RunOptions(measure=False, isolate=False, device="cpu")
TIMED = RunOptions(
    timer=TimerConfig(budget_s=0.05, min_samples=3, max_samples=3, warmup_s=0.0), isolate=False, device="cpu"
)

#: The kernels each backend runs on a CPU, and those it refuses there (with a word of the reason).
CPU_KERNELS: dict[str, tuple[str, ...]] = {
    "torch": ("auto", "flash", "math"),
    # Inductor picks flash or its own matmuls and softmax by shape, whatever the pin:
    # test_torch_compile_runs_a_pinned_kernel_only_where_inductor_keeps_it.
    "torch-compile": ("auto",),
    "jax": ("xla",),
}
CPU_REFUSED: dict[str, dict[str, str]] = {
    "torch": {"efficient": "needs a CUDA GPU", "cudnn": "needs a CUDA GPU"},
    # Inductor lowers SDPA to its own matmuls and softmax on the CPU, whatever the pin.
    "torch-compile": {"efficient": "needs a CUDA GPU", "cudnn": "needs a CUDA GPU"},
    "jax": {"cudnn": "needs a CUDA GPU"},
}


@pytest.fixture(autouse=True)
def _no_inductor_disk_cache():
    """Compile afresh in every test: Inductor's on-disk graph cache does not key on the
    ``sdpa_kernel`` pin, so a graph compiled under one pin (here or by an earlier run on
    this machine) would be served under another, and what ran would depend on history."""
    try:
        import torch._dynamo
        import torch._inductor.config
    except ImportError:  # torch absent: its cases skip on their own
        yield
        return
    torch._dynamo.reset()
    with torch._inductor.config.patch(fx_graph_cache=False):
        yield
    torch._dynamo.reset()


def cpu_adapter(name: str) -> Backend:
    adapter = adapter_or_skip(name)
    if adapter.is_gpu():
        pytest.skip("these expectations are the CPU's; scripts/gpu_check.sh checks the GPU kernels")
    return adapter


def attention(
    name: str, shape: tuple[int, int, int], kernel: str, dtype: str = "float32", input: str = "normal"
) -> Row:
    case = Case(name, "attention", *shape, dtype=dtype, input=input, kernel=kernel)
    return run_case(case, cpu_adapter(name), CHECK_ONLY)


@pytest.mark.parametrize(("name", "kernel"), [(n, k) for n, ks in CPU_KERNELS.items() for k in ks])
@pytest.mark.parametrize("T", [1, 97, 4097])
@pytest.mark.parametrize("kind", ["normal", "offset"])
def test_every_cpu_kernel_agrees_with_the_reference(name: str, kernel: str, T: int, kind: str) -> None:
    row = attention(name, (2, T, 3), kernel, input=kind)
    assert row.status == "ok", row.reason
    assert row.kernel == kernel
    assert row.rel_err <= row.tol


@pytest.mark.parametrize(("name", "kernel"), [(n, k) for n, ks in CPU_REFUSED.items() for k in ks])
def test_an_unavailable_kernel_is_a_skipped_row_with_its_reason(name: str, kernel: str) -> None:
    row = attention(name, (2, 8, 2), kernel)
    assert row.status == "skipped"
    assert CPU_REFUSED[name][kernel] in row.reason
    assert row.kernel == kernel and row.key.endswith(f":{kernel}")


@pytest.mark.parametrize("shape", [(2, 1, 3), (2, 97, 3), (2, 4097, 3), (2, 97, 8)])
def test_torch_compile_runs_a_pinned_kernel_only_where_inductor_keeps_it(shape: tuple[int, int, int]) -> None:
    """On the CPU Inductor calls torch's flash kernel or emits its own matmuls and softmax, whatever
    ``sdpa_kernel`` pins; which one depends on the shape and on Inductor's state, so the test holds
    the invariant, not the choice: a pin is an ok row only where that kernel ran, else a skipped row
    naming what ran instead; and at least one of the two pins runs."""
    rows = {kernel: attention("torch-compile", shape, kernel) for kernel in ("flash", "math")}
    for kernel, row in rows.items():
        other = "math" if kernel == "flash" else "flash"
        if row.status == "ok":
            assert row.rel_err <= row.tol
            assert "does not run" not in row.reason
        else:
            assert row.status == "skipped", row.reason
            assert f"torch.compile on cpu does not run the {kernel} kernel: it ran {other}" in row.reason
    assert "ok" in {row.status for row in rows.values()}


def test_torch_refusing_a_pinned_kernel_is_case_unsupported_with_torchs_words() -> None:
    """Past the static guard, a kernel torch refuses for the input raises CaseUnsupported, not RuntimeError."""
    adapter = cpu_adapter("torch")
    from backends._attention import pin_sdpa, torch_check, torch_inputs

    qkv = torch_inputs(adapter.to_device(make_input((1, 8, 2)), "float32"))
    try:
        pin_sdpa("efficient")  # no CPU kernel: SDPA finds no viable backend
        with pytest.raises(CaseUnsupported, match=r"torch refuses the efficient kernel here: .*No viable backend"):
            torch_check("efficient", *qkv)
    finally:
        pin_sdpa("auto")


@pytest.mark.parametrize(("name", "kernel"), [("torch", "flash"), ("torch", "math"), ("jax", "xla")])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_kernels_run_with_their_own_tolerance(name: str, kernel: str, dtype: str) -> None:
    row = attention(name, (2, 97, 8), kernel, dtype=dtype)
    if (name, dtype) == ("jax", "float16"):
        # XLA's CPU has no float16 matmul accumulating in float32, which the xla implementation asks for.
        assert row.status == "skipped" and "not supported by dot_general on CPU" in row.reason
        return
    assert row.status == "ok", row.reason
    assert row.tol == tolerance(dtype, "ieee", 97) > tolerance("float32", "ieee", 97)
    assert row.rel_err > 1e-5  # computed in half precision, not silently in float32


def test_auto_records_the_kernel_torch_picked() -> None:
    row = run_case(Case("torch", "attention", 2, 64, 4), cpu_adapter("torch"), TIMED)
    assert row.status == "ok", row.reason
    assert row.kernel == "auto"
    assert "auto ran flash (torch._fused_sdp_choice)" in row.reason


def test_auto_under_torch_compile_records_what_inductor_ran() -> None:
    row = run_case(Case("torch-compile", "attention", 2, 97, 8), cpu_adapter("torch-compile"), TIMED)
    assert row.status == "ok", row.reason
    # Inductor's pick depends on the shape and its state; the row names the one that ran.
    assert "auto ran math (Inductor's own matmuls and softmax" in row.reason or "auto ran flash" in row.reason


def test_a_pin_leaves_later_auto_cases_free() -> None:
    """After a math case, auto goes back to torch's own choice (the pin is released)."""
    adapter = cpu_adapter("torch")
    x = adapter.to_device(make_input((1, 16, 2)), "float32")
    adapter.build_kernel("attention", x, "ieee", "math")
    built = adapter.build_kernel("attention", x, "ieee", "auto")
    assert built.notes == "auto ran flash (torch._fused_sdp_choice)"
    np.testing.assert_allclose(adapter.to_numpy(built.fn()), reference(adapter.to_numpy(x)), rtol=1e-5)


def test_build_without_a_kernel_takes_the_librarys_choice() -> None:
    adapter = cpu_adapter("jax")
    x = adapter.to_device(make_input((1, 5, 2)), "float32")
    np.testing.assert_allclose(adapter.to_numpy(adapter.build("attention", x, "ieee").fn()), reference(x), rtol=1e-5)
    assert Case("jax", "attention", 1, 5, 2).kernel == "xla"
    assert Case("torch", "attention", 1, 5, 2).kernel == "auto"


@pytest.mark.parametrize("name", ["numpy", "numba", "triton"])
def test_other_adapters_refuse_attention_with_a_reason(name: str) -> None:
    adapter = adapter_or_skip(name)
    row = run_case(Case(name, "attention", 2, 8, 2), adapter, CHECK_ONLY)
    assert row.status == "skipped" and row.kernel == ""
    assert f"does not implement attention: {adapter.unimplemented_forms['attention']}" in row.reason


def test_a_kernel_the_backend_does_not_offer_is_refused() -> None:
    adapter = cpu_adapter("jax")
    row = run_case(Case("jax", "attention", 1, 8, 2, kernel="flash"), adapter, CHECK_ONLY)
    assert row.status == "skipped" and "jax has no attention kernel 'flash'; it offers xla, cudnn" in row.reason
    row = run_case(Case("jax", "cumsum", 1, 8, 2, kernel="xla"), adapter, CHECK_ONLY)
    assert row.status == "skipped" and "no kernel choice for cumsum" in row.reason


def test_the_memory_guard_knows_fused_kernels_hold_no_t_by_t_matrix() -> None:
    """At B=8, T=2^19, C=64 the scores alone are ~26 TB: math is skipped with both figures, flash fits."""
    adapter = cpu_adapter("torch")
    form = get_form("attention")
    B, T, C = 8, 2**19, 64
    assert form.peak_bytes(B, T, C, 4, "flash") == pytest.approx(4 * B * T * C * 4 + 4 * B * T)
    assert form.peak_bytes(B, T, C, 4, "math") > 3 * B * T * T * 4
    assert form.peak_bytes(B, T, C, 4, "auto") == form.peak_bytes(B, T, C, 4, "math")  # auto may fall back
    why = memory_guard(Case("torch", "attention", B, T, C, kernel="math"), adapter, CHECK_ONLY)
    assert why is not None and "needs ~" in why and "usable" in why
    assert memory_guard(Case("torch", "attention", B, T, C, kernel="flash"), adapter, CHECK_ONLY) is None


def test_cost_model_counts_the_causal_half_of_qk_and_pv() -> None:
    form = get_form("attention")
    B, T, C = 2, 4096, 64
    visible = T * (T + 1) / 2
    assert form.flops(B, T, C, 4) == pytest.approx(B * visible * (4 * C + 4))
    assert form.min_bytes(B, T, C, 4) == 4 * B * T * C * 4  # q, k, v read, out written
    assert form.uses_matmul


def test_the_profiler_probe_prints_nothing_but_what_else_is_written(capfd: pytest.CaptureFixture[str]) -> None:
    """libkineto's start/stop lines are dropped from stderr; any other line written meanwhile passes."""
    adapter_or_skip("torch")
    import sys

    import torch

    def call() -> None:
        torch.ones(4).sum()
        sys.stderr.write("a line of the caller's own\n")

    assert torch_ran(call) == ""
    err = capfd.readouterr().err
    assert "profiler_start" not in err and "USDT:" not in err
    assert "a line of the caller's own" in err


def test_kineto_lines_are_recognised() -> None:
    assert KINETO_LINE.match(
        "USDT:2026-11-27 08:56:04 25493:25493 SyncActivityProfilerHandler.cpp:52] profiler_start\n"
    )
    assert KINETO_LINE.match("STAGE:2026-11-27 08:58:28 26031:26031 SyncActivityProfilerHandler.cpp:51] Completed\n")
    assert not KINETO_LINE.match("USDT: a user's line\n")
    assert not KINETO_LINE.match("RuntimeError: something else\n")
