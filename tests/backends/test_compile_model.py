"""torch.compile unrolls the loop: a measured model of compile time refuses huge sizes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backends._common import CompileModel
from backends.numpy_backend import NumpyBackend
from backends.torch_compile import TorchCompileBackend
from suite.cases import Case, RunOptions
from suite.guards import compile_guard
from suite.runner import run_case
from tests.conftest import adapter_or_skip


def test_fit_recovers_a_power_law() -> None:
    model = CompileModel()
    for steps in (4, 16, 64, 256):
        model.add(steps, 0.05 * steps**1.3)
    a, k = model.fit()
    assert a == pytest.approx(0.05, rel=1e-9)
    assert k == pytest.approx(1.3, rel=1e-9)
    assert model.predict(2048) == pytest.approx(0.05 * 2048**1.3, rel=1e-9)
    assert "from 4 measured compiles" in model.describe()


def test_fit_never_extrapolates_sublinearly() -> None:
    """Noisy small compiles can look flat; an unrolled graph is at least linear."""
    model = CompileModel([(4, 1.0), (16, 1.2)])
    a, k = model.fit()
    assert k == 1.0
    assert a == pytest.approx(math.exp((math.log(1.0 / 4) + math.log(1.2 / 16)) / 2))


def test_fit_needs_two_sizes() -> None:
    with pytest.raises(ValueError, match="two or more sizes"):
        CompileModel([(8, 1.0), (8, 1.1)]).fit()


def torch_compile_or_skip() -> TorchCompileBackend:
    adapter = adapter_or_skip("torch-compile")
    assert isinstance(adapter, TorchCompileBackend)
    return adapter


class _Predicts(NumpyBackend):
    def estimate_compile_s(self, form, shape, dtype):
        return (float(shape[0] * shape[1]), "fit by hand")


def test_guard_skips_with_the_prediction_in_the_reason() -> None:
    options = RunOptions(measure=False, isolate=False, compile_limit_s=100)
    adapter = _Predicts()
    assert compile_guard(Case("numpy", "loop", 2, 40, 1), adapter, options) is None
    reason = compile_guard(Case("numpy", "loop", 4, 40, 1), adapter, options)
    assert reason == "predicted compile 160 s > limit 100 s (fit by hand)"
    row = run_case(Case("numpy", "loop", 4, 40, 1), adapter, options)
    assert row.status == "skipped" and row.reason == reason


@pytest.mark.slow
def test_torch_compile_loop_is_refused_at_large_sizes_from_measured_compiles() -> None:
    adapter = torch_compile_or_skip()
    adapter.compile_models.clear()
    assert adapter.estimate_compile_s("cumsum", (8, 1024, 256), "float32") is None
    options = RunOptions(measure=False, isolate=False, compile_limit_s=30)
    small = run_case(Case("torch-compile", "loop", 2, 4, 2), adapter, options)
    assert small.status == "ok", small.reason
    assert small.compile_s > 0
    big = run_case(Case("torch-compile", "loop", 8, 1024, 256), adapter, options)
    assert big.status == "skipped"
    assert "predicted compile" in big.reason and "measured compiles" in big.reason
    model = adapter.compile_models["loop"]
    assert model.distinct_steps() >= 2  # the probes ran and were measured
    assert all(seconds > 0 for _, seconds in model.points)


def test_a_compile_served_from_the_inductor_cache_does_not_teach_the_model() -> None:
    adapter = torch_compile_or_skip()
    x = adapter.to_device(np.zeros((1, 3, 2)), "float32")
    adapter.build("loop", x, "ieee")  # cold, or cached by an earlier run: either way now cached
    points = list(adapter.compile_models["loop"].points)
    again = adapter.build("loop", x, "ieee")  # the same graph: Inductor's cache serves it
    assert again.notes == "graph served from the Inductor cache"
    assert adapter.compile_models["loop"].points == points
