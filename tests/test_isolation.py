"""Isolation by construction (suite.isolation, suite.workers): the plan, and the settings as a
real spawned worker reads them back: its cores, every pool's threads, one worker at a time."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from backends import REGISTRY
from suite.cases import Case, RunOptions
from suite.isolation import (
    AUTO,
    PASSIVE_VARIABLES,
    THREAD_VARIABLES,
    IsolationError,
    WorkerPlan,
    allowed_cpus,
    format_cpus,
    parse_steps,
    parse_worker_cores,
    plan_worker,
    read_back,
    spawning,
    split_cpus,
)
from suite.timing import TimerConfig
from suite.workers import IsolatedRunner, Worker
from tests.conftest import REQUIRED
from tests.fake_backends import PLUGIN, FaultyBackend

ROOT = Path(__file__).resolve().parents[1]
QUICK = TimerConfig(budget_s=0.02, warmup_s=0.005, min_sample_s=1e-3)
CPUS = allowed_cpus()
two_cpus = pytest.mark.skipif(len(CPUS) < 2, reason="needs two CPUs to leave the harness one")


def installed_or_skip(name: str) -> None:
    """Skip where ``name``'s framework is not installed (fail where required), without importing it here."""
    if importlib.util.find_spec(REGISTRY[name].module) is None:
        if name in REQUIRED:
            pytest.fail(f"backend {name} is required here but not installed")
        pytest.skip(f"{name} is not installed")


def options(**kw: object) -> RunOptions:
    return RunOptions(timer=QUICK, ceilings=False, **kw)  # type: ignore[arg-type]


# -- the plan -----------------------------------------------------------------------------


def test_cpus_print_as_taskset_ranges() -> None:
    assert format_cpus([0, 1, 2, 3, 6, 8, 9]) == "0-3,6,8-9"
    assert format_cpus([5]) == "5" and format_cpus([]) == ""


def test_the_worker_takes_the_last_cores_and_the_harness_the_rest() -> None:
    assert split_cpus(1, [0, 1, 2, 3]) == ([3], [0, 1, 2])
    assert split_cpus(0, [2, 0, 1]) == ([0, 1, 2], [])
    # auto, the default: every core but one, which the harness keeps; one core is shared.
    assert split_cpus(AUTO, [0, 1]) == ([1], [0]) and split_cpus(AUTO, [0, 1, 2, 3]) == ([1, 2, 3], [0])
    assert split_cpus(AUTO, [5]) == ([5], [])
    with pytest.raises(IsolationError, match="3 worker cores asked, 2 available"):
        split_cpus(3, [0, 1])


def test_flags_parse_or_name_what_is_wrong() -> None:
    assert parse_worker_cores("all") == 0 and parse_worker_cores("2") == 2
    assert parse_worker_cores("auto") == AUTO == RunOptions().worker_cores
    with pytest.raises(IsolationError, match="got '0'"):
        parse_worker_cores("0")
    assert parse_steps("pin, quiet,pin") == ("pin", "quiet") and parse_steps("none") == ()
    with pytest.raises(IsolationError, match="unknown isolation step 'spin'"):
        parse_steps("pin,spin")


def test_a_pinned_plan_sizes_every_pool_to_its_cores() -> None:
    plan, harness = plan_worker(1, ("pin",), None)
    assert plan.cpus == (CPUS[-1],) and plan.threads == 1 and harness == CPUS[:-1]
    assert all(plan.env[v] == "1" for v in THREAD_VARIABLES) and "OMP_WAIT_POLICY" not in plan.env
    plan, harness = plan_worker(0, ("pin", "passive"), None)
    assert plan.threads == len(CPUS) and harness == [] and plan.env["OMP_WAIT_POLICY"] == "PASSIVE"
    # Without pinning the libraries keep their own threads unless asked.
    assert plan_worker(0, ("quiet",), None)[0] == WorkerPlan(None, None, {})


def test_spawning_gives_the_child_its_environment_and_cores_and_restores_ours() -> None:
    before_cpus, before_env = os.sched_getaffinity(0), os.environ.get("OMP_WAIT_POLICY")
    plan = WorkerPlan((CPUS[-1],), 1, {**PASSIVE_VARIABLES, "OMP_NUM_THREADS": "1"})
    with spawning(plan):
        assert os.sched_getaffinity(0) == {CPUS[-1]}
        assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE" and os.environ["OMP_NUM_THREADS"] == "1"
    assert os.sched_getaffinity(0) == before_cpus and os.environ.get("OMP_WAIT_POLICY") == before_env


def test_read_back_names_every_setting_that_did_not_take() -> None:
    plan = WorkerPlan((999,), 3)
    placed = read_back(plan, "torch", 2, {"torch inter-op": 1, "torch intra-op": 3})
    assert placed.cores == format_cpus(CPUS)
    assert f"pinned to cores {format_cpus(CPUS)}, asked 999" in placed.problems
    assert "torch uses 2 threads, asked 3" in placed.problems
    assert "torch inter-op pool has 1 threads, asked 3" in placed.problems
    assert not any("intra-op" in p for p in placed.problems)
    assert placed.note().startswith("isolation: pinned to cores")
    assert read_back(WorkerPlan(None, None), "numpy", None).note() == ""


# -- a real spawned worker ------------------------------------------------------------------

#: The framework's own pools each backend reports, besides threadpoolctl's.
OWN_POOLS = {"numpy": (), "torch": ("torch intra-op", "torch inter-op"), "numba": ("numba",), "jax": ("xla eigen",)}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(OWN_POOLS))
@pytest.mark.parametrize("worker_cores", [1, 0])
def test_a_worker_is_pinned_with_every_pool_sized_to_its_cores(name: str, worker_cores: int) -> None:
    installed_or_skip(name)
    cpus = CPUS[-1:] if worker_cores else CPUS
    worker = Worker(name, options(worker_cores=worker_cores))
    try:
        info = worker.info
        assert info.available, info.reason
        assert info.cores == format_cpus(cpus) and info.threads == len(cpus) and info.isolation == ""
        assert set(OWN_POOLS[name]) <= set(info.pools)
        assert any(p.startswith("openblas") for p in info.pools)  # NumPy's BLAS, read by threadpoolctl
        assert set(info.pools.values()) == {len(cpus)}, info.pools
        row = worker.run(Case(name, "cumsum", 2, 64, 8), 120)
        assert row.status == "ok" and row.cores == format_cpus(cpus), row.reason
        # NumPy's scan is its own serial loop: one thread, whatever its BLAS pool holds.
        assert row.threads == (1 if name == "numpy" else len(cpus))
    finally:
        worker.close()


@pytest.mark.slow
@pytest.mark.skipif(len(CPUS) < 2, reason="needs a worker of two cores asked for one thread")
def test_a_thread_count_a_library_ignores_is_the_rows_reason_not_silence() -> None:
    # jax 0.10 sizes XLA's pool by the worker's cores: one thread on two cores is not applied.
    installed_or_skip("jax")
    worker = Worker("jax", options(threads=1, worker_cores=0))  # every core: two here, one thread asked
    try:
        assert "jax uses 2 threads, asked 1" in worker.info.isolation
        row = worker.run(Case("jax", "cumsum", 2, 64, 8), 120)
        assert row.status == "ok" and "isolation: jax uses 2 threads, asked 1" in row.reason
    finally:
        worker.close()


@pytest.fixture
def faulty(monkeypatch: pytest.MonkeyPatch) -> None:
    """The faulty backend (NumPy under another name) here and in every worker."""
    monkeypatch.setenv("CAUSAL_BENCH_BACKENDS", PLUGIN)
    monkeypatch.setitem(REGISTRY, FaultyBackend.name, FaultyBackend)
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", f"{ROOT}{os.pathsep}{path}" if path else str(ROOT))


@pytest.mark.slow
def test_the_runner_keeps_one_worker_at_a_time(faulty: None) -> None:
    runner = IsolatedRunner(options())
    try:
        assert runner.run(Case("numpy", "cumsum", 2, 16, 4)).status == "ok"
        first = runner.live_workers()
        assert len(first) == 1
        runner.info("faulty")
        assert runner.run(Case("faulty", "cumsum", 2, 16, 4)).status == "ok"
        assert not first[0].process.is_alive()  # closed before the next backend's worker started
        assert [w.info.name for w in runner.live_workers()] == ["faulty"]
    finally:
        runner.close()


@pytest.mark.slow
@two_cpus
def test_the_harness_keeps_to_the_cores_the_worker_leaves_while_the_runner_runs() -> None:
    before = os.sched_getaffinity(0)
    runner = IsolatedRunner(options(worker_cores=1))
    try:
        assert os.sched_getaffinity(0) == set(CPUS[:-1])
        row = runner.run(Case("numpy", "matrix", 2, 16, 4))
        assert row.status == "ok" and row.cores == str(CPUS[-1]) and row.threads == 1
    finally:
        runner.close()
    assert os.sched_getaffinity(0) == before


def test_the_layout_step_starts_children_without_address_randomisation() -> None:
    import subprocess

    from suite.isolation import ADDR_NO_RANDOMIZE, layout_fixed

    plan, _ = plan_worker(0, ("layout",), None)
    assert plan.fixed_layout

    def child_persona() -> int:
        out = subprocess.run(["cat", "/proc/self/personality"], capture_output=True, text=True, check=True)
        return int(out.stdout.strip(), 16)

    with spawning(plan):
        inside = child_persona()
    after = child_persona()
    assert inside & ADDR_NO_RANDOMIZE and not after & ADDR_NO_RANDOMIZE  # restored after the block
    assert not layout_fixed()  # this process itself was started with randomisation on
    placed = read_back(plan, "numpy", None)
    assert "address-space randomisation still on" in placed.note()
    assert "layout" in parse_steps("pin,quiet,layout")


def test_a_worker_does_not_import_the_parents_main_script(tmp_path: Path) -> None:
    # multiprocessing's spawn runs the parent's __main__ again in the child; under Ray that is
    # Ray's own worker (more than a second per worker). The worker must leave main alone.
    import subprocess
    import sys

    marker = tmp_path / "imported"
    script = tmp_path / "main_script.py"
    script.write_text(
        "import pathlib, sys\n"
        "if __name__ != '__main__':\n"
        f"    pathlib.Path({str(marker)!r}).write_text(__name__)\n"
        "else:\n"
        f"    sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})\n"
        "    from suite.cases import RunOptions\n"
        "    from suite.workers import Worker\n"
        "    w = Worker('numpy', RunOptions())\n"
        "    print('worker', w.info.available)\n"
        "    w.close()\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "worker True" in done.stdout
    assert not marker.exists(), f"the worker imported the parent's main script as {marker.read_text()}"
