"""Fleet runs: one sweep placed on the nodes of a Ray cluster, rows home as they finish.

Ray Core does the placing; nothing here schedules. Every case (every round of
it) is a Ray task (``suite.fleet_node.case_task``) that asks for one
``bench_slot`` (a custom resource each node offers once, so one timing job per
node at a time) and, for a GPU case on a cluster with GPUs, one GPU as well. The
task hands its case to its node's agent (``suite.fleet_node.NodeAgent``, one
actor per node, made here with node affinity and holding no resources), which
runs it in the same worker processes as the local runner: one per backend, kept
across cases, fresh for each round; the per-case timeout and a crashed worker
are handled there, as locally. ``max_retries=0`` makes a case lost with its node
an ``error`` row rather than a silent re-run, and ``--resume`` runs those again.
The driver collects rows with ``ray.wait`` and hands each to ``on_row`` the
moment it arrives (the session appends it to ``results.csv``).

Each row carries its node's machine fingerprint (``machine``) and node
(``node``); the run's metadata holds every machine's description and ceilings
under its fingerprint (``meta["machines"]``, ``suite.machine.run_machines``).
Ray is imported inside functions only: ``import suite`` never needs it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from backends._common import HostBackend
from suite.cases import Case, RunOptions
from suite.ceilings import HOST_DEVICE, annotate, from_metadata, to_metadata
from suite.fleet_node import CaseResult, Ledger, NodeAgent, agent_name, case_task, node_name
from suite.results import Row
from suite.runner import BackendInfo, first_line

#: The custom resource of one timing job: each node offers one (or one per GPU).
SLOT = "bench_slot"
#: The resource only the head node has (ray._common.constants.HEAD_NODE_RESOURCE_NAME).
HEAD = "node:__internal_head__"
INSTALL_HINT = "pip install 'causal-bench[fleet]'"
#: Seconds between looks at the ledger (timeouts) and the cluster (dead nodes) while no row arrives.
POLL_S = 0.5

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


def slot_nodes(ray: Any) -> dict[str, str]:
    """Alive nodes offering a bench slot: node id -> name."""
    return {n["NodeID"]: node_name(n) for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get(SLOT)}


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


#: The reason of a row whose case was lost with its node: ``--resume`` runs it again.
LOST = "lost: "


def is_lost(row: Row) -> bool:
    """Whether ``row`` records a case lost with its node (an infrastructure failure, not the case's)."""
    return row.status == "error" and row.reason.startswith(LOST)


#: Seconds to wait for the cluster to mark a node dead when a case task failed there without
#: saying why: Ray's health checks take some seconds to declare a node whose raylet was killed.
NODE_FATE_S = 30.0


def _lost_row(case: Case, error: Exception, node: str, ray: Any) -> Row:
    """The row of a case whose task did not come home: its node died, its node agent did, or Ray failed.

    A crash or a timeout of the case itself never gets here: the node agent's
    worker runner makes those rows, as locally. So a failed task is the node's
    doing, and a node that is (or, within ``NODE_FATE_S``, becomes) dead makes
    the case ``lost``: ``--resume`` runs it again.
    """
    match = re.search(r"node ID: ([0-9a-f]+)", str(error))
    nodes = {n["NodeID"]: n for n in ray.nodes()}
    if not node and match:
        node = node_name(nodes.get(match.group(1), {"NodeID": match.group(1), "NodeManagerAddress": "?"}))
    where = node or "an unknown node"
    died = isinstance(error, ray.exceptions.NodeDiedError) or _dead(ray, node, NODE_FATE_S if node else 0.0)
    if died:
        reason = f"{LOST}node {where} died while running the case ({first_line(error)}); --resume runs it again"
    else:
        reason = f"the case's task failed on node {where}: {first_line(error)}"
    return Row(case, status="error", reason=reason, node=node)


def _dead(ray: Any, node: str, wait_s: float) -> bool:
    """Whether the cluster marks ``node`` dead, waiting up to ``wait_s`` for it to say so."""
    deadline = time.monotonic() + wait_s
    while True:
        states = {node_name(n): bool(n.get("Alive")) for n in ray.nodes()}
        if states.get(node) is False:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)


class _Agents:
    """The run's node agents: one per alive node with a slot, made with node affinity, killed at the end."""

    def __init__(self, ray: Any, options: RunOptions, ledger: Any) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.ray, self.options, self.ledger = ray, options, ledger
        self.affinity = NodeAffinitySchedulingStrategy
        # No resources: the case task holds the node's slot, so an agent never blocks a case.
        self.actor = ray.remote(num_cpus=0, max_restarts=0, max_task_retries=0)(NodeAgent)
        self.handles: dict[str, Any] = {}

    def ensure(self) -> bool:
        """Give every alive node with a slot its agent; False when no such node is left."""
        alive = slot_nodes(self.ray)
        for node_id in alive.keys() - self.handles.keys():
            strategy = self.affinity(node_id=node_id, soft=False)
            made = self.actor.options(name=agent_name(node_id), scheduling_strategy=strategy)
            self.handles[node_id] = made.remote(self.options, self.ledger)
        return bool(alive)

    def close(self) -> None:
        """Stop every agent's workers, then the agents (a dead node's agent is gone already)."""
        closing = [h.close.remote() for h in self.handles.values()]
        with contextlib.suppress(Exception):
            self.ray.wait(closing, num_returns=len(closing), timeout=10)
        for h in self.handles.values():
            with contextlib.suppress(Exception):
                self.ray.kill(h)
        self.handles.clear()


@dataclasses.dataclass
class _Task:
    case: Case
    round: int
    tag: str


def run_cases(
    cases: Sequence[Case],
    options: RunOptions,
    on_row: Callable[[Row], None],
    progress: ProgressFn | None = None,
    infos: dict[str, BackendInfo] | None = None,
    machines: dict[str, dict[str, Any]] | None = None,
) -> Iterator[Row]:
    """Run ``cases`` on the cluster ``options.cluster``; their rows in the order they finish.

    With ``options.rounds`` R, each case is R tasks (submitted round by round so
    rounds interleave across the sweep; each node's agent measures each round in
    fresh workers); its row, the rounds pooled per machine
    (``suite.rounds.merge_rows``), exists when all R are home. A case with a round
    lost with its node is one ``lost`` row. ``machines`` (fingerprint -> {machine,
    ceilings, nodes, backends}) fills as nodes report; a resumed run passes its
    stored one, so its rows keep the ceilings they were judged by. Raises
    FleetError before any case runs.
    """
    from suite.rounds import as_round, merge_rows

    ray = import_ray()
    own = connect(options.cluster)
    rounds = max(options.rounds, 1)
    infos = infos if infos is not None else {}
    known = _Machines(machines if machines is not None else {})
    refs: dict[Any, _Task] = {}
    home: dict[str, list[Row]] = {}  # rounds home of cases whose other rounds are not
    got: list[Row] = []
    agents: _Agents | None = None
    try:
        if not slot_nodes(ray):
            raise FleetError(f"no alive node of the cluster offers a {SLOT!r} resource")
        gpus = ray.cluster_resources().get("GPU", 0) > 0
        claimed = [(fp, dev) for fp, c in known.ceilings.items() for dev in c] if options.ceilings else []
        # On the head node, as Ray's own state actors are: it lives as long as the cluster does.
        ledger = ray.remote(num_cpus=0, resources={HEAD: 0.001})(Ledger).remote(claimed)
        agents = _Agents(ray, options, ledger)
        agents.ensure()
        # max_calls=0: the task's Ray worker is reused (the case's own process is the agent's worker).
        remote = ray.remote(max_calls=0, max_retries=0, num_cpus=0)(case_task)
        for r in range(rounds):
            for case in cases:
                gpu = {"num_gpus": 1} if uses_gpu(case.backend, options, gpus) else {}
                task = _Task(case, r, f"{case.key}#{r}")
                refs[remote.options(resources={SLOT: 1}, **gpu).remote(case, r, ledger, task.tag)] = task
        step, total, start = 0, len(refs), time.perf_counter()
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=POLL_S)
            lost = not ready and not agents.ensure()  # a node that joined gets its agent
            for ref in list(refs) if lost else ready:  # no node left: every remaining task is a row
                task = refs.pop(ref)
                one = _collect(ray, ref, task, ledger, lost, known, infos)
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
        for ref in refs:  # interrupted: nothing left running on the cluster for this run
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        if agents is not None:
            agents.close()
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


def _collect(
    ray: Any,
    ref: Any,
    task: _Task,
    ledger: Any,
    lost: bool,
    known: _Machines,
    infos: dict[str, BackendInfo],
) -> Row:
    """The row of one finished task, or of one lost or never run."""
    case = task.case
    try:
        if lost and not ray.wait([ref], timeout=0)[0]:
            ray.cancel(ref, force=True)
            raise FleetError(f"{LOST}no alive node of the cluster offers a {SLOT!r} resource any more")
        result: CaseResult = ray.get(ref)
    except (FleetError, ray.exceptions.RayError) as e:
        try:
            node = str(ray.get(ledger.node_of.remote(task.tag), timeout=10))
        except ray.exceptions.RayError:
            node = ""
        if isinstance(e, FleetError):
            return Row(case, status="error", reason=str(e), node=node)
        return _lost_row(case, e, node, ray)
    known.add(result)
    infos.setdefault(result.info.name, result.info)
    return result.row


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
