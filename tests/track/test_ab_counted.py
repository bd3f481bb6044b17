"""Counted ``ab`` and ``gate`` for real: the callgrind files reach the side folders, and an
interrupted ``ab``, ``gate`` or counted ``run`` leaves no process behind.

Two commits of a scratch repository differ in a plugin that replaces ``numpy``: the head's
cumsum call does the kernel three times. Everything runs under valgrind (tiny cases, one
process a side), so these tests need valgrind and gcc, as tests/test_counting.py does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from suite.cli import main
from suite.results import load_run
from tests.test_counting import valgrind_here  # noqa: F401  (fixture)
from tests.track.scratch_git import ROOT, scratch_repo

PLUGIN = """
from backends.base import Built
from backends.numpy_backend import NumpyBackend

REPEATS = {repeats}


class Plug(NumpyBackend):
    name = "numpy"
    form_variants = {{}}  # the idioms only

    def build(self, form, x, precision):
        built = super().build(form, x, precision)

        def fn():
            for _ in range(REPEATS - 1):
                built.fn()
            return built.fn()

        return Built(fn, built.compile_s)
"""

CASE = ["--backends", "numpy", "--forms", "cumsum", "--sizes", "2x8x4"]
#: Every process of a test carries it, so what outlives its parent is found in /proc.
#: Carried by every process a test's command starts, down to the valgrind worker: a counted
#: worker starts with the interpreter's and libraries' variables only (suite.counting.startup_env),
#: so the mark is one of those (CPython reads no variable of this name).
MARK_ENV = "PYTHON_CAUSAL_BENCH_TEST_MARK"


@pytest.fixture
def counted_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, valgrind_here: None) -> Path:  # noqa: F811
    repo = scratch_repo(tmp_path / "repo", "abplug", [PLUGIN.format(repeats=1), PLUGIN.format(repeats=3)])
    monkeypatch.setenv("CAUSAL_BENCH_BACKENDS", "abplug:Plug")
    # `suite ab` run by the gate imports the plugin too (the head's version is at the repo's top).
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(repo)]))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    return repo


def function_lines(markdown: str) -> list[str]:
    """The rows of the tables under *What got slower, by function*."""
    assert "What got slower, by function" in markdown, markdown
    section = markdown.split("What got slower, by function", 1)[1].split("\n### ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| `")]


@pytest.mark.slow
def test_counted_gate_lists_the_grown_functions_everywhere(
    counted_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "gate"
    argv = ["gate", "HEAD~1", "HEAD", "--repo", str(counted_repo), "--out", str(out), "--quiet"]
    argv += ["--backends", "numpy", "--forms", "cumsum", "--sizes", "2x8x4", "--rounds", "1", "--budget", "0.02"]
    assert main(argv) == 1
    capsys.readouterr()
    counts = out / "counts"
    rows = {}
    for side in ("base", "head"):
        _, (row,) = load_run(counts / side)
        assert row.status == "ok" and row.counts.startswith("counts/"), row
        assert (counts / side / row.counts).is_file()  # the round's file, kept in the side's folder
        rows[side] = row
    assert rows["head"].instructions > 1.5 * rows["base"].instructions
    # The gate's summary, ab's own comparison and `compare` of the side folders all list them.
    summary = (out / "gate.md").read_text()
    assert "### Regressions, instructions, counted (1)" in summary and function_lines(summary)
    assert function_lines((counts / "compare.md").read_text())
    assert main(["compare", str(counts / "base"), str(counts / "head")]) == 1
    listed = function_lines(capsys.readouterr().out)
    assert listed and listed == function_lines(summary)


def _marked(mark: str) -> dict[int, bytes]:
    """Live processes carrying the mark: pid -> command line."""
    found = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            env = (d / "environ").read_bytes().split(b"\0")
            cmdline = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if f"{MARK_ENV}={mark}".encode() in env:
            found[int(d.name)] = cmdline
    return found


def _sigint_as_in_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a test runner in the background may ignore it


def _start_counting(command: str, repo: Path, out: Path, mark: str) -> subprocess.Popen[str]:
    """``suite COMMAND`` on one counted case, carrying the mark; returned once a valgrind worker under it runs."""
    argv = [sys.executable, "-m", "suite", command]
    if command == "run":
        argv += ["--metric", "instructions", *CASE]
    elif command == "ab":
        argv += ["HEAD", "HEAD", "--repo", str(repo), "--metric", "instructions", *CASE]
    else:
        argv += ["HEAD", "HEAD", "--repo", str(repo), *CASE]
    env = {**os.environ, MARK_ENV: mark}
    proc = subprocess.Popen(
        [*argv, "--out", str(out), "--quiet"],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_sigint_as_in_a_terminal,
    )
    deadline = time.monotonic() + 120
    while not any(b"--tool=callgrind" in c for c in _marked(mark).values()):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no valgrind worker started: {proc.communicate()}")
        time.sleep(0.1)
    return proc


def _assert_none_left(mark: str) -> None:
    """Nothing carrying the mark within 5 s (what is left is killed, then the test fails)."""
    deadline = time.monotonic() + 5
    while (left := _marked(mark)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left:  # leave the machine clean before failing
        os.kill(pid, signal.SIGKILL)
    assert not left, [c.replace(b"\0", b" ")[:200] for c in left.values()]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "sig"),
    [("ab", signal.SIGTERM), ("ab", signal.SIGINT), ("gate", signal.SIGTERM), ("run", signal.SIGTERM)],
    ids=["ab-sigterm", "ab-ctrl-c", "gate-sigterm", "run-sigterm"],
)
def test_interrupted_counted_commands_leave_no_process_behind(
    counted_repo: Path, tmp_path: Path, command: str, sig: int
) -> None:
    mark, out = uuid.uuid4().hex, tmp_path / "out"
    proc = _start_counting(command, counted_repo, out, mark)
    proc.send_signal(sig)  # to the top process alone: it stops what it started
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    _assert_none_left(mark)
    assert proc.returncode == 130, err
    assert err.count("\n") == 1 and err.startswith("interrupted") and "Traceback" not in err, err
    if command == "run":
        assert load_run(out)[0]["interrupted"] is True  # what was finished (nothing here) is kept, and said so
    if command == "ab":
        for side in ("base", "head"):
            meta, rows = load_run(out / side)
            assert meta["interrupted"] is True and rows == []


@pytest.mark.slow
@pytest.mark.parametrize("command", ["run", "ab"])
def test_children_die_with_a_parent_killed_outright(counted_repo: Path, tmp_path: Path, command: str) -> None:
    """SIGKILL gives the parent no chance to stop anything: each child dies with its parent, down the chain."""
    mark = uuid.uuid4().hex
    proc = _start_counting(command, counted_repo, tmp_path / "out", mark)
    proc.kill()
    proc.communicate(timeout=60)
    _assert_none_left(mark)
