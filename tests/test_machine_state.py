"""The machine's state at the start of a run, and the one warning line it gives."""

from __future__ import annotations

import pytest

from suite.machine import BUSY_CORES, CpuSample, busy_warning, machine_state


def fake_sampler(foreign: float, *busiest: dict[str, object]):
    return lambda: CpuSample(0.5, foreign, list(busiest))


def test_machine_state_records_what_it_can_read() -> None:
    state = machine_state(threads=1)
    assert state["threads_requested"] == 1 and state["cores_available"] >= 1
    assert len(state["load_average"]) == 3  # recorded, though no longer judged
    assert state["cpu_count_logical"] >= state["cores_available"]
    assert 0 <= state["foreign_cpu"] <= state["cpu_count_logical"] + 0.5 and state["sample_s"] >= 0.4
    for p in state["busiest_processes"]:
        assert p["cores"] > 0 and p["name"]


def test_a_quiet_sample_gives_no_warning_whatever_the_load_average_says() -> None:
    # The one-minute load average still holds a pip install that ended seconds ago.
    state = machine_state(threads=None, sample=fake_sampler(0.05))
    state["load_average"] = [0.89, 0.5, 0.2]
    assert state["foreign_cpu"] == 0.05 and busy_warning(state) is None


def test_a_busy_sample_gives_one_line_naming_the_foreign_cpu_and_who() -> None:
    state = machine_state(threads=None, sample=fake_sampler(0.98, {"pid": 7, "name": "hog", "cores": 0.98}))
    line = busy_warning(state)
    assert line is not None and "\n" not in line
    assert line.startswith("warning: machine busy (other processes used 0.98 cores over 0.5 s; hog (1.0))")


@pytest.mark.parametrize(("foreign", "warned"), [(BUSY_CORES - 0.01, False), (BUSY_CORES + 0.01, True)])
def test_the_warning_threshold_is_on_the_sample(foreign: float, warned: bool) -> None:
    state = {"cores_available": 4, "load_average": [3.0, 3.0, 3.0], "foreign_cpu": foreign, "sample_s": 0.5}
    assert (busy_warning(state) is not None) == warned


def test_a_sampler_that_fails_leaves_the_machine_unjudged() -> None:
    def broken() -> CpuSample:
        raise OSError("no /proc")

    state = machine_state(threads=None, sample=broken)
    assert "foreign_cpu" not in state and busy_warning(state) is None


def test_threads_that_leave_no_core_free_are_warned_of() -> None:
    line = busy_warning({"cores_available": 2, "foreign_cpu": 0.0, "threads_requested": 2})
    assert line is not None and "--threads 2 leaves no core free of 2" in line
