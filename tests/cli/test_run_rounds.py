"""``suite run --rounds`` and ``--on-contention``: bad values, rounds in the files, machine state."""

from __future__ import annotations

from pathlib import Path

import pytest

from suite import contention
from suite.cli import main
from suite.contention import Usage
from suite.results import Row, load_run

FAST = ["--budget", "0.02", "--warmup", "0.005", "--quiet", "--no-isolate", "--no-ceilings"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--on-contention", "sometimes"], "invalid choice: 'sometimes'"),
        (["run", "--rounds", "0"], "expected a positive number, got '0'"),
        (["run", "--rounds", "-2"], "expected a positive number, got '-2'"),
        (["run", "--rounds", "two"], "expected a positive number, got 'two'"),
        (["run", "--contention-wait", "0"], "expected a positive number"),
    ],
)
def test_bad_rounds_and_policies_exit_2_with_one_line(argv: list[str], message: str, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err


class _Busy:
    def start(self) -> None:
        pass

    def stop(self) -> Usage:
        return Usage(wall_s=0.1, foreign=1.8, steal=0.0, own=1.0, cores=2, threads=1)


def _run(tmp_path: Path, *extra: str) -> tuple[int, Path]:
    out = tmp_path / "run"
    argv = [
        "run",
        "--backends",
        "numpy",
        "--forms",
        "cumsum,matrix",
        "--variants",
        "none",
        "--sizes",
        "2x16x4",
        "--out",
        str(out),
    ]
    return main([*argv, *FAST, *extra]), out


def test_rounds_reach_the_files_with_the_machine_state(tmp_path: Path) -> None:
    code, out = _run(tmp_path, "--rounds", "3", "--on-contention", "flag")
    assert code == 0
    meta, rows = load_run(out)
    assert {r.rounds for r in rows} == {3}
    for r in rows:
        assert sorted(set(r.samples_round)) == [0, 1, 2] and len(r.samples_round) == r.n_samples
    state = meta["machine_state"]
    assert state["cores_available"] >= 1 and "load_average" in state
    assert meta["options"]["rounds"] == 3 and meta["options"]["on_contention"] == "flag"


@pytest.mark.parametrize(("policy", "code"), [("flag", 0), ("fail", 1)])
def test_fail_policy_exits_1_and_keeps_the_rows(
    policy: str, code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr(contention, "CpuMonitor", lambda threads: _Busy())
    got, out = _run(tmp_path, "--on-contention", policy, "--contention-wait", "0.1", "--rounds", "1")
    assert got == code
    _, rows = load_run(out)
    assert len(rows) == 2 and all(r.contended and r.status == "ok" for r in rows)
    assert "2 of 2 rows measured under contention" in capsys.readouterr().err


def test_progress_prints_rounds_and_contention_waits_as_they_happen(capsys) -> None:
    from suite.cases import Case, RunOptions
    from suite.cli.progress import Progress

    case = Case("numpy", "cumsum", 1, 8, 2)
    progress = Progress([case], RunOptions(rounds=2), quiet=False)
    progress.note("contended (foreign load 1.80 cores + 1 threads > 2 cores); waiting up to 20 s")
    row = Row(case, status="ok", median_s=1e-5, n_samples=5, contended=True)
    progress(1, 2, case, row, 0.1)
    progress.close()
    err = capsys.readouterr().err.splitlines()  # not a terminal: one line per event
    assert err[0].startswith("contended (foreign load 1.80 cores") and "waiting up to 20 s" in err[0]
    assert err[1] == "[1/2] numpy cumsum 1x8x2 float32: 10 us (contended)"
    quiet = Progress([case], RunOptions(), quiet=True)
    quiet.note("x")
    quiet(1, 1, case, row, 0.1)
    assert capsys.readouterr().err == ""


def test_explicit_rounds_too_few_for_alpha_warn_and_the_default_does_not(capsys) -> None:
    from suite.cli.run import DEFAULT_ROUNDS, warn_rounds

    assert warn_rounds(None) == DEFAULT_ROUNDS and capsys.readouterr().err == ""
    assert warn_rounds(3) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: 3 rounds a side cannot reach alpha 0.01")
    assert warn_rounds(5) == 5 and capsys.readouterr().err == ""
