"""Contention: the monitor's arithmetic, the wait/flag/fail policy, and a real bounded CPU hog."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import namedtuple
from collections.abc import Callable, Iterator

import pytest

from backends import get_backend
from suite import contention
from suite.cases import Case, RunOptions
from suite.contention import CpuMonitor, Usage, _busy, cores_available, measure_watched, usage_from
from suite.runner import run_case
from suite.timing import TimerConfig

CORES = 2


def usage(foreign: float, threads: int = 1, steal: float = 0.0) -> Usage:
    return Usage(wall_s=0.5, foreign=foreign, steal=steal, own=1.0, cores=CORES, threads=threads)


class FakeMonitors:
    """A monitor factory whose windows report the given foreign loads in turn (the last repeats)."""

    def __init__(self, *foreign: float, threads: int = 1) -> None:
        self.foreign = list(foreign)
        self.threads = threads
        self.windows = 0

    def __call__(self) -> FakeMonitors:
        return self

    def start(self) -> None:
        pass

    def stop(self) -> Usage:
        f = self.foreign[min(self.windows, len(self.foreign) - 1)]
        self.windows += 1
        return usage(f, self.threads)


def counter() -> tuple[list[int], Callable[[], int]]:
    calls: list[int] = []

    def measure() -> int:
        calls.append(len(calls))
        return len(calls)

    return calls, measure


def test_usage_is_contended_when_threads_and_foreign_load_exceed_the_cores() -> None:
    assert not usage(0.9, threads=1).contended  # 1 + 0.9 fits 2 cores (with the margin)
    assert usage(1.5, threads=1).contended
    assert usage(0.5, threads=2).contended  # every core is the case's own
    assert usage(0.0, threads=1, steal=0.3).contended  # the hypervisor took a third of a core
    assert "foreign load 1.50 cores + 1 threads > 2 cores" in usage(1.5).describe()


def test_a_parallel_runtime_waiting_for_a_core_the_hog_holds_is_contended() -> None:
    # Two threads may run; they used 0.9 cores because one waited at every region for the
    # core a hog held (1.0 of 2): what it used hides the contention, what it may use shows it.
    seen = usage_from(wall_s=0.5, busy_s=(0.9 + 1.0) * 0.5, steal_s=0.0, own_s=0.9 * 0.5, cores=2, threads=2)
    assert seen.foreign == pytest.approx(1.0) and seen.own == pytest.approx(0.9)
    assert seen.threads == 2 and seen.contended


def test_a_one_thread_case_beside_a_hog_on_the_other_core_is_not_contended() -> None:
    seen = usage_from(wall_s=0.5, busy_s=(1.0 + 1.0) * 0.5, steal_s=0.0, own_s=1.0 * 0.5, cores=2, threads=1)
    assert seen.foreign == pytest.approx(1.0) and seen.threads == 1 and not seen.contended


def test_threads_beyond_the_cores_need_every_core_and_unknown_threads_need_all() -> None:
    assert usage_from(1.0, 0.0, 0.0, 0.0, cores=2, threads=8).threads == 2
    assert usage_from(1.0, 0.0, 0.0, 0.0, cores=2, threads=0).threads == 2


def test_a_pinned_monitor_counts_only_its_own_cores() -> None:
    Times = namedtuple("Times", "user nice system idle irq softirq steal")
    per_cpu = [Times(3.0, 0, 1.0, 0, 0, 0, 0.5), Times(1.0, 0, 0.5, 9, 0, 0, 0.25)]
    assert _busy(per_cpu, {1}) == (1.5, 0.25)
    assert _busy(per_cpu, None) == (5.5, 0.75)


def test_a_quiet_window_flags_nothing() -> None:
    calls, measure = counter()
    out = measure_watched(measure, 1, "wait", monitor_for=FakeMonitors(0.1))
    assert calls == [0] and not out.contended and out.reason() == ""
    assert out.foreign_cpu == pytest.approx(0.1)


def test_wait_re_measures_once_the_machine_is_quiet() -> None:
    # Busy measurement, one busy look while waiting, a quiet look, then a quiet re-measure.
    calls, measure = counter()
    notes: list[str] = []
    fake = FakeMonitors(1.8, 1.8, 0.1, 0.1)
    out = measure_watched(measure, 1, "wait", wait_s=5.0, notify=notes.append, monitor_for=fake, sleep=lambda s: None)
    assert calls == [0, 1] and out.value == 2 and not out.contended and out.attempts == 2
    assert out.reason().startswith("measured after waiting out contention")
    assert len(notes) == 1 and "waiting up to 5 s" in notes[0]


def test_wait_is_bounded_and_keeps_the_least_contended_measurement() -> None:
    calls, measure = counter()
    fake = FakeMonitors(1.9, 1.9, 1.6, 1.9, 1.9, 1.9, 1.9)
    start = time.monotonic()
    out = measure_watched(measure, 1, "wait", wait_s=0.3, monitor_for=fake)
    assert time.monotonic() - start < 5
    assert out.contended and len(calls) >= 2
    assert out.foreign_cpu <= 1.9
    assert out.reason().startswith("contended: foreign load") and "waited" in out.reason()


@pytest.mark.parametrize("policy", ["flag", "fail"])
def test_flag_keeps_the_first_measurement_and_fail_waits_like_wait(policy: str) -> None:
    calls, measure = counter()
    out = measure_watched(measure, 1, policy, wait_s=0.2, monitor_for=FakeMonitors(1.9))
    assert out.contended
    if policy == "flag":
        assert len(calls) == 1 and "waited" not in out.reason()
    else:
        assert len(calls) >= 2 and "waited" in out.reason()


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown contention policy 'sometimes'"):
        measure_watched(lambda: 1, 1, "sometimes")


def _case_row(
    monkeypatch: pytest.MonkeyPatch,
    fake: FakeMonitors | None,
    policy: str,
    threads: int = 1,
    form: str = "cumsum",
    monitored: list[int] | None = None,
):
    if fake is not None:
        seen = monitored if monitored is not None else []

        def monitor(threads: int) -> FakeMonitors:
            seen.append(threads)  # the threads the case was judged on
            return fake

        monkeypatch.setattr(contention, "CpuMonitor", monitor)
    options = RunOptions(
        timer=TimerConfig(budget_s=0.02, warmup_s=0.005, min_sample_s=1e-3),
        isolate=False,
        ceilings=False,
        on_contention=policy,
        contention_wait_s=0.3,
    )
    return run_case(Case("numpy", form, 2, 32, 4), get_backend("numpy", "cpu"), options, threads)


def test_run_case_marks_a_contended_row_with_its_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    row = _case_row(monkeypatch, FakeMonitors(1.7), "flag")
    assert row.status == "ok" and row.contended
    assert row.foreign_cpu == pytest.approx(1.7)
    assert "contended: foreign load 1.70 cores + 1 threads > 2 cores" in row.reason


@pytest.mark.parametrize(("form", "needed"), [("cumsum", 1), ("matrix", 2)])
def test_a_case_is_judged_on_the_threads_its_form_may_use(monkeypatch: pytest.MonkeyPatch, form, needed) -> None:
    # NumPy's scan is a serial ufunc loop whatever its BLAS pool holds; its matmul is BLAS's.
    monitored: list[int] = []
    row = _case_row(monkeypatch, FakeMonitors(0.05), "flag", threads=2, form=form, monitored=monitored)
    assert row.status == "ok" and row.threads == needed and monitored == [needed]


def test_run_case_on_a_quiet_machine_flags_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    row = _case_row(monkeypatch, FakeMonitors(0.05), "wait")
    assert row.status == "ok" and not row.contended and "contend" not in row.reason


# -- a real hog --------------------------------------------------------------------------

HOG_LIMIT_S = 30.0
HOG = f"import time\nend = time.monotonic() + {HOG_LIMIT_S}\nwhile time.monotonic() < end:\n    pass\n"


# Starts the hogs and exits at once, printing their pids: the hogs are then no children of
# the test process, whose own CPU (its process tree) the monitor leaves out of the foreign load.
LAUNCH = (
    "import subprocess, sys\n"
    "for _ in range(int(sys.argv[1])):\n"
    "    kw = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)\n"
    "    print(subprocess.Popen([sys.executable, '-c', sys.argv[2]], **kw).pid)\n"
)


@pytest.fixture
def cpu_hog() -> Iterator[list[int]]:
    """Two busy loops per core and one more (each in its own session, so scheduler autogroups
    do not shelter the test from them); each stops itself after HOG_LIMIT_S and is killed at teardown."""
    launched = subprocess.run(
        [sys.executable, "-c", LAUNCH, str(2 * cores_available() + 1), HOG],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    pids = [int(line) for line in launched.stdout.split()]
    try:
        time.sleep(0.3)  # let them start spinning
        yield pids
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_monitor_sees_a_real_hog_and_the_row_is_flagged(cpu_hog, monkeypatch: pytest.MonkeyPatch) -> None:
    monitor = CpuMonitor(threads=cores_available())
    monitor.start()
    time.sleep(0.5)
    seen = monitor.stop()
    assert seen.foreign >= 0.5 * cores_available() and seen.contended, seen
    assert all(_alive(pid) for pid in cpu_hog)  # still spinning: the window saw them
    row = _case_row(monkeypatch, None, "flag", threads=cores_available())
    assert row.status == "ok" and row.contended and row.foreign_cpu >= 0.5, row.reason
    assert "contended: foreign load" in row.reason
    # Under ``wait`` the hogs outlast the bounded wait: the row is kept, flagged, and says it waited.
    waited = _case_row(monkeypatch, None, "wait", threads=cores_available())
    assert waited.status == "ok" and waited.contended and "waited" in waited.reason


def test_a_monitor_that_cannot_start_leaves_the_measurement_unjudged_not_lost() -> None:
    def broken() -> FakeMonitors:
        raise OSError("no /proc here")

    out = measure_watched(lambda: 42, 1, "wait", monitor_for=broken)
    assert out.value == 42 and not out.contended and out.reason() == ""
    assert out.foreign_cpu != out.foreign_cpu  # NaN: not measured
