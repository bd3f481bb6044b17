"""run_case's status logic: a result outside tolerance is never timed; what each status carries.

The wrong results come from ``tests.fake_backends.OffByTolerance``: finite, off by a
chosen multiple of the case's tolerance (no overflow, unlike float16 mismatches).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from backends import REGISTRY
from backends.numpy_backend import NumpyBackend
from suite.cases import Case, RunOptions
from suite.cli import main
from suite.forms import get_form
from suite.guards import cost_model
from suite.reference import tolerance
from suite.results import load_run
from suite.runner import run_case
from suite.timing import TimerConfig
from tests.fake_backends import OFF_BY_ENV, OFF_PLUGIN, OffByTolerance

QUICK = TimerConfig(budget_s=0.02, warmup_s=0.005, min_sample_s=1e-3)


@pytest.fixture
def off(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The off-by-tolerance backend, registered here and for any child process."""
    monkeypatch.setenv("CAUSAL_BENCH_BACKENDS", OFF_PLUGIN)
    monkeypatch.setitem(REGISTRY, OffByTolerance.name, OffByTolerance)
    return monkeypatch


@pytest.mark.parametrize(("dtype", "T"), [("float32", 8), ("float32", 512), ("float64", 64)])
@pytest.mark.parametrize(("multiple", "status"), [(0.9, "ok"), (1.1, "mismatch"), (10.0, "mismatch")])
def test_a_finite_result_off_by_a_multiple_of_the_tolerance(off, dtype, T, multiple, status) -> None:
    off.setenv(OFF_BY_ENV, str(multiple))
    row = run_case(Case("off", "cumsum", 2, T, 3, dtype), OffByTolerance(), RunOptions(timer=QUICK))
    tol = tolerance(dtype, "ieee", T)
    assert row.tol == tol
    assert row.rel_err == pytest.approx(multiple * tol, rel=1e-6)
    assert math.isfinite(row.rel_err) and math.isfinite(row.max_abs_err)
    assert row.status == status
    if status == "ok":
        assert row.n_samples >= 3 and row.samples_s and row.median_s > 0
    else:  # never timed
        assert row.n_samples == 0 and row.samples_s == [] and math.isnan(row.median_s)
        assert row.reason == f"relative error {row.rel_err:.2e} exceeds tolerance {tol:.2e}"


@pytest.mark.parametrize(("multiple", "code"), [(0.9, 0), (1.1, 1), (10.0, 1)])
def test_run_exits_1_on_a_finite_mismatch(off, tmp_path: Path, capsys, multiple: float, code: int) -> None:
    off.setenv(OFF_BY_ENV, str(multiple))
    out = tmp_path / "run"
    argv = ["run", "--backends", "off", "--forms", "cumsum,matrix", "--sizes", "2x8x3", "--out", str(out)]
    assert main([*argv, "--budget", "0.02", "--warmup", "0.005", "--quiet", "--no-isolate", "--no-ceilings"]) == code
    _, rows = load_run(out)
    assert {r.status for r in rows} == {"ok" if code == 0 else "mismatch"}
    err = capsys.readouterr().err
    assert ("mismatch: off:cumsum:2x8x3" in err) == (code == 1)


def test_cold_cache_on_the_cpu_records_false_and_calibrates_as_usual() -> None:
    options = RunOptions(timer=TimerConfig(budget_s=0.02, warmup_s=0.005, min_sample_s=1e-3, cold_cache=True))
    row = run_case(Case("numpy", "cumsum", 2, 8, 3), NumpyBackend(), options)
    assert row.status == "ok"
    assert row.cold_cache is False
    assert row.calls_per_sample > 1  # a cold-cache timer takes one call per sample


class Raises(NumpyBackend):
    def build(self, form, x, precision):
        raise RuntimeError("boom\nsecond line")


class Refuses(NumpyBackend):
    def build(self, form, x, precision):
        from backends import CaseUnsupported

        raise CaseUnsupported("not this one")


def test_statuses_of_cases_that_do_not_reach_the_timer() -> None:
    options = RunOptions(timer=QUICK)
    case = Case("numpy", "cumsum", 2, 8, 3)
    error = run_case(case, Raises(), options)
    assert (error.status, error.reason) == ("error", "RuntimeError: boom")
    skipped = run_case(case, Refuses(), options)
    assert (skipped.status, skipped.reason) == ("skipped", "not this one")
    tf32 = run_case(Case("numpy", "cumsum", 2, 8, 3, precision="tf32"), NumpyBackend(), options)
    assert tf32.status == "skipped" and "tf32" in tf32.reason
    bad = run_case(Case("numpy", "cumsum", 2, 8, 3, input="file"), NumpyBackend(), options)
    assert bad.status == "error" and bad.reason.startswith("bad input: ")
    checked = run_case(case, NumpyBackend(), RunOptions(timer=QUICK, measure=False))
    assert checked.status == "ok" and checked.n_samples == 0 and checked.rel_err < checked.tol


class Noted(NumpyBackend):
    """Builds carry a note, as a cached Numba build does."""

    def build(self, form, x, precision):
        built = super().build(form, x, precision)
        return type(built)(built.fn, 0.25, "a note from the build")


class CompilesForever(NumpyBackend):
    def estimate_compile_s(self, form, shape, dtype):
        return 1e9, "a test's prediction"


def test_an_ok_row_carries_its_figures() -> None:
    case = Case("numpy", "cumsum", 2, 8, 3)
    t0 = time.perf_counter()
    row = run_case(case, Noted(), RunOptions(timer=QUICK), threads=2)
    elapsed = time.perf_counter() - t0
    # NumPy's scan runs serially: the row says the one thread it may use, not the pool's 2.
    assert row.status == "ok" and row.device == "cpu" and row.threads == 1
    assert row.compile_s == 0.25 and "a note from the build" in row.reason.split("; ")
    assert 0 < row.elapsed_s <= elapsed
    assert row.timer == "wall" and row.stop_reason and row.calls_per_sample >= 1
    assert row.gflops == row.flops / row.median_s / 1e9 and row.flops > 0
    assert row.gbs == row.bytes / row.median_s / 1e9 and row.bytes > 0
    checked = run_case(case, Noted(), RunOptions(timer=QUICK, measure=False))
    assert checked.status == "ok" and checked.reason == "a note from the build" and checked.threads == 1
    assert run_case(case, NumpyBackend(), RunOptions(timer=QUICK)).compile_s == 0


def test_a_guarded_case_is_skipped_with_the_guard_reason_and_never_built() -> None:
    row = run_case(Case("numpy", "cumsum", 2, 8, 3), CompilesForever(), RunOptions(timer=QUICK))
    assert row.status == "skipped"
    assert row.reason == "predicted compile 1000000000 s > limit 30 s (a test's prediction)"
    assert row.n_samples == 0 and math.isnan(row.rel_err)


def test_a_timed_case_feeds_the_cost_model_of_the_guard() -> None:
    case = Case("numpy", "loop", 2, 8, 3)
    model = cost_model(case)
    before = len(model.points)
    row = run_case(case, NumpyBackend(), RunOptions(timer=QUICK))
    form = get_form("loop")
    assert row.status == "ok"
    assert model.points[before:] == [(form.python_steps(2, 8), form.flops(2, 8, 3, 4), row.median_s)]


def test_the_case_is_timed_with_the_options_timer() -> None:
    exact = TimerConfig(budget_s=0.02, warmup_s=0.005, min_sample_s=1e-3, min_samples=3, max_samples=3)
    row = run_case(Case("numpy", "cumsum", 2, 8, 3), NumpyBackend(), RunOptions(timer=exact))
    assert row.status == "ok" and row.n_samples == 3 and len(row.samples_s) == 3


class SlowCalls(NumpyBackend):
    """Every call of a build sleeps ``seconds`` first and is counted."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.calls = 0

    def build(self, form, x, precision):
        built = super().build(form, x, precision)

        def fn():
            self.calls += 1
            time.sleep(self.seconds)
            return built.fn()

        return type(built)(fn, built.compile_s, built.notes)


def test_a_slow_case_makes_no_call_beyond_its_check_and_its_samples() -> None:
    """A check call longer than the warm-up is the warm-up, and the calibration block is the first sample."""
    adapter = SlowCalls(0.03)
    timer = TimerConfig(budget_s=1e-6, warmup_s=0.02, min_sample_s=0.01, min_samples=3)
    row = run_case(Case("numpy", "cumsum", 2, 8, 3), adapter, RunOptions(timer=timer))
    assert row.status == "ok" and row.n_samples == 3 and row.calls_per_sample == 1
    assert adapter.calls == 1 + 3  # was 1 + 1 (warm-up) + 1 (calibration) + 3
