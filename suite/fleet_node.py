"""What runs on a fleet node: its node agent, the case task that holds the node's slot, the run's ledger.

Each case (each round of it) is a Ray task, ``case_task``, that asks for the
node's one ``bench_slot`` (and a GPU for a GPU case): Ray's scheduler places it,
and while it runs no other case of the run can start on that node. The task
itself is a thin hop: it hands the case to its node's ``NodeAgent``, an actor
that holds no resources (so it never blocks another backend or another run's
task) and lives as long as the run. The agent owns the same
``suite.workers.IsolatedRunner`` the local runner uses: one spawned worker per
backend, kept across cases, fresh for each round, replaced after a crash or a
timeout, so a fleet row is the row the local runner would have made, its reason
naming the node. The ``Ledger`` (an actor on the head node) learns where each
case started, for naming the node of a case that is lost, and lets one task per
machine measure its ceilings.

Ray is imported inside functions only: ``import suite`` never needs it.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from suite import machine
from suite.cases import Case, RunOptions
from suite.ceilings import HOST_DEVICE, measure_host
from suite.results import Row
from suite.rounds import round_options
from suite.runner import BackendInfo
from suite.workers import IsolatedRunner

#: Named actors of a run (its Ray namespace): ``AGENT`` plus the node id.
AGENT = "causal-bench-agent-"
#: How long a case task waits for its node's agent (a node that joined after the run started gets one
#: at the driver's next look at the cluster).
AGENT_WAIT_S = 60.0


def agent_name(node_id: str) -> str:
    return f"{AGENT}{node_id}"


def node_name(node: dict[str, Any]) -> str:
    """How a row names a node: its address and the head of its Ray node id."""
    return f"{node.get('NodeManagerAddress', '?')}/{str(node.get('NodeID', '?'))[:8]}"


def this_node(ray: Any) -> tuple[str, str]:
    """(node id, name) of the node this Ray worker runs on."""
    node_id = str(ray.get_runtime_context().get_node_id())
    return node_id, node_name({"NodeManagerAddress": ray.util.get_node_ip_address(), "NodeID": node_id})


class Ledger:
    """Where each case started, and who measures each machine's ceilings (a Ray actor)."""

    def __init__(self, claimed: list[tuple[str, str]]) -> None:
        self.started: dict[str, str] = {}
        self.claimed = set(claimed)

    def start(self, tag: str, node: str) -> None:
        self.started[tag] = node

    def claim(self, fingerprint: str, what: str) -> bool:
        """True for the first to ask about this machine and device (or backend): it measures."""
        if (fingerprint, what) in self.claimed:
            return False
        self.claimed.add((fingerprint, what))
        return True

    def node_of(self, tag: str) -> str:
        """The node the case task ``tag`` started on ("" when it never started)."""
        return self.started.get(tag, "")


@dataclasses.dataclass
class CaseResult:
    """What one case task sends home."""

    row: Row
    info: BackendInfo
    node: str
    machine_info: dict[str, Any]
    host_ceilings: Any = None  # Ceilings of the host, when this case's agent measured them


class NodeAgent:
    """One node's workers for the length of a run (a Ray actor on that node, holding no resources).

    Cases come one at a time (an actor runs one call at a time, and the slot lets
    one case task onto the node). The runner of the current round and GPUs is
    kept across cases; a case of another round (or given other GPUs) gets a new
    runner, so every round of a case is measured in a fresh process, as locally.
    """

    def __init__(self, options: RunOptions, ledger: Any) -> None:
        import ray

        self.options = options
        self.ledger = ledger
        _, self.node = this_node(ray)
        self.machine_info = machine.machine_info()
        self.fingerprint = str(self.machine_info["fingerprint"])
        self.runner: IsolatedRunner | None = None
        self.key: tuple[int, tuple[str, ...]] | None = None

    def _claim(self, what: str) -> bool:
        import ray

        return bool(ray.get(self.ledger.claim.remote(self.fingerprint, what)))

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

    def run(self, case: Case, r: int, gpus: list[str]) -> CaseResult:
        """Round ``r`` of ``case`` in this node's worker for its backend (``gpus``: what Ray gave the task)."""
        runner = self._runner(r, tuple(gpus))
        info = runner.info(case.backend)
        host = None
        if info.available and runner.options.ceilings and runner.options.measure and self._claim(HOST_DEVICE):
            host = measure_host()  # no case runs on this node meanwhile: the agent is its one runner
        row = runner.run(case) if info.available else Row(case, status="skipped", reason=info.reason)
        row.machine, row.node = self.fingerprint, self.node
        return CaseResult(row, info, self.node, self.machine_info, host)

    def close(self) -> None:
        """Stop this node's workers (the agent itself ends with the run)."""
        if self.runner is not None:
            self.runner.close()
        self.runner, self.key = None, None


def case_task(case: Case, r: int, ledger: Any, tag: str) -> CaseResult:
    """The body of one case's (one round's) Ray task: it holds the slot while its node's agent runs the case."""
    import ray

    node_id, node = this_node(ray)
    ray.get(ledger.start.remote(tag, node))
    deadline = time.monotonic() + AGENT_WAIT_S
    while True:
        try:
            agent = ray.get_actor(agent_name(node_id))
            break
        except ValueError:  # not made yet: this node joined after the driver last looked
            if time.monotonic() > deadline:
                raise RuntimeError(f"node {node} has no node agent after {AGENT_WAIT_S:g} s") from None
            time.sleep(0.2)
    gpus = [str(g) for g in ray.get_gpu_ids()]
    result: CaseResult = ray.get(agent.run.remote(case, r, gpus))
    return result
