"""Fleet runs: one sweep placed on the nodes of a Ray cluster, rows home as they finish.

Every node runs lanes (``suite.fleet_node.lane``): one long-lived Ray generator
task per ``bench_slot`` (a custom resource each node offers once, so one timing
job per node at a time), made here with node affinity for each alive node with a
slot, and for a node that joins while the run goes on. A lane pulls the run's
cases one by one from its queue (``suite.fleet_node.Ledger``, an actor on the head
node) until the queue is empty, and Ray streams each case's result home the
moment the lane yields it. A node takes its next case when it is free, so the
sweep spreads over the nodes by their speed; nothing here picks which case runs
where. Rounds stay interleaved: the queue holds round 1 of every case, then round
2, .... A GPU case (a GPU-capable backend on a cluster with GPUs) is queued apart
and taken only by a GPU lane, which holds one GPU besides the slot and is made
on nodes with GPUs: it takes the GPU cases first, then CPU cases.

The plan was one Ray task per case (each round of it) until issue 24: Ray's
scheduling of each task and its round trips (the ledger, finding the node's agent,
the call to it) added 0.1 s to every case, as much as a small case takes. A lane
pays Ray's scheduling once per run and one call (``take``) per case.

A lane runs its cases in the same worker processes as the local runner
(``suite.workers.IsolatedRunner``, in the lane's ``suite.fleet_node.NodeAgent``):
one per backend, kept across cases, fresh for each round; the per-case timeout
and a crashed worker are handled there, as locally. ``max_retries=0``: Ray never
re-runs a lane. When a node dies, the case its lane was running becomes an
``error`` row (``lost: ``, which ``--resume`` runs again) and the cases still
queued are taken by the other nodes' lanes. The driver waits on the lanes with
``ray.wait`` and hands each row to ``on_row`` the moment it arrives (the session
appends it to ``results.csv``); an interruption keeps those and cancels the lanes.

Each row carries its node's machine fingerprint (``machine``) and node
(``node``); the run's metadata holds every machine's description and ceilings
under its fingerprint (``meta["machines"]``, ``suite.machine.run_machines``).
Ray is imported inside functions only: ``import suite`` never needs it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from backends._common import HostBackend
from suite.cases import Case, RunOptions
from suite.ceilings import HOST_DEVICE, annotate, from_metadata, to_metadata
from suite.fleet_lanes import LOOK_S, POLL_S, SLOT, Lanes, open_ledger, slot_nodes
from suite.fleet_lanes import LOST as LOST
from suite.fleet_lanes import is_lost as is_lost
from suite.fleet_node import CPU, GPU, CaseResult, Task
from suite.results import Row
from suite.runner import BackendInfo, first_line

INSTALL_HINT = "pip install 'causal-bench[fleet]'"

ProgressFn = Callable[[int, int, Case, Row | None, float], None]


class FleetError(Exception):
    """The cluster cannot be used: Ray missing, no connection, no node with a slot. One line."""


def import_ray() -> Any:
    """The ``ray`` module, or FleetError naming the install."""
    try:
        import ray
    except ImportError:
        raise FleetError(f"--cluster needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def connect(address: str) -> bool:
    """Join the cluster at ``address`` (``auto``, ``local``, ``ray://HOST:PORT`` or ``HOST:PORT``).

    ``local`` starts a one-node cluster on this machine with one slot (and one per
    GPU, which Ray detects). True when this call connected (and the caller must
    disconnect); False when the process was already connected.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": "WARNING"}
    try:
        if address == "local":
            ray.init(resources={SLOT: 1}, include_dashboard=False, **quiet)
        else:
            ray.init(address=address, **quiet)
    except Exception as e:  # ConnectionError, RuntimeError, ValueError: all one line for the user
        raise FleetError(f"cannot join the Ray cluster at {address!r}: {first_line(e)}") from None
    return True


def uses_gpu(backend: str, options: RunOptions, cluster_has_gpus: bool) -> bool:
    """Whether a case of ``backend`` takes a GPU: host-only adapters never do."""
    from backends import REGISTRY

    cls = REGISTRY.get(backend)
    return cluster_has_gpus and options.device != "cpu" and cls is not None and not issubclass(cls, HostBackend)


@dataclasses.dataclass
class _Machines:
    """The machines of a fleet run as they become known: metadata and ceilings by fingerprint."""

    meta: dict[str, dict[str, Any]]

    def __post_init__(self) -> None:
        self.ceilings = {fp: from_metadata(m.get("ceilings")) for fp, m in self.meta.items()}

    def add(self, result: CaseResult) -> None:
        fp = result.row.machine
        entry = self.meta.setdefault(fp, {"machine": result.machine_info, "nodes": []})
        if result.node not in entry.setdefault("nodes", []):  # a list: JSON has no sets
            entry["nodes"].append(result.node)
        ceilings = self.ceilings.setdefault(fp, {})
        if result.host_ceilings is not None:
            ceilings.setdefault(HOST_DEVICE, result.host_ceilings)
        if result.info.ceilings is not None:
            ceilings.setdefault(result.info.ceilings.device, result.info.ceilings)
        entry.setdefault("backends", {}).setdefault(result.info.name, dataclasses.asdict(result.info))
        entry["ceilings"] = to_metadata(ceilings)

    def annotate(self, row: Row) -> None:
        if row.status == "ok" and not row.bound:
            annotate(row, self.ceilings.get(row.machine, {}))


def run_cases(
    cases: Sequence[Case],
    options: RunOptions,
    on_row: Callable[[Row], None],
    progress: ProgressFn | None = None,
    infos: dict[str, BackendInfo] | None = None,
    machines: dict[str, dict[str, Any]] | None = None,
) -> Iterator[Row]:
    """Run ``cases`` on the cluster ``options.cluster``; their rows in the order they finish.

    With ``options.rounds`` R, each case is R tasks (queued round by round so
    rounds interleave across the sweep; each lane measures each round in fresh
    workers); its row, the rounds pooled per machine (``suite.rounds.merge_rows``),
    exists when all R are home. A case with a round lost with its node is one
    ``lost`` row. ``machines`` (fingerprint -> {machine, ceilings, nodes, backends})
    fills as nodes report; a resumed run passes its stored one, so its rows keep
    the ceilings they were judged by. Raises FleetError before any case runs.
    """
    from suite.rounds import as_round, merge_rows

    ray = import_ray()
    own = connect(options.cluster)
    rounds = max(options.rounds, 1)
    infos = infos if infos is not None else {}
    known = _Machines(machines if machines is not None else {})
    run = uuid.uuid4().hex

    def heard(result: CaseResult) -> None:
        known.add(result)
        infos.setdefault(result.info.name, result.info)

    pending: dict[str, Task] = {}  # tasks not home, by tag
    home: dict[str, list[Row]] = {}  # rounds home of cases whose other rounds are not
    got: list[Row] = []
    lanes: Lanes | None = None
    ledger: Any = None
    interrupted = True
    try:
        nodes = slot_nodes(ray)
        if not nodes:
            raise FleetError(f"no alive node of the cluster offers a {SLOT!r} resource")
        gpus = any(n["Resources"].get("GPU", 0) > 0 for n in nodes.values())
        queues: dict[str, list[Task]] = {GPU: [], CPU: []}
        for r in range(rounds):
            for case in cases:
                task = Task(case, r, f"{case.key}#{r}", uses_gpu(case.backend, options, gpus))
                queues[GPU if task.gpu else CPU].append(task)
                pending[task.tag] = task
        claimed = [(fp, dev) for fp, c in known.ceilings.items() for dev in c] if options.ceilings else []
        ledger = open_ledger(ray, run, queues, claimed)
        lanes = Lanes(ray, run, options, ledger)
        lanes.look(gpu_work=bool(queues[GPU]), nodes=nodes)
        step, total, start, looked = 0, len(pending), time.perf_counter(), time.monotonic()
        while pending:
            ready, _ = ray.wait(list(lanes.live), num_returns=1, timeout=POLL_S) if lanes.live else ([], [])
            done = [one for gen in ready for one in lanes.receive(gen, pending, heard)]
            if not lanes.live or time.monotonic() - looked >= LOOK_S:
                looked = time.monotonic()
                lanes.look(gpu_work=any(t.gpu for t in pending.values()))  # a node that joined gets lanes
                done += lanes.orphans(pending)
            for task, one in done:
                rows = home.setdefault(task.case.key, [])
                rows.append(one)
                step += 1
                finished = len(rows) == rounds
                pooled = _pool(home.pop(task.case.key), as_round, merge_rows) if finished else []
                for row in pooled:
                    known.annotate(row)
                    got.append(row)
                    on_row(row)
                if progress:
                    progress(step, total, task.case, pooled[0] if pooled else one, time.perf_counter() - start)
                yield from pooled
        interrupted = False
    except GeneratorExit:
        raise
    except BaseException:
        # Interrupted: the rounds already home are kept as rows (``rounds`` says how many).
        for rows in home.values():
            for row in _pool([r for r in rows if not is_lost(r)] or rows, as_round, merge_rows):
                known.annotate(row)
                got.append(row)
                on_row(row)
        raise
    finally:
        if lanes is not None:  # nothing left running on the cluster for this run
            lanes.stop(interrupted)
        if ledger is not None:
            with contextlib.suppress(Exception):
                ledger.close.remote(run)
        for row in got:  # rows that came home before their machine's ceilings did
            known.annotate(row)
        if own:
            ray.shutdown()


def _pool(rows: list[Row], as_round: Callable[[Row], Row], merge: Callable[[list[Row]], Row]) -> list[Row]:
    """One case's rounds as its rows: one per machine, or the one ``lost`` row."""
    if len(rows) == 1:
        return [as_round(rows[0])]
    lost = [r for r in rows if is_lost(r)]
    if lost:
        return lost[:1]
    by_machine: dict[str, list[Row]] = {}
    for r in rows:
        by_machine.setdefault(r.machine, []).append(as_round(r))
    return [merge(group) for group in by_machine.values()]


def open_cluster(address: str) -> bool:
    """Join the cluster and check it can run cases, before a run writes anything; FleetError if not.

    True when this call connected: the caller disconnects (``close_cluster``) after the run.
    """
    ray = import_ray()
    own = connect(address)
    if not slot_nodes(ray):
        if own:
            ray.shutdown()
        raise FleetError(
            f"no alive node of the cluster at {address!r} offers a {SLOT!r} resource; start each node with "
            f"ray start --resources='{{\"{SLOT}\": 1}}'"
        )
    return own


def close_cluster() -> None:
    """Leave the cluster this process joined (the cluster itself keeps running)."""
    import_ray().shutdown()
