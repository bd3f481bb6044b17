"""The report marks contended rows and never names one a backend's fastest without saying so."""

from __future__ import annotations

from suite.cases import Case
from suite.report.markdown import render
from suite.results import Row


def _row(form: str, median: float, contended: bool = False):
    return Row(
        Case("numba", form, 8, 8, 256),
        status="ok",
        median_s=median,
        iqr_s=median / 100,
        n_samples=5,
        samples_s=[median] * 5,
        contended=contended,
        foreign_cpu=1.2 if contended else 0.0,
    )


def test_contended_rows_are_marked_and_the_fastest_says_so() -> None:
    rows = [_row("cumsum", 5e-6, contended=True), _row("loop", 9e-6)]
    text = render({}, rows)
    summary = text.split("## Timings")[0]
    assert "1 of 2 rows were measured under contention" in summary
    fastest = next(line for line in summary.splitlines() if line.startswith("| numba"))
    assert "cumsum" in fastest and "contended" in fastest
    timings = text.split("## Timings")[1].split("## Correctness")[0]
    assert timings.count("(**contended**)") == 1


def test_a_quiet_run_mentions_no_contention() -> None:
    text = render({}, [_row("cumsum", 5e-6), _row("loop", 9e-6)])
    assert "contended" not in text and "contention" not in text


def test_drifted_rows_are_marked_counted_and_the_fastest_says_so() -> None:
    drifted = _row("cumsum", 5e-6)
    drifted.drifted, drifted.canary_copy, drifted.canary_matmul = True, 0.8, 1.0
    text = render({}, [drifted, _row("loop", 9e-6), _row("matrix", 7e-6)])
    summary = text.split("## Timings")[0]
    assert "1 of 3 rows were measured while the machine had drifted" in summary
    fastest = next(line for line in summary.splitlines() if line.startswith("| numba"))
    assert "cumsum" in fastest and "**drifted**" in fastest
    timings = text.split("## Timings")[1].split("## Correctness")[0]
    assert timings.count("(**drifted**)") == 1 and "contended" not in timings.split("### ")[1]


def test_timing_cells_show_the_spread_within_and_between_processes() -> None:
    row = _row("cumsum", 5e-6)
    row.within_spread, row.round_spread = 0.021, 0.18
    one_round = _row("loop", 9e-6)
    one_round.within_spread = 0.004
    timings = render({}, [row, one_round]).split("## Timings")[1].split("## Correctness")[0]
    assert "5 us ± 50 ns, spread 2.1%/18%" in timings
    assert "9 us ± 90 ns, spread 0.4%/-" in timings  # one round: no spread between processes
    assert "spread* within/between" in timings
