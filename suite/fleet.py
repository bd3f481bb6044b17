"""Fleet runs: one sweep placed on the nodes of a Ray cluster, rows home as they finish.

Ray Core does the placing; nothing here schedules. Every case is a Ray task that
asks for one ``bench_slot`` (a custom resource each node offers once, so one
timing job per node at a time) and, for a GPU case on a cluster with GPUs, one
GPU as well (a node with k GPUs offers k slots). ``max_calls=1`` gives every case
a fresh worker process and ``max_retries=0`` makes a lost case an ``error`` row
rather than a silent re-run. The driver collects rows with ``ray.wait`` and hands
each to ``on_row`` the moment it arrives (the session appends it to
``results.csv``). A small actor, the ``Ledger``, learns where each case started
(for the per-case timeout and for naming the node of a case that died) and
decides which task measures a machine's ceilings, once per machine.

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
from suite import machine
from suite.cases import Case, RunOptions
from suite.ceilings import HOST_DEVICE, annotate, from_metadata, measure_host, to_metadata
from suite.results import Row
from suite.runner import BackendInfo, first_line, open_backend, run_case

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


def node_name(node: dict[str, Any]) -> str:
    """How a row names a node: its address and the head of its Ray node id."""
    return f"{node.get('NodeManagerAddress', '?')}/{str(node.get('NodeID', '?'))[:8]}"


def slot_nodes(ray: Any) -> dict[str, str]:
    """Alive nodes offering a bench slot: node id -> name."""
    return {n["NodeID"]: node_name(n) for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get(SLOT)}


def uses_gpu(backend: str, options: RunOptions, cluster_has_gpus: bool) -> bool:
    """Whether a case of ``backend`` takes a GPU: host-only adapters never do."""
    from backends import REGISTRY

    cls = REGISTRY.get(backend)
    return cluster_has_gpus and options.device != "cpu" and cls is not None and not issubclass(cls, HostBackend)


class Ledger:
    """Where each case started, and who measures each machine's ceilings (a Ray actor)."""

    def __init__(self, claimed: list[tuple[str, str]]) -> None:
        self.started: dict[str, tuple[str, float]] = {}
        self.claimed = set(claimed)

    def start(self, tag: str, node: str) -> None:
        self.started[tag] = (node, time.monotonic())

    def claim(self, fingerprint: str, device: str) -> bool:
        """True for the first task to ask about this machine and device: it measures."""
        if (fingerprint, device) in self.claimed:
            return False
        self.claimed.add((fingerprint, device))
        return True

    def running(self) -> dict[str, tuple[str, float]]:
        """Task tag -> (node, seconds since it started), for the tasks that started."""
        now = time.monotonic()
        return {k: (n, now - t) for k, (n, t) in self.started.items()}


@dataclasses.dataclass
class CaseResult:
    """What one case task sends home."""

    row: Row
    info: BackendInfo
    node: str
    machine_info: dict[str, Any]
    host_ceilings: Any = None  # Ceilings of the host, when this task measured them


def case_task(case: Case, options: RunOptions, ledger: Any, tag: str) -> CaseResult:
    """The body of one case's (one round's) Ray task, in a fresh worker process on some node."""
    import ray

    node = f"{ray.util.get_node_ip_address()}/{ray.get_runtime_context().get_node_id()[:8]}"
    ray.get(ledger.start.remote(tag, node))
    info_m = machine.machine_info()
    fp = str(info_m["fingerprint"])
    measure = options.ceilings and options.measure
    adapter, info = open_backend(case.backend, dataclasses.replace(options, ceilings=False))
    host = None
    if info.available and measure:
        if info.device != HOST_DEVICE and ray.get(ledger.claim.remote(fp, info.device)):
            try:
                info.ceilings = adapter.measure_ceilings()
            except Exception as e:  # a failed ceiling costs the roofline columns, not the case
                info.ceilings_error = first_line(e)
        if ray.get(ledger.claim.remote(fp, HOST_DEVICE)):
            host = measure_host()
    if info.available:
        row = run_case(case, adapter, options, info.threads)
    else:
        row = Row(case, status="skipped", reason=info.reason)
    row.machine, row.node = fp, node
    return CaseResult(row, info, node, info_m, host)


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


def _lost_row(case: Case, error: Exception, started: tuple[str, float] | None, ray: Any) -> Row:
    """The row of a case whose task did not come home: its node died, its worker crashed, or it raised."""
    nodes = {n["NodeID"]: n for n in ray.nodes()}
    node = started[0] if started else ""
    match = re.search(r"node ID: ([0-9a-f]+)", str(error))
    if not node and match:
        node = node_name(nodes.get(match.group(1), {"NodeID": match.group(1), "NodeManagerAddress": "?"}))
    dead = {node_name(n) for n in nodes.values() if not n.get("Alive")}
    where = node or "an unknown node"
    if isinstance(error, ray.exceptions.NodeDiedError) or (node and node in dead):
        reason = f"{LOST}node {where} died while running the case ({first_line(error)}); --resume runs it again"
    elif isinstance(error, ray.exceptions.WorkerCrashedError):
        reason = f"the worker process on node {where} died (crash or out-of-memory kill)"
    else:
        reason = f"on node {where}: {first_line(error)}"
    return Row(case, status="error", reason=reason, node=node)


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

    With ``options.rounds`` R, each case is R tasks (fresh processes, submitted round
    by round so rounds interleave across the sweep); its row, the rounds pooled
    per machine (``suite.rounds.merge_rows``), exists when all R are home. A case
    with a round lost with its node is one ``lost`` row. ``machines``
    (fingerprint -> {machine, ceilings, nodes, backends}) fills as nodes report; a
    resumed run passes its stored one, so its rows keep the ceilings they were
    judged by. Raises FleetError before any case runs.
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
    try:
        if not slot_nodes(ray):
            raise FleetError(f"no alive node of the cluster offers a {SLOT!r} resource")
        gpus = ray.cluster_resources().get("GPU", 0) > 0
        claimed = [(fp, dev) for fp, c in known.ceilings.items() for dev in c] if options.ceilings else []
        # On the head node, as Ray's own state actors are: it lives as long as the cluster does.
        ledger = ray.remote(num_cpus=0, resources={HEAD: 0.001})(Ledger).remote(claimed)
        remote = ray.remote(max_calls=1, max_retries=0, num_cpus=0)(case_task)
        for r in range(rounds):
            for case in cases:
                gpu = {"num_gpus": 1} if uses_gpu(case.backend, options, gpus) else {}
                task = _Task(case, r, f"{case.key}#{r}")
                refs[remote.options(resources={SLOT: 1}, **gpu).remote(case, options, ledger, task.tag)] = task
        cancelled: set[Any] = set()
        step, total, start = 0, len(refs), time.perf_counter()
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=POLL_S)
            lost = not ready and _watch(ray, refs, ledger, options, cancelled)
            for ref in list(refs) if lost else ready:  # no node left: every remaining task is a row
                task = refs.pop(ref)
                one = _collect(ray, ref, task, ledger, lost, options, cancelled, known, infos)
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
    options: RunOptions,
    cancelled: set[Any],
    known: _Machines,
    infos: dict[str, BackendInfo],
) -> Row:
    """The row of one finished task, or of one lost, stopped or never run."""
    case = task.case
    try:
        if lost and ref not in cancelled and not ray.wait([ref], timeout=0)[0]:
            ray.cancel(ref, force=True)
            raise FleetError(f"{LOST}no alive node of the cluster offers a {SLOT!r} resource any more")
        result: CaseResult = ray.get(ref)
    except (FleetError, ray.exceptions.RayError) as e:
        try:
            started = ray.get(ledger.running.remote(), timeout=10).get(task.tag)
        except ray.exceptions.RayError:
            started = None
        if ref in cancelled:
            return _timeout_row(case, started[0] if started else "?", options, "its worker was stopped")
        if isinstance(e, FleetError):
            return Row(case, status="error", reason=str(e), node=started[0] if started else "")
        return _lost_row(case, e, started, ray)
    known.add(result)
    infos.setdefault(result.info.name, result.info)
    if result.row.elapsed_s > options.case_timeout_s:
        # Past the timeout but home before the next look at the ledger: a timeout all the
        # same, as the local runner would have stopped it, whatever the poll's phase.
        return _timeout_row(case, result.node, options, "it finished before it could be stopped")
    return result.row


def _timeout_row(case: Case, node: str, options: RunOptions, what: str) -> Row:
    return Row(
        case,
        status="timeout",
        node=node,
        reason=f"ran past the per-case timeout of {options.case_timeout_s:g} s on node {node}; {what}",
    )


def _watch(ray: Any, refs: dict[Any, _Task], ledger: Any, options: RunOptions, cancelled: set[Any]) -> bool:
    """Stop tasks past the per-case timeout; True when no node with a slot is left to run the rest."""
    try:
        running = ray.get(ledger.running.remote(), timeout=10)
    except ray.exceptions.RayError:
        running = {}
    for ref, task in refs.items():
        started = running.get(task.tag)
        if ref not in cancelled and started is not None and started[1] > options.case_timeout_s:
            ray.cancel(ref, force=True)
            cancelled.add(ref)
    return not slot_nodes(ray)


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
