"""Isolation by construction: the cores a worker runs on and the threads its libraries may use.

While a case is timed its worker is the only process of the run that works (the
runner keeps one worker at a time; the progress display does not redraw), pinned
to its cores, with every library's thread pool sized to them. The steps, each of
which ``--isolation`` can switch off for an A/B (``scripts/isolation_ab.py``):

- ``pin``: the worker is born pinned (``os.sched_setaffinity``) to its cores (the
  last ``--worker-cores`` N of this process's, the harness keeping the rest), and
  every pool is sized to them: environment variables set before any library loads
  (OpenMP, OpenBLAS, MKL, Numba), the adapter's ``set_threads`` (torch's intra-op
  and inter-op threads, Numba's), threadpoolctl for every BLAS and OpenMP pool
  already loaded. JAX 0.10's XLA sizes its CPU pools (``tf_XLAEigen``, the LLVM
  compile workers) by the process affinity and ignores ``XLA_FLAGS``'s thread
  flags, so pinning is what sizes it.
- ``quiet``: the progress display redraws only when a case starts or ends
  (``suite.cli.progress``), never while one is timed.
- ``layout``: the worker is born with address-space randomisation off
  (``personality(ADDR_NO_RANDOMIZE)``, as ``setarch -R`` does), so every worker of a run
  gets the same stack, heap and library addresses and the same memory-layout luck. Off
  by default and not yet measured: it would trade variance between processes for a
  layout bias shared by all of them (``scripts/isolation_ab.py`` with ``--rounds`` in
  the sweep reports the spread between processes of each configuration). Where the
  kernel refuses the call (a container's seccomp filter), the row's reason says so.
- ``passive``: the worker's OpenMP threads sleep at once when idle
  (``OMP_WAIT_POLICY=PASSIVE``, ``KMP_BLOCKTIME=0``). Off by default: the runner
  already closes idle workers, so it would only change how the measured library
  itself waits between parallel regions.

Inside the worker, :func:`read_back` reads the settings as the libraries hold them
(affinity, threadpoolctl's pools, the adapter's threads) into a :class:`Placement`;
a setting that did not take becomes the row's reason, never silence.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # suite.cases reads this module's defaults
    from suite.cases import RunOptions

#: Every step ``--isolation`` may name, and those taken unless told otherwise.
STEPS = ("pin", "quiet", "passive", "layout")
DEFAULT_STEPS = ("pin", "quiet")
#: What ``--worker-cores`` accepts besides a count: every core, or (the default) every core
#: but one, which the harness keeps: measured on the project's 2-core machine, a worker on
#: one core and the harness on the other gave 0% unstable rows against 20% with both cores
#: shared, at the same rerun agreement (results/tuning/isolation-ab.md).
ALL_CORES = "all"
AUTO_CORES = "auto"
#: ``worker_cores`` of ``auto``; 0 is ``all``, N > 0 the last N cores.
AUTO = -1
#: Thread-count variables read by the libraries when they load.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
#: OpenMP runtimes (GNU and Intel) told to put idle threads to sleep at once.
PASSIVE_VARIABLES = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}


class IsolationError(ValueError):
    """A setting that cannot be honoured on this machine (too many cores asked, say)."""


def parse_steps(text: str) -> tuple[str, ...]:
    """``pin,quiet`` (or ``none``) into steps; IsolationError naming an unknown one."""
    if text.strip() == "none":
        return ()
    steps = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise IsolationError(f"unknown isolation step {unknown[0]!r}; choose from {', '.join(STEPS)} or none")
    return steps


def parse_worker_cores(text: str) -> int:
    """``auto`` -> AUTO (every core but one), ``all`` -> 0 (every core this process may use),
    ``N`` -> N; IsolationError otherwise."""
    if text == AUTO_CORES:
        return AUTO
    if text == ALL_CORES:
        return 0
    if not text.isdigit() or int(text) < 1:
        raise IsolationError(f"expected {AUTO_CORES}, {ALL_CORES} or a positive number of cores, got {text!r}")
    return int(text)


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on, sorted."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def split_cpus(worker_cores: int, available: Sequence[int]) -> tuple[list[int], list[int]]:
    """(the worker's CPUs, the harness's): the last ``worker_cores`` (0: all; AUTO: all but
    one, the harness sharing the worker's only core on a one-core machine) of ``available``."""
    cpus = sorted(available)
    n = max(len(cpus) - 1, 1) if worker_cores == AUTO else worker_cores or len(cpus)
    if n > len(cpus):
        raise IsolationError(f"{n} worker cores asked, {len(cpus)} available ({format_cpus(cpus)})")
    return cpus[len(cpus) - n :], cpus[: len(cpus) - n]


def format_cpus(cpus: Iterable[int]) -> str:
    """CPU numbers as ranges, as ``taskset -c`` writes them: ``0-3,6``."""
    ordered = sorted(set(cpus))
    parts: list[str] = []
    start = prev = -2
    for c in [*ordered, -2]:
        if c != prev + 1:
            if start >= 0:
                parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = c
        prev = c
    return ",".join(parts)


@dataclass(frozen=True)
class WorkerPlan:
    """What the parent decides for a worker before it starts: its CPUs, threads and environment."""

    cpus: tuple[int, ...] | None  # None: not pinned
    threads: int | None  # None: the libraries' own
    env: dict[str, str] = field(default_factory=dict)
    fixed_layout: bool = False  # born with address-space randomisation off (the ``layout`` step)


def plan_worker(worker_cores: int, steps: Sequence[str], threads: int | None) -> tuple[WorkerPlan, list[int]]:
    """The worker's plan and the harness's CPUs (empty: it shares the worker's)."""
    env = dict(PASSIVE_VARIABLES) if "passive" in steps else {}
    fixed = "layout" in steps
    if "pin" not in steps:
        if threads is not None:
            env.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
        return WorkerPlan(None, threads, env, fixed), []
    cpus, harness = split_cpus(worker_cores, allowed_cpus())
    n = threads or len(cpus)
    env.update(dict.fromkeys(THREAD_VARIABLES, str(n)))
    return WorkerPlan(tuple(cpus), n, env, fixed), harness


@contextlib.contextmanager
def on_cpus(cpus: tuple[int, ...] | None) -> Iterator[None]:
    """Run the calling thread (and the threads it starts) on ``cpus`` inside the block
    (nothing when None): the parent's probes of the machine (the canary, the ceilings)
    measure the worker's cores, not the harness's. On the 2-core machine the canary's
    matmul read 0.66-0.78 of its reference on the harness's core through whole sweeps
    whose rows agreed with a rerun within 4%."""
    if not cpus:
        yield
        return
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, saved)


@contextlib.contextmanager
def blas_threads(threads: int | None) -> Iterator[None]:
    """BLAS and OpenMP pools of this process limited to ``threads`` inside the block (None: as they are)."""
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        yield


def worker_cpus(options: RunOptions) -> tuple[int, ...] | None:
    """The CPUs the run's workers are pinned to (None: not pinned, or no workers)."""
    if not options.isolate or "pin" not in options.isolation:
        return None
    return plan_worker(options.worker_cores, options.isolation, options.threads)[0].cpus


def pin_process(cpus: Iterable[int]) -> None:
    """Pin every thread of this process (not only the calling one, as ``sched_setaffinity(0)`` does)."""
    wanted = set(cpus)
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        tids = [0]
    for tid in tids:
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(tid, wanted)


#: ``personality(2)``'s flag that turns address-space randomisation off for what this process execs.
ADDR_NO_RANDOMIZE = 0x0040000
#: ``personality(0xffffffff)`` reads the current persona without changing it.
_QUERY = 0xFFFFFFFF


def _personality(persona: int) -> int:
    """``personality(2)`` through libc: the previous persona, or -1 when the kernel refused."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.personality.argtypes = [ctypes.c_ulong]
    libc.personality.restype = ctypes.c_int
    return int(libc.personality(persona))


def set_fixed_layout() -> int | None:
    """Turn randomisation off for the children this process starts from now on; the previous
    persona (to restore), or None when the kernel refused (the worker then reports it)."""
    current = _personality(_QUERY)
    if current < 0 or _personality(current | ADDR_NO_RANDOMIZE) < 0:
        return None
    return current


def layout_fixed() -> bool:
    """Whether this process was started with address-space randomisation off (read back in the worker)."""
    try:
        with open("/proc/self/personality") as f:
            persona = int(f.read().strip(), 16)
    except (OSError, ValueError):
        return False
    return bool(persona & ADDR_NO_RANDOMIZE)


@contextlib.contextmanager
def spawning(plan: WorkerPlan) -> Iterator[None]:
    """Start a child inside this block and it is born with ``plan``'s environment and CPUs.

    A spawned child inherits the environment and the calling thread's affinity at
    birth, before it imports anything: so every library it loads sees them.
    """
    saved_env = {k: os.environ.get(k) for k in plan.env}
    saved_cpus = os.sched_getaffinity(0) if plan.cpus else None
    saved_persona = set_fixed_layout() if plan.fixed_layout else None
    os.environ.update(plan.env)
    try:
        if plan.cpus:
            os.sched_setaffinity(0, plan.cpus)
        yield
    finally:
        if saved_persona is not None:
            _personality(saved_persona)
        if saved_cpus is not None:
            os.sched_setaffinity(0, saved_cpus)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class Placement:
    """The worker's settings as read back inside it."""

    cores: str  # affinity, "0-1"
    threads: int | None  # the adapter's threads
    pools: dict[str, int] = field(default_factory=dict)  # threadpoolctl: "openblas" -> threads
    problems: list[str] = field(default_factory=list)

    def note(self) -> str:
        """The row's reason fragment: empty when every setting took."""
        return f"isolation: {'; '.join(self.problems)}" if self.problems else ""


#: The limits set by :func:`limit_pools`, held for the life of the process.
_LIMITS: list[Any] = []


def limit_pools(threads: int) -> None:
    """Size every BLAS and OpenMP pool loaded in this process to ``threads`` (threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    _LIMITS.append(threadpool_limits(limits=threads))


def pool_threads() -> dict[str, int]:
    """Threads of each BLAS and OpenMP pool loaded in this process, by library (threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {}
    pools: dict[str, int] = {}
    for p in threadpool_info():
        name = f"{p.get('internal_api')}:{os.path.basename(str(p.get('filepath', '')))}"
        pools[name] = int(p.get("num_threads") or 0)
    return pools


def read_back(
    plan: WorkerPlan, name: str, adapter_threads: int | None, framework_pools: dict[str, int] | None = None
) -> Placement:
    """The settings as this process holds them (affinity, threadpoolctl's pools, the
    framework's own ``framework_pools``), with what differs from ``plan`` named."""
    cpus = allowed_cpus()
    placed = Placement(format_cpus(cpus), adapter_threads, {**pool_threads(), **(framework_pools or {})})
    if plan.cpus is not None and set(cpus) != set(plan.cpus):
        placed.problems.append(f"pinned to cores {placed.cores}, asked {format_cpus(plan.cpus)}")
    if plan.fixed_layout and not layout_fixed():
        placed.problems.append("address-space randomisation still on (the kernel refused personality(2))")
    if plan.threads is not None:
        if adapter_threads is not None and adapter_threads != plan.threads:
            placed.problems.append(f"{name} uses {adapter_threads} threads, asked {plan.threads}")
        for pool, n in placed.pools.items():
            if n != plan.threads:
                placed.problems.append(f"{pool} pool has {n} threads, asked {plan.threads}")
    return placed
