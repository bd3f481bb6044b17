"""Rounds: samples pooled with their round, the spread between rounds, interleaving in the sweep."""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from suite import session
from suite.cases import Case, RunOptions
from suite.results import Row
from suite.rounds import merge_rows, round_samples
from suite.runner import BackendInfo
from suite.stats import between_spread
from suite.timing import TimerConfig


def _row(samples: list[float], status: str = "ok", **fields) -> Row:
    return Row(
        Case("numpy", "cumsum", 1, 8, 2, "float32", "ieee", "normal"), status=status, samples_s=samples, **fields
    )


def test_merge_rows_pools_samples_and_keeps_failures() -> None:
    merged = merge_rows([_row([1.0, 2.0, 3.0]), _row([4.0, 5.0])])
    assert merged.samples_s == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert merged.median_s == 3.0 and merged.min_s == 1.0 and merged.n_samples == 5
    assert merged.iqr_s == pytest.approx(2.0)
    assert merged.unstable  # IQR 2 on a median of 3
    failed = merge_rows([_row([1.0]), _row([], status="skipped"), _row([], status="error")])
    assert failed.status == "error"


def test_merge_rows_labels_rounds_and_states_their_spread() -> None:
    merged = merge_rows([_row([1.0, 1.0, 1.0]), _row([1.2, 1.2]), _row([1.1])])
    assert merged.rounds == 3
    assert merged.samples_round == [0, 0, 0, 1, 1, 2]
    assert merged.round_spread == pytest.approx((1.2 - 1.0) / 1.1)
    assert [list(r) for r in round_samples(merged)] == [[1.0, 1.0, 1.0], [1.2, 1.2], [1.1]]
    # Merging pooled rows again keeps their rounds apart.
    again = merge_rows([merged, _row([2.0, 2.0])])
    assert again.rounds == 4 and again.samples_round[-2:] == [3, 3]


def test_merge_rows_carries_contention_from_any_round() -> None:
    merged = merge_rows(
        [
            _row([1.0], foreign_cpu=0.1),
            _row([1.0], foreign_cpu=1.4, contended=True, reason="contended: foreign load 1.40 cores"),
        ]
    )
    assert merged.contended and merged.foreign_cpu == pytest.approx(1.4)
    assert "contended: foreign load 1.40" in merged.reason


def test_spread_needs_two_rounds() -> None:
    assert math.isnan(between_spread([1.0]))
    assert between_spread([1.0, 2.0, 1.5]) == pytest.approx(1 / 1.5)


def test_rounds_apart_but_each_tight_are_not_unstable() -> None:
    # Each process within 1% of itself, the processes 30% apart: the pooled IQR is
    # wide (it holds the spread between rounds), the row is not unstable.
    a = [1.00, 1.005, 1.01, 0.995, 1.0]
    b = [1.30, 1.305, 1.31, 1.295, 1.3]
    merged = merge_rows([_row(a), _row(b)])
    assert merged.iqr_s / merged.median_s > 0.10
    assert merged.within_spread == pytest.approx(np.median([0.005 / 1.0, 0.005 / 1.3]))
    assert merged.round_spread == pytest.approx(0.3 / 1.15)
    assert not merged.unstable and "unstable" not in merged.reason
    # A process noisy within itself is: its spread is the median over rounds.
    noisy = merge_rows([_row([1.0, 1.5, 0.8, 1.3, 1.0]), _row([1.0, 1.6, 0.7, 1.4, 1.0])])
    assert noisy.unstable and noisy.within_spread > 0.10
    assert noisy.reason.startswith("unstable: IQR/median within a process")


class _FakeRunner:
    """Records which case each round ran, and which runner (process) ran it."""

    made: ClassVar[list[_FakeRunner]] = []
    calls: ClassVar[list[tuple[int, str]]] = []

    def __init__(self, options: RunOptions, on_note: object = None, counted: bool = False) -> None:
        self.index = len(_FakeRunner.made)
        _FakeRunner.made.append(self)
        self.closed = False

    def info(self, name: str) -> BackendInfo:
        return BackendInfo(name, True)

    def run(self, case: Case) -> Row:
        _FakeRunner.calls.append((self.index, case.form))
        if case.form == "loop":
            return Row(case, status="skipped", reason="not here")
        return Row(case, status="ok", samples_s=[1.0 + self.index / 10] * 3, calls_per_sample=1)

    def close(self) -> None:
        self.closed = True


def test_rounds_interleave_across_the_sweep_in_fresh_runners(monkeypatch: pytest.MonkeyPatch) -> None:
    _FakeRunner.made, _FakeRunner.calls = [], []
    monkeypatch.setattr(session, "make_runner", _FakeRunner)
    cases = [Case("numpy", f, 1, 8, 2) for f in ("cumsum", "loop", "matrix")]
    got: list[Row] = []
    steps: list[int] = []
    rows = list(
        session.run_cases(
            cases,
            RunOptions(rounds=3),
            got.append,
            progress=lambda done, total, case, row, s: steps.append(total),
        )
    )
    # Round by round over the whole sweep; the skipped case is final at once.
    assert _FakeRunner.calls == [
        (0, "cumsum"),
        (0, "loop"),
        (0, "matrix"),
        (1, "cumsum"),
        (1, "matrix"),
        (2, "cumsum"),
        (2, "matrix"),
    ]
    assert len(_FakeRunner.made) == 3 and all(r.closed for r in _FakeRunner.made)
    assert [r.form for r in rows] == ["loop", "cumsum", "matrix"] and got == rows
    cumsum = rows[1]
    assert cumsum.rounds == 3 and cumsum.samples_round == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert cumsum.round_spread == pytest.approx(0.2 / 1.1)
    assert set(steps) == {9}


def test_an_interrupted_multi_round_sweep_keeps_only_finished_cases(monkeypatch: pytest.MonkeyPatch) -> None:
    _FakeRunner.made, _FakeRunner.calls = [], []

    class Interrupting(_FakeRunner):
        def run(self, case: Case) -> Row:
            if self.index == 1 and case.form == "matrix":
                raise KeyboardInterrupt
            return super().run(case)

    monkeypatch.setattr(session, "make_runner", Interrupting)
    got: list[Row] = []
    cases = [Case("numpy", f, 1, 8, 2) for f in ("cumsum", "matrix")]
    with pytest.raises(KeyboardInterrupt):
        list(session.run_cases(cases, RunOptions(rounds=2), got.append))
    # cumsum finished both rounds; matrix had one of two and is left to --resume.
    assert [(r.form, r.rounds) for r in got] == [("cumsum", 2)]
    assert all(r.closed for r in Interrupting.made)


def test_rounds_in_a_real_in_process_sweep(tmp_path: Path) -> None:
    options = RunOptions(
        timer=TimerConfig(budget_s=0.02, warmup_s=0.005, min_sample_s=1e-3),
        isolate=False,
        ceilings=False,
        rounds=2,
        on_contention="flag",
    )
    (row,) = list(session.run_cases([Case("numpy", "cumsum", 2, 16, 4)], options, lambda r: None))
    assert row.status == "ok" and row.rounds == 2
    assert set(row.samples_round) == {0, 1} and len(row.samples_round) == row.n_samples
    assert math.isfinite(row.round_spread) and math.isfinite(row.foreign_cpu)
