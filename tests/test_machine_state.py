"""The machine's state at the start of a run, and the one warning line it gives."""

from __future__ import annotations

from suite.machine import busy_warning, machine_state


def test_machine_state_records_what_it_can_read() -> None:
    state = machine_state(threads=1)
    assert state["threads_requested"] == 1 and state["cores_available"] >= 1
    assert len(state["load_average"]) == 3
    assert state["cpu_count_logical"] >= state["cores_available"]
    for p in state["busiest_processes"]:
        assert p["cores"] > 0 and p["name"]


def test_a_quiet_machine_gives_no_warning() -> None:
    assert busy_warning({"cores_available": 4, "load_average": [0.1, 0.2, 0.2], "threads_requested": 2}) is None


def test_a_busy_machine_gives_one_line_naming_the_load() -> None:
    state = {
        "cores_available": 2,
        "load_average": [1.9, 1.0, 0.5],
        "busiest_processes": [{"pid": 7, "name": "hog", "cores": 0.98}],
    }
    line = busy_warning(state)
    assert line is not None and "\n" not in line
    assert line.startswith("warning: machine busy (load 1.9; hog (1.0))")


def test_threads_that_leave_no_core_free_are_warned_of() -> None:
    line = busy_warning({"cores_available": 2, "load_average": [0.0, 0.0, 0.0], "threads_requested": 2})
    assert line is not None and "--threads 2 leaves no core free of 2" in line
