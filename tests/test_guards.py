"""Guards (suite.guards) skip what would not fit or not finish, saying why, before any allocation."""

from __future__ import annotations

import time

from backends.numpy_backend import NumpyBackend
from suite.cases import Case, RunOptions
from suite.guards import PROBE_T, CallCostModel, _probe, cost_guard, memory_guard, probe_seconds
from suite.runner import run_case
from suite.timing import TimerConfig

QUICK = TimerConfig(budget_s=0.02, warmup_s=0.005, min_sample_s=1e-3)


class SmallDevice(NumpyBackend):
    """The NumPy adapter pretending to run on a device with 1 GiB free."""

    def memory_available(self) -> int | None:
        return 2**30


def test_memory_guard_skips_what_would_not_fit_on_the_host_with_both_figures() -> None:
    case = Case("numpy", "matrix", 1, 200_000, 1)  # two T x T float32 matrices: ~298 GiB
    row = run_case(case, NumpyBackend(), RunOptions(timer=QUICK))
    assert row.status == "skipped"
    assert row.reason.startswith("needs ~298.03 GiB of host memory, ")
    assert row.reason.endswith(" GiB usable")


def test_memory_guard_checks_the_device_pool_against_its_own_free_memory() -> None:
    case = Case("numpy", "softmax", 1, 16_384, 1)  # 3 float32 + 1 bool T x T: 3.25 GiB
    assert memory_guard(case, SmallDevice(), RunOptions()) == "needs ~3.25 GiB on cpu, 0.80 GiB usable"
    assert memory_guard(Case("numpy", "softmax", 1, 1024, 1), SmallDevice(), RunOptions()) is None


def test_cost_guard_skips_the_python_loop_at_t_65536_with_its_estimate() -> None:
    case = Case("numpy", "loop", 4, 65_536, 8)
    started = time.monotonic()
    why = cost_guard(case, NumpyBackend(), RunOptions(case_timeout_s=120))
    assert time.monotonic() - started < 10  # probes at small T, not the case itself
    assert why is not None and why.startswith("estimated ")
    assert "exceeds the per-case timeout 120 s" in why
    seconds = float(why.split()[1])
    assert seconds > 120


def test_cost_guard_lets_a_loop_that_fits_run() -> None:
    case = Case("numpy", "loop", 2, 1024, 4)  # 2048 Python steps: about 10 ms a call
    assert cost_guard(case, NumpyBackend(), RunOptions(case_timeout_s=120)) is None


class LuckyFirstCall(NumpyBackend):
    """Every call sleeps 5 ms except the first timed one of each build: one lucky probe call."""

    def build(self, form: str, x, precision: str):
        built = super().build(form, x, precision)
        calls = [0]

        def fn():
            calls[0] += 1
            if calls[0] != 2:  # call 1 is the untimed first call, call 2 the first timed one
                time.sleep(5e-3)
            return built.fn()

        return type(built)(fn, built.compile_s, built.notes)


def test_the_probe_takes_the_median_of_several_calls_not_one_lucky_call() -> None:
    model = CallCostModel()
    _probe(Case("numpy", "loop", 1, 2048, 4), LuckyFirstCall(), model)
    assert len(model.points) == len(PROBE_T)
    # A single timed call would have recorded the lucky, sleep-free call.
    assert all(seconds >= 5e-3 for _, _, seconds in model.points)
    assert probe_seconds([1.0, 9.0, 2.0, 3.0, 0.1]) == 2.0
