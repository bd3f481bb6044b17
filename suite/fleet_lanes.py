"""The driver's side of a fleet run's lanes: making them, hearing from them, ending them.

``Lanes`` makes one lane (``suite.fleet_node.lane``) per ``bench_slot`` of each
alive node, with hard node affinity, when the run starts and when a node joins;
a node with GPUs gets GPU lanes when the run has GPU cases. It turns what a lane
sends into rows: a result, its end (the queue had nothing left for it), or its
failure, whose taken and unfinished cases become rows naming their node
(``lost`` when the node died: ``--resume`` runs them again). Cases still queued
when no live lane can take them (their nodes gone) are drained into ``lost``
rows. At the end, a lane that ran cases is left to stop its workers; one that
never did (waiting for its slot) is cancelled; an interruption cancels all.

Ray is imported inside functions only: ``import suite`` never needs it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import re
import time
from collections.abc import Callable
from typing import Any

from suite.cases import Case, RunOptions
from suite.fleet_node import CPU, GPU, CaseResult, Ledger, Task, lane, node_name
from suite.results import Row
from suite.runner import first_line

#: The custom resource of one timing job: each node offers one (or one per GPU).
SLOT = "bench_slot"
#: The resource only the head node has (ray._common.constants.HEAD_NODE_RESOURCE_NAME).
HEAD = "node:__internal_head__"
#: Seconds the driver waits for a row before it looks again at what else may have happened.
POLL_S = 0.5
#: Seconds between looks at the cluster (a node that joined, kinds of case no lane is left to take).
LOOK_S = 2.0
#: Seconds a cancelled lane has to finish its case and stop its workers before Ray kills it.
CLOSE_S = 10.0
#: The ledger's name in this driver's Ray namespace: made by the first run, reused by the next.
LEDGER = "causal-bench-ledger"
#: The reason of a row whose case was lost with its node: ``--resume`` runs it again.
LOST = "lost: "
#: Seconds to wait for the cluster to mark a node dead when a lane failed there without
#: saying why: Ray's health checks take some seconds to declare a node whose raylet was killed.
NODE_FATE_S = 30.0


def is_lost(row: Row) -> bool:
    """Whether ``row`` records a case lost with its node (an infrastructure failure, not the case's)."""
    return row.status == "error" and row.reason.startswith(LOST)


def slot_nodes(ray: Any) -> dict[str, dict[str, Any]]:
    """Alive nodes offering a bench slot: node id -> Ray's description of the node."""
    return {n["NodeID"]: n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get(SLOT)}


def lost_row(case: Case, error: Exception, node: str, ray: Any) -> Row:
    """The row of a case whose lane failed while running it: its node died, or Ray failed.

    A crash or a timeout of the case itself never gets here: the lane's worker
    runner makes those rows, as locally. So a failed lane is the node's doing, and
    a node that is (or, within ``NODE_FATE_S``, becomes) dead makes the case
    ``lost``: ``--resume`` runs it again.
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
        reason = f"the case's lane failed on node {where}: {first_line(error)}"
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


@functools.cache
def _remotes(ray: Any) -> tuple[Any, Any]:
    """The ledger's actor class and the lanes' remote function, made once per process.

    The ledger lives on the head node, as Ray's own state actors do. A lane holds
    no CPU (its slot says what it is); ``max_calls=0`` keeps its Ray worker for the
    next lane (a GPU task's default is a fresh process each time).
    """
    ledger = ray.remote(num_cpus=0, resources={HEAD: 0.001}, max_restarts=0)(Ledger)
    lanes = ray.remote(num_returns="streaming", max_calls=0, max_retries=0, num_cpus=0)(lane)
    return ledger, lanes


#: The ledger of each Ray job (driver connection) of this process. Held here so the actor lives
#: from one run to the next: an actor whose last handle goes away is destroyed, and a run
#: that found it by name while it died would get a dead actor.
_LEDGERS: dict[str, Any] = {}


def open_ledger(ray: Any, run: str, queues: dict[str, list[Task]], claimed: list[tuple[str, str]]) -> Any:
    """The ledger (made by this connection's first run, the same actor after), with run ``run`` opened on it."""
    job = str(ray.get_runtime_context().get_job_id())
    for other in [j for j in _LEDGERS if j != job]:  # connections this process left: their actors went with them
        del _LEDGERS[other]
    ledger = _LEDGERS.get(job)
    if ledger is not None:
        try:
            ray.get(ledger.open.remote(run, queues, claimed))
            return ledger
        except ray.exceptions.RayActorError:  # died with its node: make another
            del _LEDGERS[job]
    ledger = _remotes(ray)[0].options(name=f"{LEDGER}-{job}-{run[:8]}").remote()
    ray.get(ledger.open.remote(run, queues, claimed))
    _LEDGERS[job] = ledger
    return ledger


@dataclasses.dataclass
class _Lane:
    name: str
    node_id: str
    gpu: bool
    rows: int = 0  # results home from it


class Lanes:
    """A run's lanes: one per bench slot of each alive node, made as nodes appear; what they send; their ends."""

    def __init__(self, ray: Any, run: str, options: RunOptions, ledger: Any) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.ray, self.run, self.options, self.ledger = ray, run, options, ledger
        self.affinity = NodeAffinitySchedulingStrategy
        self.live: dict[Any, _Lane] = {}  # ObjectRefGenerator -> its lane
        self.seen: set[str] = set()
        self.nodes: dict[str, dict[str, Any]] = {}  # alive nodes with a slot, at the last look
        self.made = 0
        self.error: Exception | None = None  # the last lane's failure

    def look(self, gpu_work: bool, nodes: dict[str, dict[str, Any]] | None = None) -> None:
        """Look at the cluster (or take ``nodes``, just seen): each alive node with a slot and no lanes gets them."""
        self.nodes = slot_nodes(self.ray) if nodes is None else nodes
        for node_id in self.nodes.keys() - self.seen:
            self.seen.add(node_id)
            resources = self.nodes[node_id]["Resources"]
            gpus = int(resources.get("GPU", 0)) if gpu_work else 0
            for i in range(max(int(resources[SLOT]), 1)):
                self.make(node_id, gpu=i < gpus)

    def make(self, node_id: str, gpu: bool) -> None:
        self.made += 1
        name = f"{node_id[:8]}-{self.made}"
        placed = self.affinity(node_id=node_id, soft=False)  # if the node dies first, the lane fails
        remote = _remotes(self.ray)[1].options(resources={SLOT: 1}, num_gpus=int(gpu), scheduling_strategy=placed)
        kinds = (GPU, CPU) if gpu else (CPU,)
        self.live[remote.remote(self.run, name, kinds, self.options, self.ledger)] = _Lane(name, node_id, gpu)

    def receive(
        self, gen: Any, pending: dict[str, Task], on_result: Callable[[CaseResult], None]
    ) -> list[tuple[Task, Row]]:
        """What the ready lane ``gen`` sent: a result, its end (nothing left to take), or its failure."""
        try:
            ref = next(gen)
        except StopIteration:
            del self.live[gen]
            return []
        try:
            result: CaseResult = self.ray.get(ref)
        except self.ray.exceptions.RayError as e:
            return self._failed(gen, e, pending)
        self.live[gen].rows += 1
        task = pending.pop(result.tag, None)
        if task is None:  # already a row (cannot happen: a task is taken once)
            return []
        on_result(result)
        return [(task, result.row)]

    def _failed(self, gen: Any, error: Exception, pending: dict[str, Task]) -> list[tuple[Task, Row]]:
        """The rows of what a failed lane had taken and not sent home; its node, if alive, gets another lane."""
        lane, ray = self.live.pop(gen), self.ray
        self.error = error
        if not pending:
            return []
        try:
            taken = ray.get(self.ledger.taken.remote(self.run, lane.name), timeout=10)
        except ray.exceptions.RayError:
            taken = []
        lost = [(pending.pop(tag), node) for tag, node in taken if tag in pending]
        rows = [(task, lost_row(task.case, error, node, ray)) for task, node in lost]
        if taken and lane.node_id in slot_nodes(ray):  # it ran cases, so another can: a finite number of tries
            self.make(lane.node_id, lane.gpu)
        return rows

    def orphans(self, pending: dict[str, Task]) -> list[tuple[Task, Row]]:
        """Rows for the queued tasks no live lane can take (their nodes died, or their lanes failed)."""
        out: list[tuple[Task, Row]] = []
        for gpu in (True, False):
            served = any(lane.gpu or not gpu for lane in self.live.values())  # every lane takes CPU cases
            if served or not any(t.gpu == gpu for t in pending.values()):
                continue
            tags = self.ray.get(self.ledger.drain.remote(self.run, GPU if gpu else CPU), timeout=10)
            if not self.nodes:
                reason = f"{LOST}no alive node of the cluster offers a {SLOT!r} resource any more"
            elif gpu and not any(n["Resources"].get("GPU") for n in self.nodes.values()):
                reason = f"{LOST}no alive node of the cluster offers a {SLOT!r} resource and a GPU any more"
            else:
                failure = first_line(self.error) if self.error else "none failed"
                reason = f"{LOST}no lane of the run is left to take it ({failure})"
            drained = [pending.pop(tag) for tag in tags if tag in pending]
            out += [(task, Row(task.case, status="error", reason=reason)) for task in drained]
        if not self.live:  # nothing is left to bring the rest home
            out += [
                (t, Row(t.case, status="error", reason=f"{LOST}its lane ended without it")) for t in pending.values()
            ]
            pending.clear()
        return out

    def stop(self, interrupted: bool) -> None:
        """End the lanes left: let those that ran cases stop their workers (cancelled first when
        ``interrupted``: they stop after the case they run), cancel those that never did (still
        waiting for their slot), and kill what is left after ``CLOSE_S``."""
        ray = self.ray
        for gen, one in self.live.items():
            if interrupted or not one.rows:
                with contextlib.suppress(Exception):
                    ray.cancel(gen, force=False)  # a KeyboardInterrupt in the lane, which stops its workers
        ends = {gen.completed(): gen for gen in self.live}
        with contextlib.suppress(Exception):
            _, left = ray.wait(list(ends), num_returns=len(ends), timeout=CLOSE_S) if ends else ([], [])
            for ref in left:
                with contextlib.suppress(Exception):
                    ray.cancel(ends[ref], force=True)
        self.live.clear()
