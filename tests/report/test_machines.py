"""The report's section across machines: the same case side by side, each against its own ceilings."""

from __future__ import annotations

from suite.cases import Case
from suite.format import format_seconds
from suite.report.machines import across_machines
from suite.report.markdown import render
from suite.results import Row

CASE = Case("numpy", "cumsum", 8, 1024, 256)
META = {
    "machines": {
        "aaa": {"machine": {"cpu_model": "Laptop CPU", "cpu_count": 4}},
        "bbb": {"machine": {"cpu_model": "Server CPU", "cpu_count": 64, "gpu_name": "NVIDIA H100"}},
    }
}


def timed(machine: str, median: float, frac: float) -> Row:
    return Row(CASE, status="ok", median_s=median, bound="memory", ceiling_frac=frac, machine=machine)


def test_each_machine_is_read_against_its_own_ceiling() -> None:
    rows = [timed("aaa", 2e-3, 0.40), timed("bbb", 1e-4, 0.65)]
    text = "\n".join(across_machines(META, rows))
    assert "## Across machines" in text and "Laptop CPU" in text and "NVIDIA H100" in text
    line = next(x for x in text.splitlines() if x.startswith("| numpy cumsum"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1].endswith("(40% of memory)") and cells[2].endswith("(65% of memory)")
    assert cells[1].startswith(format_seconds(2e-3)) and cells[2].startswith(format_seconds(1e-4))
    assert "- machines: 2: Laptop CPU, 4 cores (`aaa`); Server CPU, 64 cores, NVIDIA H100 (`bbb`)" in render(META, rows)


def test_a_run_of_one_machine_has_no_such_section() -> None:
    rows = [timed("aaa", 2e-3, 0.40)]
    assert across_machines(META, rows) == []
    assert "Across machines" not in render({}, rows)


def test_cases_measured_on_one_machine_only_are_left_out() -> None:
    other = Row(Case("numpy", "loop", 8, 8, 256), status="ok", median_s=1e-6, machine="bbb")
    rows = [timed("aaa", 2e-3, 0.40), timed("bbb", 1e-4, 0.65), other]
    text = "\n".join(across_machines(META, rows))
    assert "numpy cumsum" in text and "numpy loop" not in text
