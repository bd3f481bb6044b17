"""Fleet runs on a real Ray cluster of two nodes on localhost, inside a sealed network namespace.

These tests start Ray, and Ray must only ever talk on 127.0.0.1: they run only
inside a private network namespace whose one interface is loopback, where
``tests/test_fleet.py`` re-runs this module (``unshare -n``, then ``ip link set lo
up``). Collected anywhere else they skip; they never fall back to the open network.
One cluster serves the module (Ray takes seconds to start); its teardown stops
every Ray process it started, pass or fail. The last two tests change it: one
kills the worker node, the next has a node join mid-run (two nodes again).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from suite import fleet, fleet_lanes
from suite.cases import RunOptions, SweepSpec, parse_sizes
from suite.cli import main
from suite.fleet import is_lost
from suite.fleet_lanes import CLOSE_S, Lanes
from suite.results import load_run
from suite.timing import TimerConfig
from tests.fake_backends import FAKE_GPU_PLUGIN
from tests.fake_backends import PLUGIN as FAULTY_PLUGIN
from tests.fleet_backends import PLUGIN

ROOT = Path(__file__).resolve().parents[1]
#: Set by tests/test_fleet.py inside the namespace it made.
SEALED_ENV = "CAUSAL_BENCH_SEALED_NET"
RAY_DAEMONS = ("raylet", "gcs_server")
QUICK = ["--forms", "cumsum", "--budget", "0.01", "--warmup", "0.002", "--min-samples", "3", "--quiet"]
QUICK += ["--on-contention", "flag"]


def sealed() -> bool:
    """Inside the namespace tests/test_fleet.py made: flagged, and loopback the only interface."""
    return os.environ.get(SEALED_ENV) == "1" and [name for _, name in socket.if_nameindex()] == ["lo"]


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sealed(), reason="starts Ray: runs only in the sealed network tests/test_fleet.py makes"),
]


def daemons() -> set[int]:
    """Process ids of the Ray daemons in this network namespace (``pgrep``): another sealed run's are not ours."""
    found = (subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout for name in RAY_DAEMONS)
    own = os.readlink("/proc/self/ns/net")
    ours = set()
    for pid in (int(p) for out in found for p in out.split()):
        with contextlib.suppress(OSError):  # gone meanwhile
            if os.readlink(f"/proc/{pid}/ns/net") == own:
                ours.add(pid)
    return ours


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A head and one more node with a (fake) GPU, each with one bench_slot; every Ray process stopped afterwards."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    spans = tmp_path_factory.mktemp("spans") / "spans.log"
    # Workers inherit the environment of the raylet that starts them: set it first.
    os.environ.update(
        {
            "CAUSAL_BENCH_BACKENDS": f"{PLUGIN},{FAKE_GPU_PLUGIN},{FAULTY_PLUGIN}",
            "FLEET_SPANS": str(spans),
            "FLEET_DELAY_S": "0.4",
            "FAKE_GPU_DELAY_S": "0.3",
            "FAULTY_KILL_T": "16",  # the faulty backend's worker kills itself on cases of T=16
            "PYTHONPATH": str(ROOT),
            "RAY_USAGE_STATS_ENABLED": "0",
            # Ray's session folders: this run's own, not /tmp/ray, which another run beside it may use.
            "RAY_TMPDIR": (ray_tmp := tempfile.mkdtemp(prefix="cbray")),
        }
    )
    import backends

    backends._load_plugins()  # this process (the driver) knows the backend too
    before = daemons()
    node_args: dict[str, Any] = {"num_cpus": 1, "resources": {"bench_slot": 1}, "object_store_memory": 80 << 20}
    c = Cluster(initialize_head=True, head_node_args={**node_args, "include_dashboard": False})
    try:
        c.node_args = {**node_args, "num_gpus": 1}  # Ray takes the GPU's word for it: no GPU needed
        c.spans = spans
        c.add_node(**c.node_args)
        c.wait_for_nodes()
        yield c
    finally:
        ray.shutdown()
        c.shutdown()
        deadline = time.monotonic() + 20
        while (left := daemons() - before) and time.monotonic() < deadline:
            time.sleep(0.2)
        shutil.rmtree(ray_tmp, ignore_errors=True)
        assert not left, f"Ray processes left running: {left}"


def run(cluster: Any, out: Path, sizes: str, *extra: str) -> int:
    cluster.spans.write_text("")
    argv = ["run", "--backends", "spans", "--sizes", sizes, "--cluster", cluster.address, "--out", str(out)]
    return main([*argv, *QUICK, *extra])


def spans(cluster: Any) -> dict[tuple[str, int], tuple[float, float]]:
    """(case, pid) -> (start, end) from the backend's own log."""
    out: dict[tuple[str, int], list[float]] = {}
    for line in cluster.spans.read_text().splitlines():
        _, key, t, pid = line.split()
        out.setdefault((key, int(pid)), []).append(float(t))
    return {k: (v[0], v[1]) for k, v in out.items() if len(v) == 2}


def running(cluster: Any) -> dict[tuple[str, int], float]:
    """(case, pid) -> start of the cases started and not ended, from the backend's own log."""
    started: dict[tuple[str, int], float] = {}
    for line in cluster.spans.read_text().splitlines():
        what, key, t, pid = line.split()
        if what == "start":
            started[(key, int(pid))] = float(t)
        else:
            started.pop((key, int(pid)), None)
    return started


def ancestors(pid: int) -> set[int]:
    with contextlib.suppress(psutil.Error):
        return {p.pid for p in psutil.Process(pid).parents()}
    return set()


def descendants(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        return list(psutil.Process(pid).children(recursive=True))
    return []


def span_key(row: Any) -> str:
    return f"{row.form}:{row.B}x{row.T}x{row.C}"


SIZES = "1x8x2,1x16x2,1x24x2,1x32x2,1x40x2,1x48x2"


def test_the_sweep_is_split_across_nodes_and_never_overlaps_on_one(cluster: Any, tmp_path: Path) -> None:
    assert run(cluster, tmp_path, SIZES, "--rounds", "2") == 0  # ceilings measured, once per machine
    meta, rows = load_run(tmp_path)
    assert len(rows) == 6 and {r.status for r in rows} == {"ok"}
    assert all(r.rounds == 2 for r in rows)  # each case's two tasks pooled into one row
    ran = spans(cluster)
    assert len(ran) == 12  # 6 cases x 2 rounds
    # Each node keeps one worker per round across its cases (2 nodes x 2 rounds at most)...
    pids = {pid for _, pid in ran}
    assert len(pids) <= 4
    # ...and measures each round of a case in a fresh one, as the local runner does.
    for key in {key for key, _ in ran}:
        assert len({pid for k, pid in ran if k == key}) == 2, f"both rounds of {key} ran in one process"
    # Two nodes, one slot each: never more than two cases at once.
    events = sorted([(s, 1) for s, _ in ran.values()] + [(e, -1) for _, e in ran.values()])
    live = peak = 0
    for _, d in events:
        live += d
        peak = max(peak, live)
    assert peak <= 2
    fp = rows[0].machine
    assert fp and all(r.machine == fp for r in rows)
    entry = meta["machines"][fp]
    assert len(entry["nodes"]) == 2  # both nodes ran cases
    assert meta["machine"]["fingerprint"] == fp
    assert entry["ceilings"]["cpu"]["copy_gbs"] > 0  # the node's own ceilings, under its fingerprint
    assert all(r.bound in ("memory", "compute") and r.ceiling_frac > 0 for r in rows)


def test_cases_on_one_node_never_overlap(cluster: Any, tmp_path: Path) -> None:
    assert run(cluster, tmp_path, SIZES, "--rounds", "1", "--no-ceilings") == 0
    _, rows = load_run(tmp_path)
    node_of = {span_key(r): r.node for r in rows}
    assert len(set(node_of.values())) == 2, "the sweep was not split across the two nodes"
    by_node: dict[str, list[tuple[float, float]]] = {}
    for (key, _), span in spans(cluster).items():
        by_node.setdefault(node_of[key], []).append(span)
    for node, times in by_node.items():
        times.sort()
        for (_, end), (start, _) in itertools.pairwise(times):
            assert start >= end, f"two cases overlapped on node {node}"


def test_a_case_past_the_timeout_is_stopped_and_its_node_named(cluster: Any, tmp_path: Path) -> None:
    assert (
        run(cluster, tmp_path, "1x8x2", "--rounds", "1", "--no-ceilings", "--timeout", "0.2") == 1
    )  # the build sleeps 0.4 s
    _, rows = load_run(tmp_path)
    assert [r.status for r in rows] == ["timeout"]
    assert rows[0].node and f"per-case timeout of 0.2 s on node {rows[0].node}" in rows[0].reason


def test_gpu_cases_go_to_the_node_with_a_gpu_and_only_there(cluster: Any, tmp_path: Path) -> None:
    head = cluster.head_node.node_id[:8]
    gpu_node = cluster.list_all_nodes()[-1].node_id[:8]
    sizes = "1x8x2,1x16x2,1x24x2"
    # fake-gpu cases ask for the GPU; the spans cases beside them may run on either node.
    argv = ["run", "--backends", "fake-gpu,spans", "--forms", "loop,matrix", "--sizes", sizes]
    argv += ["--cluster", cluster.address, "--out", str(tmp_path), *QUICK[2:], "--rounds", "1", "--no-ceilings"]
    code = main(argv)
    assert code == 0
    _, rows = load_run(tmp_path)
    gpu_rows = [r for r in rows if r.backend == "fake-gpu"]
    assert len(gpu_rows) == 6 and {r.status for r in gpu_rows} == {"ok"}
    assert {r.node.split("/")[1] for r in gpu_rows} == {gpu_node}, [r.node for r in gpu_rows]
    assert head != gpu_node
    # The GPU Ray gave each case's task is the one its worker process saw.
    assert all("CUDA_VISIBLE_DEVICES=0" in r.reason for r in gpu_rows), [r.reason for r in gpu_rows]


def test_a_crashed_worker_is_an_error_row_naming_its_node_and_the_node_goes_on(cluster: Any, tmp_path: Path) -> None:
    argv = ["run", "--backends", "faulty", "--sizes", "1x8x2,1x16x2,1x24x2,1x32x2", "--cluster", cluster.address]
    code = main([*argv, "--out", str(tmp_path), *QUICK, "--rounds", "1", "--no-ceilings"])
    assert code == 1
    _, rows = load_run(tmp_path)
    by_t = {r.T: r for r in rows}
    crashed = by_t.pop(16)
    assert crashed.status == "error" and not is_lost(crashed)  # the case's own crash: --resume keeps it
    assert crashed.reason == f"worker process killed by SIGKILL (out-of-memory kill?) on node {crashed.node}"
    assert {r.status for r in by_t.values()} == {"ok"}  # a fresh worker took the node's next cases


def ignore(row: Any) -> None:
    pass


def quick_options(cluster: Any) -> RunOptions:
    timer = TimerConfig(budget_s=0.01, warmup_s=0.002, min_samples=3)
    return RunOptions(timer=timer, ceilings=False, on_contention="flag", cluster=cluster.address)


def test_closing_a_run_keeps_the_rows_home_and_stops_its_lanes(cluster: Any) -> None:
    cluster.spans.write_text("")
    sweep = SweepSpec(backends=("spans",), forms=("cumsum",), sizes=parse_sizes(SIZES + ",1x56x2,1x64x2"))
    home: list[Any] = []
    rows = fleet.run_cases(sweep.cases(), quick_options(cluster), home.append)
    assert isinstance(rows, Generator)
    first = next(rows)
    start = time.monotonic()
    rows.close()  # what Ctrl-C in a caller's loop does
    assert time.monotonic() - start < CLOSE_S  # the lanes stopped after their case: none was killed
    assert home == [first]
    text = cluster.spans.read_text()
    assert text.count("start ") == text.count("end ") < 8  # what ran at the close finished; the rest never began
    time.sleep(1.0)
    assert cluster.spans.read_text() == text  # and nothing began after


def test_runs_one_after_another_in_one_driver_share_a_live_ledger(cluster: Any) -> None:
    # A ledger found by name while its last handle went away was a dead actor: the second run failed.
    sweep = SweepSpec(backends=("spans",), forms=("cumsum",), sizes=parse_sizes("1x8x2,1x16x2"))
    import ray

    ledgers, statuses = [], []
    ray.init(address=cluster.address, log_to_driver=False, logging_level="WARNING")  # one connection, as a script's
    try:
        for _ in range(3):
            rows = fleet.run_cases(sweep.cases(), quick_options(cluster), lambda row: None)
            statuses.append([r.status for r in rows])
            ledgers.append(next(iter(fleet_lanes._LEDGERS.values())))
    finally:
        ray.shutdown()
    assert statuses == [["ok", "ok"]] * 3
    assert len(fleet_lanes._LEDGERS) == 1 and ledgers[0] == ledgers[1] == ledgers[2]  # one actor, kept


def test_a_node_killed_mid_run_gives_lost_rows_and_resume_completes_them(cluster: Any, tmp_path: Path) -> None:
    worker = cluster.list_all_nodes()[-1]
    assert worker is not cluster.head_node
    raylet = worker.all_processes["raylet"][0].process.pid
    killed: list[str] = []

    def kill_when_it_runs_a_case() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for (key, pid), _ in running(cluster).items():
                if raylet in ancestors(pid):  # a case in flight on the worker node: the node dies
                    tree = descendants(raylet)  # as a machine's processes die with it, before they send a row
                    for process in tree:
                        with contextlib.suppress(psutil.Error):
                            process.kill()
                    cluster.remove_node(worker, allow_graceful=False)
                    killed.append(key)
                    return
            time.sleep(0.05)

    cluster.spans.write_text("")  # before the killer reads it (run() empties it too)
    killer = threading.Thread(target=kill_when_it_runs_a_case)
    killer.start()
    try:
        code = run(cluster, tmp_path, SIZES, "--rounds", "1", "--no-ceilings")
    finally:
        killer.join()
    assert killed, "the worker node never ran a case"
    _, rows = load_run(tmp_path)
    lost = [r for r in rows if r.status == "error"]
    assert code == 1 and len(lost) == 1, [(r.status, r.reason) for r in rows]  # the case the node was running
    assert len(rows) == 6  # nothing went missing: the lost case is a row
    assert [span_key(r) for r in lost] == killed
    for r in lost:
        assert r.reason.startswith("lost: node ") and "died" in r.reason
        assert r.node and r.node in r.reason
    # The cases still queued when the node died were taken by the head's lane.
    assert all(r.status == "ok" for r in rows if r not in lost)
    # The head alone runs the resumed sweep.
    assert run(cluster, tmp_path, SIZES, "--rounds", "1", "--no-ceilings", "--resume") == 0
    _, resumed = load_run(tmp_path)
    assert sorted(r.key for r in resumed) == sorted(r.key for r in rows)
    assert {r.status for r in resumed} == {"ok"}
    # Only the lost cases ran again.
    assert {key for key, _ in spans(cluster)} == {span_key(r) for r in lost}


def test_a_node_that_joins_mid_run_gets_a_lane_and_takes_the_queued_cases(
    cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    # This process joins first (the run then leaves the connection to it) and holds every node's
    # slot: the run's lanes there wait, so only a node that joins can take its cases. The node
    # that joins stays: after the killed node, the cluster has two nodes again.
    ray.init(address=cluster.address, log_to_driver=False, logging_level="WARNING")

    def hold(seconds: float) -> None:
        time.sleep(seconds)

    holding: Any = ray.remote(num_cpus=0, resources={"bench_slot": 1})(hold)
    placed = [NodeAffinitySchedulingStrategy(n.node_id, soft=False) for n in cluster.list_all_nodes()]
    holders = [holding.options(scheduling_strategy=p).remote(300) for p in placed]
    looked = threading.Event()
    look = Lanes.look

    def look_and_tell(self: Lanes, gpu_work: bool, nodes: Any = None) -> None:
        look(self, gpu_work, nodes)
        looked.set()

    monkeypatch.setattr(Lanes, "look", look_and_tell)
    joined: list[Any] = []
    try:
        while ray.available_resources().get("bench_slot", 0) > 0:
            time.sleep(0.1)
        cases = SweepSpec(backends=("spans",), forms=("cumsum",), sizes=parse_sizes("1x8x2,1x16x2,1x24x2")).cases()
        rows: list[Any] = []
        # In a thread: Ray starts a node from the main thread only.
        runner = threading.Thread(target=lambda: rows.extend(fleet.run_cases(cases, quick_options(cluster), ignore)))
        runner.start()
        assert looked.wait(60), "the run never looked at the cluster"
        joined.append(cluster.add_node(**cluster.node_args))  # after the run gave the nodes it saw their lanes
        runner.join(120)
        assert not runner.is_alive()
        assert len(rows) == 3 and {r.status for r in rows} == {"ok"}, [(r.status, r.reason) for r in rows]
        assert {r.node.split("/")[1] for r in rows} == {joined[0].node_id[:8]}
    finally:
        for ref in holders:
            ray.cancel(ref, force=True)
        ray.shutdown()
