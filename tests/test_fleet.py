"""suite.fleet: the cluster path without a cluster, and the wrapper that runs the cluster tests sealed.

The tests that start Ray live in tests/test_fleet_cluster.py. Ray must only ever
talk on 127.0.0.1, so ``test_the_cluster_tests_pass_in_a_sealed_network`` re-runs
that module inside a private network namespace with loopback alone (as root,
``unshare -n``, then ``ip link set lo up``). Where no such namespace can be made
(not root, no ``unshare``) it skips and says why; it never runs them on the open network.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from suite.cases import Case, RunOptions
from suite.cli import main
from suite.fleet import INSTALL_HINT, LOST, _pool, is_lost, uses_gpu
from suite.fleet_node import CPU, GPU, Ledger, NodeAgent, Task
from suite.results import CSV_NAME, Row, RowLog
from suite.rounds import as_round, merge_rows
from suite.session import Session

ROOT = Path(__file__).resolve().parents[1]
#: ``nox -s tests`` installs the fleet extra and sets this: there Ray missing fails instead of skipping.
REQUIRE_ENV = "CAUSAL_BENCH_REQUIRE_FLEET"


def sealed_command() -> list[str]:
    """The command that runs the cluster tests in a private network namespace, or skip saying why not."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("no private network namespace: unshare or ip is not installed")
    if os.geteuid() != 0:
        pytest.skip("no private network namespace: unshare -n needs root")
    probe = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"no private network namespace: unshare -n failed: {probe.stderr.strip()}")
    script = 'ip link set lo up && exec "$0" -m pytest -q -rs -p no:cacheprovider tests/test_fleet_cluster.py'
    return ["unshare", "-n", "sh", "-c", script, sys.executable]


@pytest.mark.slow
def test_the_cluster_tests_pass_in_a_sealed_network() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"Ray is required here ({REQUIRE_ENV}) but not installed")
        pytest.skip(f"Ray is not installed: {INSTALL_HINT}")
    command = sealed_command()
    env = {**os.environ, "CAUSAL_BENCH_SEALED_NET": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    tail = (done.stdout + done.stderr)[-4000:]
    assert done.returncode == 0, tail
    summary = done.stdout.strip().splitlines()[-1]
    assert "passed" in summary and "skipped" not in summary, tail


# -- without a cluster ------------------------------------------------------------------------


def test_cluster_without_ray_is_one_line_naming_the_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    out = tmp_path / "out"
    code = main(["run", "--backends", "numpy", "--sizes", "seed", "--cluster", "local", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and INSTALL_HINT in err
    assert not out.exists()  # nothing written before the refusal


@pytest.mark.parametrize("address", ["nowhere", "ray://", "host:port", ""])
def test_a_malformed_cluster_address_is_a_usage_error(address: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--cluster", address, "--out", "/nonexistent/never"]) == 2
    assert "--cluster" in capsys.readouterr().err


def test_gpu_cases_ask_for_a_gpu_only_on_a_cluster_with_gpus() -> None:
    options = RunOptions()
    assert not uses_gpu("numpy", options, cluster_has_gpus=True)  # a host-only adapter never does
    assert uses_gpu("torch", options, cluster_has_gpus=True)
    assert not uses_gpu("torch", options, cluster_has_gpus=False)
    assert not uses_gpu("torch", RunOptions(device="cpu"), cluster_has_gpus=True)


CASE = Case("numpy", "cumsum", 1, 8, 2)


def timed(samples: list[float], machine: str) -> Row:
    return Row(CASE, status="ok", median_s=samples[0], samples_s=samples, n_samples=len(samples), machine=machine)


def test_rounds_pool_per_machine_and_a_lost_round_makes_the_case_lost() -> None:
    a1, a2, b1 = timed([1.0, 1.1], "aaa"), timed([1.2, 1.3], "aaa"), timed([5.0, 5.5], "bbb")
    pooled = _pool([a1, a2, b1], as_round, merge_rows)
    by_machine = {r.machine: r for r in pooled}
    assert set(by_machine) == {"aaa", "bbb"}  # rounds of different machines are never pooled
    assert by_machine["aaa"].rounds == 2 and sorted(by_machine["aaa"].samples_s) == [1.0, 1.1, 1.2, 1.3]
    assert by_machine["bbb"].rounds == 1
    lost = Row(CASE, status="error", reason=f"{LOST}node 127.0.0.1/abcd died")
    assert _pool([a1, lost], as_round, merge_rows) == [lost]
    assert _pool([a1], as_round, merge_rows)[0].rounds == 1  # one round is a row of one round, as locally


def task(t: int, gpu: bool = False, r: int = 0) -> Task:
    return Task(Case("numpy", "cumsum", 1, t, 2), r, f"T{t}#{r}", gpu)


def test_the_ledger_hands_each_task_to_one_lane_in_order_and_gpu_tasks_to_gpu_lanes_only() -> None:
    ledger = Ledger()
    cpu, gpu = [task(8), task(16), task(8, r=1)], [task(24, gpu=True), task(32, gpu=True)]
    ledger.open("run", {GPU: gpu, CPU: cpu}, [])
    assert ledger.take("run", (CPU,), "a", "n1") == cpu[0]  # the queue's order: round 1 of every case first
    assert ledger.take("run", (GPU, CPU), "b", "n2") == gpu[0]  # a GPU lane takes the GPU cases first...
    assert ledger.take("run", (GPU, CPU), "b", "n2") == gpu[1]
    assert ledger.take("run", (GPU, CPU), "b", "n2") == cpu[1]  # ...then CPU ones
    assert ledger.take("run", (CPU,), "a", "n1") == cpu[2]
    assert ledger.take("run", (CPU,), "a", "n1") is None  # empty: the lane returns
    # Each lane's tasks, with the node each started on (a lost one's row names it).
    assert ledger.taken("run", "a") == [(cpu[0].tag, "n1"), (cpu[2].tag, "n1")]
    assert ledger.taken("run", "b") == [(gpu[0].tag, "n2"), (gpu[1].tag, "n2"), (cpu[1].tag, "n2")]
    ledger.close("run")
    assert ledger.taken("run", "a") == []


def test_a_cpu_lane_never_takes_a_gpu_task_and_the_gpu_queue_drains_when_no_lane_can() -> None:
    ledger = Ledger()
    ledger.open("run", {GPU: [task(8, gpu=True), task(16, gpu=True)], CPU: []}, [])
    assert ledger.take("run", (CPU,), "a", "n1") is None
    assert ledger.drain("run", GPU) == ["T8#0", "T16#0"]
    assert ledger.take("run", (GPU, CPU), "b", "n2") is None
    assert ledger.drain("run", GPU) == []


def test_a_lane_of_another_run_takes_nothing_and_ceilings_are_claimed_once_per_run() -> None:
    ledger = Ledger()
    ledger.open("new", {CPU: [task(8)]}, [("fp", "cpu")])
    assert ledger.take("old", (CPU,), "a", "n1") is None  # a lane of an ended run winding down
    assert not ledger.claim("old", "fp", "host")
    assert not ledger.claim("new", "fp", "cpu")  # a resumed run's stored ceilings
    assert ledger.claim("new", "fp", "host") and not ledger.claim("new", "fp", "host")
    assert ledger.claim("new", "other-machine", "host")
    assert ledger.take("new", (CPU,), "a", "n1") == task(8)


def test_a_node_agent_asks_the_ledger_each_question_once() -> None:
    asked: list[tuple[str, str]] = []

    def ask(fingerprint: str, what: str) -> bool:
        asked.append((fingerprint, what))
        return True

    agent = NodeAgent(RunOptions(), "127.0.0.1/abcd", ask)
    assert agent._claim("host") and not agent._claim("host")  # asked again: measured here already
    assert agent._claim("backend numpy")
    assert asked == [(agent.fingerprint, "host"), (agent.fingerprint, "backend numpy")]


def test_resume_runs_lost_cases_again_and_keeps_every_other_row(tmp_path: Path) -> None:
    lost = Row(Case("numpy", "loop", 1, 8, 2), status="error", reason=f"{LOST}node n1 died while running the case")
    crashed = Row(Case("numpy", "matrix", 1, 8, 2), status="error", reason="the worker process died")
    ok = Row(CASE, status="ok", median_s=1e-6)
    assert is_lost(lost) and not is_lost(crashed) and not is_lost(ok)
    log = RowLog(tmp_path / CSV_NAME)
    for r in (ok, lost, crashed):
        log.append(r)
    log.close()
    session = Session(tmp_path, resume=True)
    session.open()
    assert [r.key for r in session.rows] == [ok.key, crashed.key]
    assert not math.isnan(session.rows[0].median_s)


def test_without_root_the_cluster_tests_skip_rather_than_run_on_the_open_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(pytest.skip.Exception, match="needs root"):
        sealed_command()


def test_the_cluster_tests_see_a_namespace_with_more_than_loopback_as_open(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests import test_fleet_cluster

    monkeypatch.setenv(test_fleet_cluster.SEALED_ENV, "1")
    monkeypatch.setattr(socket, "if_nameindex", lambda: [(1, "lo"), (2, "eth0")])
    assert not test_fleet_cluster.sealed()  # the flag alone never lets Ray start
    monkeypatch.setattr(socket, "if_nameindex", lambda: [(1, "lo")])
    assert test_fleet_cluster.sealed()


def test_without_root_the_two_host_test_skips_saying_why(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_fleet_hosts import namespaces_or_skip

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(pytest.skip.Exception, match="ip netns add needs root"):
        namespaces_or_skip()


def test_where_the_fleet_is_required_a_missing_ray_fails_the_two_host_test(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_fleet_hosts import namespaces_or_skip

    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="Ray is not installed"):
        namespaces_or_skip()
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="Ray is required"):
        namespaces_or_skip()
