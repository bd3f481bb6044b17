"""Counted runs (``--metric instructions``): the callgrind file reader, and runs end to end under valgrind.

The end-to-end tests need valgrind and gcc; without them they are skipped, except where
``CAUSAL_BENCH_REQUIRE_VALGRIND=1`` (``nox -s tests``, CI) turns the skip into a failure.
Counted cases stay tiny (2x8x4); torch, 14 s to start under valgrind, is counted once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from suite import procgroup
from suite.callgrind import CallgrindDump, grown_functions, read_dump
from suite.cli import main
from suite.counting import (
    COUNTED_CALLS,
    MISSING_VALGRIND,
    MMAP_THRESHOLD,
    SIZE_CLASSES,
    SWITCH_INTERVAL_S,
    counting_env,
    in_fresh_thread,
    pin_small_object_pools,
    startup_env,
    valgrind_command,
)
from suite.results import load_run
from tests.fake_backends import CALIBRATION_STEPS, PLANT_FILE_ENV, PLANTED_PLUGIN, plant_id, steps_for, write_plant

ROOT = Path(__file__).resolve().parents[1]
REQUIRE = os.environ.get("CAUSAL_BENCH_REQUIRE_VALGRIND") == "1"

SAMPLE = """\
# callgrind format
version: 1
positions: line
events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw
summary: 0

ob=(1) /lib/libm.so
fl=(1) a.c
fn=(1) kernel
10 100 40 20 3 2 1 1 1 0
+2 50 10
cfn=(2) helper
calls=3 20
12 900 1 1
fn=(2)
20 30 5 5 1
fn=(3) other
5 7
totals: 187 55 25 4 2 1 1 1 0
"""


def test_read_dump_totals_functions_and_weights(tmp_path: Path) -> None:
    path = tmp_path / "callgrind.out.1"
    path.write_text(SAMPLE, encoding="utf-8")
    d = read_dump(path)
    assert d.instructions == 187
    # Self cost only: the line after calls= is the callee's inclusive cost, not kernel's.
    assert d.functions == {"kernel": 150, "helper": 30, "other": 7}
    assert d.l1_misses == 4 + 2 + 1 and d.ll_misses == 1 + 1 + 0
    # accesses 187 + 55 + 25 = 267; RAM 2, LL hits 7 - 2 = 5, L1 hits 267 - 5 - 2 = 260
    assert d.est_cycles == 260 + 5 * 5 + 35 * 2


def test_grown_functions_most_grown_first() -> None:
    base = CallgrindDump({"Ir": 0}, {"a": 100, "b": 50, "c": 10})
    head = CallgrindDump({"Ir": 0}, {"a": 101, "b": 80, "c": 5, "d": 9})
    assert grown_functions(base, head) == [("b", 50, 80), ("d", 0, 9), ("a", 100, 101)]


def test_counting_env_pins_threads_hash_and_dispatch() -> None:
    env = counting_env({"OPENBLAS_L2_SIZE": "1", "XLA_FLAGS": "--x", "OMP_NUM_THREADS": "8"})
    assert env["OMP_NUM_THREADS"] == "1" and env["PYTHONHASHSEED"] == "0"
    assert env["ATEN_CPU_CAPABILITY"] == "avx2" and env["OPENBLAS_CORETYPE"] == "Haswell"
    assert "OPENBLAS_L2_SIZE" not in env and env["XLA_FLAGS"].startswith("--x ")
    cmd = valgrind_command(Path("/tmp/o"), ["python"])
    assert "--instr-atstart=no" in cmd and "--D1=32768,8,64" in cmd and cmd[-1] == "python"


def test_counting_env_fixes_malloc_and_keeps_other_tunables() -> None:
    ours = f"glibc.malloc.mmap_threshold={MMAP_THRESHOLD}:glibc.malloc.tcache_count=0"
    env = counting_env({"GLIBC_TUNABLES": "glibc.malloc.tcache_count=7:glibc.cpu.x86_rep_movsb_threshold=4096"})
    assert env["GLIBC_TUNABLES"] == f"glibc.cpu.x86_rep_movsb_threshold=4096:{ours}"
    assert counting_env({})["GLIBC_TUNABLES"] == ours


def test_in_fresh_thread_returns_raises_and_restores_the_switch_interval() -> None:
    interval = sys.getswitchinterval()
    seen: list[str] = []

    def work(a: int, b: int) -> int:
        seen.append(threading.current_thread().name)
        assert sys.getswitchinterval() == SWITCH_INTERVAL_S
        return a + b

    assert in_fresh_thread(work, 2, 3) == 5 and seen[0] != threading.current_thread().name
    with pytest.raises(ZeroDivisionError):
        in_fresh_thread(lambda: 1 // 0)
    assert sys.getswitchinterval() == interval


def test_the_worker_starts_with_the_libraries_variables_and_gets_the_rest_after_its_imports() -> None:
    env = counting_env({"PATH": "/bin", "HOME": "/h", "CAUSAL_BENCH_BACKENDS": "x:Y", "CI": "1", "PYTHONPATH": "/r"})
    first, later = startup_env(env)
    assert first.keys() | later.keys() == env.keys() and not first.keys() & later.keys()
    assert {"PYTHONHASHSEED", "OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES", "ATEN_CPU_CAPABILITY"} <= first.keys()
    assert {"GLIBC_TUNABLES", "XLA_FLAGS", "TORCHINDUCTOR_CPP_MARCH", "PYTHONPATH"} <= first.keys()
    assert later == {"PATH": "/bin", "HOME": "/h", "CAUSAL_BENCH_BACKENDS": "x:Y", "CI": "1"}


def test_pin_small_object_pools_keeps_objects_and_skips_without_pymalloc(monkeypatch) -> None:
    kept = pin_small_object_pools()
    assert len(kept) >= SIZE_CLASSES - 1  # at least one anchor per size class
    monkeypatch.setenv("PYTHONMALLOC", "malloc")
    assert pin_small_object_pools() == []


@pytest.fixture(scope="module")
def valgrind_here() -> None:
    missing = [tool for tool in ("valgrind", "gcc") if shutil.which(tool) is None]
    if missing or not Path("/usr/include/valgrind/callgrind.h").exists():
        why = f"counting needs valgrind, gcc and valgrind's headers (missing: {', '.join(missing) or 'headers'})"
        if REQUIRE:
            pytest.fail(f"{why}; CAUSAL_BENCH_REQUIRE_VALGRIND=1 requires them: apt-get install valgrind gcc")
        pytest.skip(why)


def count_job(out: Path, *flags: str, env: dict[str, str] | None = None) -> procgroup.Job:
    """The ``suite run --metric instructions`` of a tiny case set, as argv, folder and environment."""
    run_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    argv = [sys.executable, "-m", "suite", "run", "--metric", "instructions", "--sizes", "2x8x4", "--quiet"]
    argv += ["--variants", "none"]  # the idioms: one row per backend and form
    return [*argv, "--out", str(out), *flags], ROOT, run_env


def count(out: Path, *flags: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    argv, cwd, run_env = count_job(out, *flags, env=env)
    return subprocess.run(argv, cwd=cwd, env=run_env, capture_output=True, text=True, timeout=600)


#: The plant the tests size and check: 2% of the case's count.
PLANT = 0.02
#: An environment variable long enough to move what the interpreter allocates at start-up.
PAD_ENV = "CAUSAL_BENCH_TEST_PAD"


@pytest.fixture(scope="module")
def planted_runs(tmp_path_factory: pytest.TempPathFactory, valgrind_here: None) -> dict[str, Path]:
    """numpy and planted cumsum counted twice with nothing planted (the second time with a longer
    environment), then the planted backend with CALIBRATION_STEPS steps, then with the steps
    that add PLANT of its count, sized from those two (as scripts/gatebench.py sizes them)."""
    base = tmp_path_factory.mktemp("counted")
    runs: dict[str, Path] = {}

    def job(name: str, plant: dict[str, int], **env: str) -> procgroup.Job:
        runs[name] = base / f"run{len(runs)}"  # folders of one length: the same arguments' size
        plant_file = str(write_plant(base / "plants", plant))
        return count_job(
            runs[name], "--backends", "numpy,planted", "--forms", "cumsum",
            env={"CAUSAL_BENCH_BACKENDS": PLANTED_PLUGIN, PLANT_FILE_ENV: plant_file, **env},
        )  # fmt: skip

    def counted(*jobs: procgroup.Job) -> None:
        # At once, as `ab` runs counted sides: a count does not move with what runs beside it.
        for done in procgroup.run_together(jobs, timeout=600):
            assert done.returncode == 0, done.stderr

    counted(job("first", {}), job("second", {}, **{PAD_ENV: "x" * 3000}), job("calibrate", {"*": CALIBRATION_STEPS}))
    plain, more = ok_row(runs["first"], "planted"), ok_row(runs["calibrate"], "planted")
    per_step = (more.instructions - plain.instructions) / CALIBRATION_STEPS
    counted(job("planted", {plant_id(plain.key): steps_for(PLANT, plain.instructions, per_step)}))
    return runs


def ok_row(folder: Path, backend: str):
    rows = [r for r in load_run(folder)[1] if r.backend == backend]
    assert len(rows) == 1 and rows[0].status == "ok", rows
    return rows[0]


def test_counted_row_has_per_call_counts_and_its_file(planted_runs: dict[str, Path]) -> None:
    row = ok_row(planted_runs["first"], "numpy")
    assert row.key.endswith("@instructions") and row.metric == "instructions"
    assert 1e4 < row.instructions < 1e7 and row.n_samples == COUNTED_CALLS
    assert 0 < row.ll_misses <= row.l1_misses < row.instructions < row.est_cycles
    assert row.machine.startswith("sim-") and row.rel_err < row.tol
    assert read_dump(planted_runs["first"] / row.counts).instructions == pytest.approx(row.instructions * COUNTED_CALLS)
    assert not row.drifted and "canary" not in row.reason  # a count does not move with the machine's speed


def test_the_same_case_counted_twice_agrees_within_a_tenth_of_a_percent(planted_runs: dict[str, Path]) -> None:
    a, b = ok_row(planted_runs["first"], "numpy"), ok_row(planted_runs["second"], "numpy")
    assert b.instructions == pytest.approx(a.instructions, rel=1e-3)
    assert b.est_cycles == pytest.approx(a.est_cycles, rel=1e-3)
    assert a.machine == b.machine


def test_the_environment_does_not_move_the_count(planted_runs: dict[str, Path]) -> None:
    """The second run's 3000-byte extra variable moves everything the interpreter allocates at
    start-up; the counted calls run in a heap of their own (suite.count_worker, Hook.count), and
    a variable the libraries do not read reaches the worker only after its first imports
    (suite.counting.startup_env). Before the heap, this moved NumPy cumsum 2x8x4 by 0.56%; before
    startup_env, one more harness module turned it into 37,243 against 37,748 (1.4%, CPython's
    type attribute cache missing on names laid out elsewhere). In the branch that built it the count
    was the same to the instruction; merged beside the compiled backends' pins it once read
    37,227.6 against 37,242.6 (0.04%), so the bar here is the issue's 0.1%, not exactness."""
    for backend in ("numpy", "planted"):
        a, b = ok_row(planted_runs["first"], backend), ok_row(planted_runs["second"], backend)
        assert b.instructions == pytest.approx(a.instructions, rel=1e-3), backend


def test_planted_work_raises_the_count_by_its_nominal_fraction(planted_runs: dict[str, Path]) -> None:
    plain, more = ok_row(planted_runs["first"], "planted"), ok_row(planted_runs["calibrate"], "planted")
    planted = ok_row(planted_runs["planted"], "planted")
    per_step = (more.instructions - plain.instructions) / CALIBRATION_STEPS
    assert 5 < per_step < 100  # a step of sum(repeat(0, n)): a few dozen instructions
    # sized by count: the plant lands on 2% to the rounding of one step (a step is 0.13% of this
    # tiny case's count; of gatebench's smallest, 0.06%)
    step = per_step / plain.instructions
    assert planted.instructions / plain.instructions - 1 == pytest.approx(PLANT, abs=step / 2 + 1e-9)
    assert planted.instructions / plain.instructions - 1 == pytest.approx(PLANT, abs=1e-3)
    # numpy's own row did not move: the planted work is the plant's alone
    numpy_ratio = (
        ok_row(planted_runs["planted"], "numpy").instructions / ok_row(planted_runs["first"], "numpy").instructions
    )
    assert numpy_ratio == pytest.approx(1.0, rel=1e-3)


def test_compare_of_counted_runs_judges_the_plant_and_lists_functions(
    planted_runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", str(planted_runs["first"]), str(planted_runs["planted"])]) == 1
    out = capsys.readouterr().out
    slower = [line for line in out.splitlines() if "**slower**" in line]
    assert len(slower) == 1 and "planted:cumsum" in slower[0]
    assert "What got slower, by function" in out
    table = out.split("What got slower, by function")[1]
    assert table.count("| `") >= 2  # function lines, each with its growth


def test_compare_refuses_a_timed_run_against_a_counted_one(
    planted_runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    timed = tmp_path / "timed"
    assert main(["run", "--backends", "numpy", "--forms", "cumsum", "--variants", "none", "--sizes", "2x8x4",
                 "--budget", "0.02", "--warmup", "0.01", "--rounds", "1", "--no-ceilings", "--quiet", "--no-isolate",
                 "--out", str(timed)]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["compare", str(timed), str(planted_runs["first"])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "never compared" in err


def test_without_valgrind_rows_are_skipped_with_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    done = count(tmp_path / "run", "--backends", "numpy", "--forms", "cumsum,matrix", env={"PATH": str(empty)})
    assert done.returncode == 0, done.stderr
    assert done.stderr.count(MISSING_VALGRIND) == 1 and len(done.stderr.splitlines()) == 1
    rows = load_run(tmp_path / "run")[1]
    assert len(rows) == 2 and all(r.status == "skipped" and "apt-get install valgrind" in r.reason for r in rows)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--device", "gpu"], "counts on the CPU only"),
        (["--backends", "tensorflow"], "unknown backend 'tensorflow'"),
        (["--metric", "cycles"], "invalid choice"),
    ],
)
def test_bad_counted_arguments_exit_2(flags: list[str], message: str, tmp_path: Path, capsys) -> None:
    argv = ["run", "--metric", "instructions", *flags, "--out", str(tmp_path / "x"), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "x").exists()


def test_torch_counted_once(tmp_path: Path, valgrind_here: None) -> None:
    pytest.importorskip("torch")
    done = count(tmp_path / "torch", "--backends", "torch,triton", "--forms", "cumsum")
    assert done.returncode == 0, done.stderr
    rows = {r.backend: r for r in load_run(tmp_path / "torch")[1]}
    assert rows["torch"].status == "ok" and rows["torch"].instructions > 1e4
    assert rows["triton"].status == "skipped" and "CPU only" in rows["triton"].reason
