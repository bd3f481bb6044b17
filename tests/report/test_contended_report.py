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
