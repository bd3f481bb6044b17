"""What runs on a fleet node: its lanes, the node agent each runs cases in, and the runs' ledger.

A lane (``lane``) is one Ray generator task per ``bench_slot`` of a node, made by
the driver with node affinity. It holds the slot (a GPU lane one GPU as well)
for as long as the run has cases for it: it takes the next case from the run's
``Ledger`` (an actor on the head node, the run's queue), runs it, yields its
``CaseResult`` (which Ray streams home at once), and takes the next, until the
ledger has none left for it; then it returns and frees the slot. While a lane
runs, nothing else holds its slot: with one slot per node, one case at a time
runs on the node. A CPU lane takes the CPU
cases; a GPU lane takes the GPU cases first, then CPU ones, so a node without a
GPU never gets a GPU case and a node with one is never idle while CPU cases wait.

A lane runs its cases in its ``NodeAgent``, in its own process: the same
``suite.workers.IsolatedRunner`` the local runner uses, one spawned worker per
backend, kept across cases, fresh for each round, replaced after a crash or a
timeout, so a fleet row is the row the local runner would have made, its reason
naming the node. Per case the lane makes one call to Ray, ``take``, which also
records where the case started (so a case lost with its node still names it);
who measures a machine's ceilings (its host's, each backend's device) it asks
the ledger once per lane.

Ray is imported inside functions only: ``import suite`` never needs it.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Callable, Iterator
from typing import Any

from suite import machine
from suite.cases import Case, RunOptions
from suite.ceilings import HOST_DEVICE, measure_host
from suite.results import Row
from suite.rounds import round_options
from suite.runner import BackendInfo
from suite.workers import IsolatedRunner

#: The kinds of case a lane takes, in the order it takes them: a CPU lane ``(CPU,)``, a GPU lane ``(GPU, CPU)``.
CPU, GPU = "cpu", "gpu"


def node_name(node: dict[str, Any]) -> str:
    """How a row names a node: its address and the head of its Ray node id."""
    return f"{node.get('NodeManagerAddress', '?')}/{str(node.get('NodeID', '?'))[:8]}"


def this_node(ray: Any) -> tuple[str, str]:
    """(node id, name) of the node this Ray worker runs on."""
    node_id = str(ray.get_runtime_context().get_node_id())
    return node_id, node_name({"NodeManagerAddress": ray.util.get_node_ip_address(), "NodeID": node_id})


@dataclasses.dataclass(frozen=True)
class Task:
    """One round of one case, as queued in the ledger: ``gpu`` says it takes a GPU (a GPU lane's)."""

    case: Case
    round: int
    tag: str
    gpu: bool = False


@dataclasses.dataclass
class _Run:
    queues: dict[str, collections.deque[Task]]
    claimed: set[tuple[str, str]]
    taken: dict[str, list[tuple[str, str]]] = dataclasses.field(default_factory=dict)  # lane -> [(tag, node)]


class Ledger:
    """The runs' queues, where each case started, who measures each machine's ceilings (a Ray actor).

    One serves every run of a driver process (``suite.fleet`` reuses it by name),
    each run's state under its id from ``open`` to ``close``: a lane of an earlier
    run still winding down takes nothing of a later one.
    """

    def __init__(self) -> None:
        self.runs: dict[str, _Run] = {}

    def open(self, run: str, queues: dict[str, list[Task]], claimed: list[tuple[str, str]]) -> None:
        """Start run ``run``: its tasks by kind, in the order they run; ``claimed``: ceilings already known."""
        self.runs[run] = _Run({k: collections.deque(v) for k, v in queues.items()}, set(claimed))

    def close(self, run: str) -> None:
        self.runs.pop(run, None)

    def take(self, run: str, kinds: tuple[str, ...], lane: str, node: str) -> Task | None:
        """The next task of the first of ``kinds`` that has one, recorded as started on ``node``; None: none left."""
        state = self.runs.get(run)
        if state is None:
            return None
        for kind in kinds:
            if queue := state.queues.get(kind):
                task = queue.popleft()
                state.taken.setdefault(lane, []).append((task.tag, node))
                return task
        return None

    def taken(self, run: str, lane: str) -> list[tuple[str, str]]:
        """(tag, node) of every task ``lane`` took, in order (the driver asks when a lane failed)."""
        state = self.runs.get(run)
        return list(state.taken.get(lane, [])) if state else []

    def drain(self, run: str, kind: str) -> list[str]:
        """Empty the queue of ``kind`` (no lane is left to take it): the tags it held."""
        state = self.runs.get(run)
        queue = state.queues.get(kind) if state else None
        tags = [t.tag for t in queue] if queue else []
        if queue:
            queue.clear()
        return tags

    def claim(self, run: str, fingerprint: str, what: str) -> bool:
        """True for the first to ask about this machine and device (or backend): it measures."""
        state = self.runs.get(run)
        if state is None or (fingerprint, what) in state.claimed:
            return False
        state.claimed.add((fingerprint, what))
        return True


@dataclasses.dataclass
class CaseResult:
    """What a lane sends home for one task."""

    tag: str
    row: Row
    info: BackendInfo
    node: str
    machine_info: dict[str, Any]
    host_ceilings: Any = None  # Ceilings of the host, when this case's agent measured them


@functools.cache
def _machine_info() -> dict[str, Any]:
    """This machine's description, once per Ray worker process (a lane's worker is reused across runs)."""
    return machine.machine_info()


class NodeAgent:
    """A lane's workers: runs its cases one at a time in the local runner's worker processes.

    The runner of the current round and GPUs is kept across cases; a case of
    another round (or given other GPUs) gets a new runner, so every round of a
    case is measured in a fresh process, as locally. ``ask(fingerprint, what)``
    claims the measuring of a machine's ceilings from the ledger; each question is
    asked once (asked again, the answer is no: measured here already, or elsewhere).
    """

    def __init__(self, options: RunOptions, node: str, ask: Callable[[str, str], bool]) -> None:
        self.options, self.node, self.ask = options, node, ask
        self.machine_info = _machine_info()
        self.fingerprint = str(self.machine_info["fingerprint"])
        self.asked: set[str] = set()
        self.runner: IsolatedRunner | None = None
        self.key: tuple[int, tuple[str, ...]] | None = None

    def _claim(self, what: str) -> bool:
        if what in self.asked:
            return False
        self.asked.add(what)
        return self.ask(self.fingerprint, what)

    def _runner(self, r: int, gpus: tuple[str, ...]) -> IsolatedRunner:
        if self.runner is None or self.key != (r, gpus):
            self.close()
            self.key = (r, gpus)
            self.runner = IsolatedRunner(
                round_options(self.options, r),
                env={"CUDA_VISIBLE_DEVICES": ",".join(gpus)} if gpus else None,
                place=f" on node {self.node}",
                ceilings_for=lambda backend: self._claim(f"backend {backend}"),
            )
        return self.runner

    def run(self, task: Task, gpus: tuple[str, ...]) -> CaseResult:
        """``task`` in this node's worker for its backend (``gpus``: what Ray gave the lane, for a GPU task)."""
        case = task.case
        runner = self._runner(task.round, gpus if task.gpu else ())
        info = runner.info(case.backend)
        host = None
        if info.available and runner.options.ceilings and runner.options.measure and self._claim(HOST_DEVICE):
            host = measure_host()  # no case runs on this node meanwhile: the lane holds its slot
        row = runner.run(case) if info.available else Row(case, status="skipped", reason=info.reason)
        row.machine, row.node = self.fingerprint, self.node
        return CaseResult(task.tag, row, info, self.node, self.machine_info, host)

    def close(self) -> None:
        """Stop this lane's workers."""
        if self.runner is not None:
            self.runner.close()
        self.runner, self.key = None, None


def lane(run: str, name: str, kinds: tuple[str, ...], options: RunOptions, ledger: Any) -> Iterator[CaseResult]:
    """The body of a lane (a Ray generator task holding a slot): take, run, yield, until nothing is left."""
    import ray

    _, node = this_node(ray)
    gpus = tuple(str(g) for g in ray.get_gpu_ids())
    agent = NodeAgent(options, node, lambda fp, what: bool(ray.get(ledger.claim.remote(run, fp, what))))
    try:
        while (task := ray.get(ledger.take.remote(run, kinds, name, node))) is not None:
            yield agent.run(task, gpus)
    finally:  # the queue is empty, or the driver cancelled the lane (KeyboardInterrupt here)
        agent.close()
