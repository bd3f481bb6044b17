"""suite.procgroup: a child's whole process group is stopped and gone on every way out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from suite import procgroup

#: A shell that leaves a grandchild in its group, then waits itself.
TREE = "sleep 60 & sleep 60"


def _with_mark(mark: str) -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        try:
            env = (d / "environ").read_bytes().split(b"\0") if d.name.isdigit() else []
        except OSError:
            continue
        if f"PROCGROUP_TEST={mark}".encode() in env:
            found.append(int(d.name))
    return found


@pytest.fixture
def mark() -> Iterator[str]:
    value = uuid.uuid4().hex
    yield value
    for pid in _with_mark(value):  # whatever a failing test left
        os.kill(pid, signal.SIGKILL)


def _env(mark: str) -> dict[str, str]:
    return {**os.environ, "PROCGROUP_TEST": mark}


def test_a_normal_end_returns_the_output(mark: str) -> None:
    done = procgroup.run(["sh", "-c", "echo out; echo err >&2; exit 3"], env=_env(mark))
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")


def test_a_timeout_stops_the_whole_group(mark: str) -> None:
    start = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        procgroup.run(["sh", "-c", TREE], env=_env(mark), timeout=0.5, grace_s=1)
    assert time.monotonic() - start < 10
    assert _with_mark(mark) == []  # the shell and its background sleep


def test_an_interruption_stops_the_whole_group_and_goes_on(mark: str) -> None:
    def interrupt(signum: int, frame: object) -> None:
        raise procgroup.Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with pytest.raises(KeyboardInterrupt):
            procgroup.run(["sh", "-c", TREE], env=_env(mark), grace_s=1)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert _with_mark(mark) == []


def test_a_python_child_gets_sigterm_first_and_may_finish(mark: str, tmp_path: Path) -> None:
    """The leader hears SIGTERM and ends its own way (a `suite run` writes its rows) before anything is killed."""
    code = (
        "import signal, sys, time, pathlib\n"
        "def done(*_):\n"
        f"    pathlib.Path({str(tmp_path / 'done')!r}).write_text('ok'); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, done)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    with pytest.raises(subprocess.TimeoutExpired):
        procgroup.run([sys.executable, "-c", code], env=_env(mark), timeout=1.5)
    assert (tmp_path / "done").read_text() == "ok" and _with_mark(mark) == []


def test_children_die_with_a_parent_killed_outright(mark: str) -> None:
    """A parent that cannot stop anything (SIGKILL): its child goes with it, and the child's child, down the chain.

    (``PR_SET_PDEATHSIG`` is set on each process ``procgroup.run`` starts, not inherited by what
    that one forks itself: a shell's background job would outlive it.)
    """
    inner = "from suite import procgroup; procgroup.run(['sleep', '60'])"
    code = f"import sys; from suite import procgroup; procgroup.run([sys.executable, '-c', {inner!r}])"
    root = str(Path(__file__).resolve().parents[1])
    parent = subprocess.Popen([sys.executable, "-c", code], env={**_env(mark), "PYTHONPATH": root})
    deadline = time.monotonic() + 30
    while len(_with_mark(mark)) < 3:  # the parent, its python child, that one's sleep
        assert time.monotonic() < deadline and parent.poll() is None
        time.sleep(0.05)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 5
    while _with_mark(mark) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _with_mark(mark) == []


def test_run_together_runs_them_at_once_and_returns_each_output(mark: str, tmp_path: Path) -> None:
    # Each waits for the other's file: one at a time would never finish (the timeout ends it).
    a, b = tmp_path / "a", tmp_path / "b"
    meet = "touch {mine}; while [ ! -e {other} ]; do sleep 0.05; done; echo {name}; echo e{name} >&2; exit {code}"
    jobs: list[procgroup.Job] = [
        (["sh", "-c", meet.format(mine=a, other=b, name="one", code=0)], tmp_path, _env(mark)),
        (["sh", "-c", meet.format(mine=b, other=a, name="two", code=1)], None, _env(mark)),
    ]
    done = procgroup.run_together(jobs, timeout=60)
    assert [(d.returncode, d.stdout, d.stderr) for d in done] == [(0, "one\n", "eone\n"), (1, "two\n", "etwo\n")]
    assert _with_mark(mark) == []


def test_run_together_stops_every_group_on_a_timeout(mark: str) -> None:
    jobs: list[procgroup.Job] = [(["sh", "-c", TREE], None, _env(mark)), (["sh", "-c", "exit 0"], None, _env(mark))]
    with pytest.raises(subprocess.TimeoutExpired):
        procgroup.run_together(jobs, timeout=0.5, grace_s=1)
    assert _with_mark(mark) == []
