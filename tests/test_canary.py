"""The machine canary: looks between cases on a fake clock and fake probe speeds, rows marked drifted."""

from __future__ import annotations

import functools
import math
from typing import ClassVar

import pytest

from suite import session
from suite.canary import REFERENCE_LOOKS, Canary, copy_probe, matmul_probe
from suite.cases import Case, RunOptions
from suite.results import Row
from suite.rounds import merge_rows
from suite.runner import BackendInfo


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fake_canary(
    copy_s: list[float], matmul_s: list[float], clock: FakeClock, limit: float = 0.10, min_interval_s: float = 2.0
) -> Canary:
    copies, matmuls = iter(copy_s), iter(matmul_s)
    canary = Canary(limit, min_interval_s, copy=lambda: next(copies), matmul=lambda: next(matmuls), clock=clock)
    canary.start = functools.partial(canary.start, sleep=lambda s: None)  # type: ignore[method-assign]
    return canary


#: The looks ``Canary.start`` takes: one warm-up, then the reference's.
START = 1 + REFERENCE_LOOKS


def ok_row(case: Case | None = None) -> Row:
    return Row(case or Case("numpy", "cumsum", 1, 8, 2), status="ok", samples_s=[1.0, 1.0, 1.0], calls_per_sample=1)


def test_a_case_between_slow_looks_is_drifted() -> None:
    clock = FakeClock()
    # Warm-up look, three for the reference (each probe's best), then looks around a case: 25% slow after it.
    canary = fake_canary([9.0, 1.1, 1.0, 1.05, 1.02, 1.25], [9.0, 2.0, 2.1, 2.0, 2.0, 2.0], clock)
    canary.start()
    assert canary.reference is not None and canary.reference.copy_s == 1.0  # the best, not the warm-up's 9 s
    assert canary.reference.matmul_s == 2.0
    clock.now = 5.0
    before = canary.look()
    row = ok_row()
    clock.now = 10.0
    after = canary.look()
    canary.mark(row, before, after)
    # Copy: 1.0 s at start, 1.25 s after the case: speed 0.8 of run start, past the 10% limit.
    assert row.drifted
    assert row.canary_copy == pytest.approx(0.8)
    assert row.canary_matmul == pytest.approx(1.0)
    assert "drifted: canary copy 0.80x" in row.reason
    # The looks just before (1.02 s: 2% slow) alone would not have marked it.
    assert not canary.verdict(before, before).drifted
    assert canary.metadata()["looks"] == 3 and canary.metadata()["reference_copy_s"] == 1.0


def test_faster_than_at_start_counts_too_and_the_limit_is_the_runs() -> None:
    clock = FakeClock()
    canary = fake_canary([1.0] * 5, [2.0] * START + [1.6], clock, limit=0.3)
    canary.start()
    clock.now = 3.0
    look = canary.look()
    v = canary.verdict(look, look)
    assert v.matmul == pytest.approx(1.25) and not v.drifted  # 25% faster, limit 30%
    canary.limit = 0.2
    assert canary.verdict(look, look).drifted


def test_looks_closer_than_the_interval_are_shared() -> None:
    clock = FakeClock()
    canary = fake_canary([1.0] * 6, [1.0] * 6, clock, min_interval_s=2.0)
    canary.start()
    first = canary.look()
    clock.now = 1.0
    assert canary.look() is first  # too soon: no probe ran
    clock.now = 2.5
    assert canary.look() is not first
    assert canary.looks == 2  # the reference and one look (the warm-up is not counted)


def test_only_timed_rows_are_marked() -> None:
    clock = FakeClock()
    canary = fake_canary([1.0] * START + [2.0], [1.0] * 5, clock)
    canary.start()
    clock.now = 9.0
    slow = canary.look()
    skipped = Row(Case("numpy", "cumsum", 1, 8, 2), status="skipped", reason="not here")
    canary.mark(skipped, slow, slow)
    assert not skipped.drifted and math.isnan(skipped.canary_copy) and skipped.reason == "not here"


def test_merged_rounds_are_drifted_when_any_round_was() -> None:
    calm, moved = ok_row(), ok_row()
    calm.canary_copy, calm.canary_matmul = 1.02, 0.97
    moved.canary_copy, moved.canary_matmul, moved.drifted = 0.7, 1.01, True
    merged = merge_rows([calm, moved])
    assert merged.drifted and merged.canary_copy == pytest.approx(0.7) and merged.canary_matmul == pytest.approx(0.97)


class _Runner:
    """Runs each case instantly; the sweep moves the fake clock between cases."""

    clock: ClassVar[FakeClock] = FakeClock()

    def __init__(self, options: RunOptions, on_note: object = None, counted: bool = False) -> None:
        pass

    def info(self, name: str) -> BackendInfo:
        return BackendInfo(name, True)

    def run(self, case: Case) -> Row:
        _Runner.clock.now += 3.0  # each case lasts 3 s: every case gets a fresh look after it
        return ok_row(case)

    def close(self) -> None:
        pass


def test_the_sweep_looks_between_cases_and_marks_the_drifted_one(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    _Runner.clock = clock
    monkeypatch.setattr(session, "make_runner", _Runner)
    # Warm-up, reference, then one look after each of three cases: the second case ends slow.
    canary = fake_canary([1.0] * START + [1.0, 1.5, 1.0], [1.0] * 7, clock)
    canary.start()
    cases = [Case("numpy", f, 1, 8, 2) for f in ("cumsum", "matrix", "loop")]
    rows = list(session.run_cases(cases, RunOptions(), lambda r: None, canary=canary))
    assert [r.drifted for r in rows] == [False, True, True]  # the slow look closes case 2 and opens case 3
    assert rows[1].canary_copy == pytest.approx(1 / 1.5)
    assert rows[0].canary_copy == pytest.approx(1.0)


def test_real_probes_give_positive_seconds() -> None:
    assert copy_probe(1 << 20)() > 0
    assert matmul_probe(32)() > 0


def test_looks_run_on_the_workers_cpus_and_the_parent_keeps_its_own() -> None:
    """The probes run on the CPUs the worker is pinned to, and the calling thread goes back after."""
    import os

    before = os.sched_getaffinity(0)
    worker = (max(before),)
    seen: list[set[int]] = []

    def probe() -> float:
        seen.append(os.sched_getaffinity(0))
        return 1e-3

    canary = Canary(copy=probe, matmul=probe, clock=FakeClock(), cpus=worker)
    canary.start(sleep=lambda s: None)
    assert seen and all(s == set(worker) for s in seen)
    assert os.sched_getaffinity(0) == before
    seen.clear()
    Canary(copy=probe, matmul=probe, clock=FakeClock()).start(sleep=lambda s: None)
    assert all(s == before for s in seen)


def test_the_canary_looks_on_the_cores_the_run_gives_its_workers() -> None:
    from suite.isolation import allowed_cpus, worker_cpus

    cpus = allowed_cpus()
    assert worker_cpus(RunOptions()) == tuple(cpus[1:] or cpus)  # auto: all but the harness's core
    assert worker_cpus(RunOptions(worker_cores=0)) == tuple(cpus)
    assert worker_cpus(RunOptions(isolate=False)) is None and worker_cpus(RunOptions(isolation=("quiet",))) is None
