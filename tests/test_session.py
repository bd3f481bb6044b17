"""Runs that survive (suite.workers, suite.session): a killed, hanging or failing
case costs only its own row; interrupted runs keep every finished row and resume
without re-running them.

The misbehaving backend is ``tests.fake_backends.FaultyBackend``, registered as
a plugin so that worker processes have it too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from backends import REGISTRY
from suite.cases import Case, RunOptions
from suite.cli import main
from suite.cli.run import DEFAULT_ROUNDS
from suite.results import CSV_NAME, JSON_NAME, REPORT_NAME, load_run, read_json
from suite.session import run_cases
from suite.timing import TimerConfig
from tests.fake_backends import PLUGIN, FaultyBackend

ROOT = Path(__file__).resolve().parents[1]
QUICK = TimerConfig(budget_s=0.02, warmup_s=0.005, min_sample_s=1e-3)
QUICK_FLAGS = ["--budget", "0.02", "--warmup", "0.005", "--quiet"]

pytestmark = pytest.mark.slow


@pytest.fixture
def faulty(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Register the faulty backend here and in every child; return a child env."""
    monkeypatch.setenv("CAUSAL_BENCH_BACKENDS", PLUGIN)
    monkeypatch.setitem(REGISTRY, FaultyBackend.name, FaultyBackend)
    for var in ("FAULTY_KILL_T", "FAULTY_HANG_T", "FAULTY_RAISE_T", "FAULTY_DELAY_S", "FAULTY_LOG"):
        monkeypatch.delenv(var, raising=False)
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", f"{ROOT}{os.pathsep}{path}" if path else str(ROOT))
    return dict(os.environ)


def faulty_cases(*Ts: int) -> list[Case]:
    return [Case("faulty", "cumsum", 1, T, 2) for T in Ts]


def test_sigkilled_worker_gives_an_error_row_and_the_run_goes_on(faulty, monkeypatch) -> None:
    monkeypatch.setenv("FAULTY_KILL_T", "16")
    rows = list(run_cases(faulty_cases(8, 16, 32, 64), RunOptions(timer=QUICK), lambda r: None))
    assert [r.status for r in rows] == ["ok", "error", "ok", "ok"]
    assert "killed by SIGKILL" in rows[1].reason
    # The cases after the crash ran in a fresh worker and were measured.
    assert all(r.n_samples >= 3 and r.median_s > 0 for r in rows[2:])


def test_exception_in_a_case_is_an_error_row_with_its_message(faulty, monkeypatch) -> None:
    monkeypatch.setenv("FAULTY_RAISE_T", "16")
    rows = list(run_cases(faulty_cases(8, 16, 32), RunOptions(timer=QUICK), lambda r: None))
    assert [r.status for r in rows] == ["ok", "error", "ok"]
    assert rows[1].reason == "RuntimeError: deliberate failure at T=16"


def test_a_hanging_case_hits_the_timeout_flag_and_the_rest_finish(faulty, tmp_path) -> None:
    env = {**faulty, "FAULTY_HANG_T": "16"}
    out = tmp_path / "run"
    start = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "suite",
            "run",
            "--backends",
            "faulty",
            "--forms",
            "cumsum",
            "--sizes",
            "1x8x2,1x16x2,1x32x2",
            "--timeout",
            "2",
            "--out",
            str(out),
            *QUICK_FLAGS,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert time.monotonic() - start < 60  # the hang (an hour) was cut short
    rows = {r.T: r for r in load_run(out)[1]}
    assert [rows[T].status for T in (8, 16, 32)] == ["ok", "timeout", "ok"]
    assert "per-case timeout of 2 s" in rows[16].reason
    assert 2 <= rows[16].elapsed_s < 30
    assert "timeout: faulty:cumsum:1x16x2" in done.stderr and "Traceback" not in done.stderr


def _wait_for_rows(csv: Path, n: int, proc: subprocess.Popen[str], limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if csv.exists() and csv.read_text().count("\n") >= n + 1:  # header + n rows
            return
        if proc.poll() is not None:
            raise AssertionError(f"run ended before {n} rows: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no {n} rows in {csv} after {limit_s} s")


SIZES = ",".join(f"1x{T}x2" for T in range(8, 20))  # twelve cases


def _sigint_as_in_a_terminal() -> None:
    """Ctrl-C's default action in the child, whatever this test was started under.

    A test runner started in the background of a non-interactive shell ignores SIGINT,
    its children inherit that, and Python then never raises KeyboardInterrupt.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_run_keeps_finished_rows_and_resume_finishes_without_rerunning(faulty, tmp_path, sig) -> None:
    out, log = tmp_path / "run", tmp_path / "built.log"
    argv = [sys.executable, "-m", "suite", "run", "--backends", "faulty", "--forms", "cumsum", "--sizes", SIZES]
    argv += ["--out", str(out), *QUICK_FLAGS]
    env = {**faulty, "FAULTY_LOG": str(log), "FAULTY_DELAY_S": "0.3"}
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, preexec_fn=_sigint_as_in_a_terminal)  # fmt: skip
    _wait_for_rows(out / CSV_NAME, 3, proc)
    # Ctrl-C in a terminal reaches the whole process group, workers included.
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "continue with --resume" in err and "Traceback" not in err

    meta, partial = load_run(out / CSV_NAME)
    assert 3 <= len(partial) < 12 and all(r.status == "ok" for r in partial)
    meta, from_json = read_json(out / JSON_NAME)
    assert meta["interrupted"] is True and [r.key for r in from_json] == [r.key for r in partial]
    report = (out / REPORT_NAME).read_text()
    assert all(f"1×{r.T}×2" in report or f"1x{r.T}x2" in report for r in partial)

    done = subprocess.run([*argv, "--resume"], cwd=ROOT, env={**env, "FAULTY_DELAY_S": "0"},
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    _, rows = load_run(out)
    assert sorted(r.T for r in rows) == list(range(8, 20))
    before = {r.key: r for r in partial}
    for r in rows:
        if r.key in before:  # kept as measured, not measured again
            assert r.median_s == before[r.key].median_s and r.samples_s == before[r.key].samples_s
    builds = Counter(int(line.split()[1]) for line in log.read_text().splitlines())
    assert all(builds[r.T] == DEFAULT_ROUNDS for r in partial), builds  # once per round, none after resume
    assert set(builds) == set(range(8, 20))
    assert not read_json(out / JSON_NAME)[0]["interrupted"]


def test_resume_from_a_corrupt_csv_exits_2_and_touches_nothing(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    out.mkdir()
    csv = out / CSV_NAME
    csv.write_bytes(b"this is not,a results file\n\x00\x01garbage\n")
    before = csv.read_bytes()
    assert main(["run", "--backends", "numpy", "--sizes", "seed", "--out", str(out), "--resume", *QUICK_FLAGS]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert csv.read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == [CSV_NAME]


def test_resume_without_a_previous_run_exits_2(tmp_path, capsys) -> None:
    assert main(["run", "--out", str(tmp_path / "nothing"), "--resume", *QUICK_FLAGS]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (JSON_NAME, b'{"schema": "causal-bench/results", "schema_version": 1, "rows": [{"backend": "num', "truncated"),
        (JSON_NAME, b'{"schema": "causal-bench/results", "schema_version": 999, "rows": []}', "schema version 999"),
        (JSON_NAME, b"\x89PNG\r\n\x1a\n", "not"),
        (CSV_NAME, b"", "empty"),
    ],
    ids=["truncated-json", "future-schema", "binary", "empty-csv"],
)
def test_report_refuses_bad_results_files_with_exit_2(tmp_path, capsys, name, content, message) -> None:
    (tmp_path / name).write_bytes(content)
    assert main(["report", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert (tmp_path / name).read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
