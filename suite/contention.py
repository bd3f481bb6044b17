"""Contention, measured per case: how much of the machine other processes used while it sampled.

On a shared machine a neighbour's busy loop makes a parallel runtime wait a
scheduler slice at every parallel region: the number comes out stable and
wrong. ``CpuMonitor`` reads, through psutil, the system-wide CPU times (steal
time included: CPU the hypervisor gave to other guests) and the CPU times of
this process and its children over the same window, on the CPUs this process
may run on (a pinned worker is judged on its own cores, not on the harness's);
the difference is the **foreign load**, in cores. A case is **contended** when
the cores it needs plus the foreign load exceed the cores it may use, by more
than ``MARGIN`` cores, or when steal alone exceeds ``STEAL_LIMIT`` cores. The
cores it needs are the threads its runtime may use (one for a form the adapter
runs serially), whatever it managed to use: a parallel runtime waits for its
slowest thread at every region, so a neighbour on one of its cores makes it use
*less* CPU, not more, and its own use would hide the contention.

The policy (``--on-contention``, ``RunOptions.on_contention``):

- ``wait`` (default): a contended measurement is thrown away; wait, bounded by
  ``contention_wait_s`` in all, for a quiet window, and measure again (at most
  ``MAX_ATTEMPTS`` measurements). If the machine stays busy, keep the least
  contended measurement, marked ``contended`` with its figures in the reason.
- ``flag``: no waiting; the row is marked ``contended`` with its figures.
- ``fail``: waits as ``wait`` does; a row still contended then makes ``suite
  run`` exit with status 1 once the sweep is done (rows and files are kept), so
  a CI job cannot publish numbers taken on a busy machine as if they were sound.

The environment variable ``CAUSAL_BENCH_ON_CONTENTION`` sets the default policy
(workers inherit it): the test suite sets ``flag``, so that its many small
timed cases never wait on a shared runner.

psutil is imported when a monitor starts, never at import time.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

#: The choices of ``--on-contention``.
POLICIES = ("wait", "flag", "fail")
#: Cores of foreign load tolerated beyond the cores left free: the parent process,
#: daemons and the monitor itself use a little.
MARGIN = 0.25
#: Steal time, in cores, above which the hypervisor is taking the case's CPU.
STEAL_LIMIT = 0.10
#: The variable that sets the default policy.
POLICY_ENV = "CAUSAL_BENCH_ON_CONTENTION"
#: Measurements of one case at most under ``wait``: the first and the re-measures.
MAX_ATTEMPTS = 3
#: Length of each look at the machine while waiting for it to quiet down.
POLL_S = 0.5

T = TypeVar("T")
Notify = Callable[[str], None]


def default_policy() -> str:
    """The policy when none is given: ``$CAUSAL_BENCH_ON_CONTENTION`` if it names one, else ``wait``."""
    env = os.environ.get(POLICY_ENV, "").strip()
    return env if env in POLICIES else "wait"


def cores_available() -> int:
    """CPUs this process may run on (its affinity), else the CPU count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Usage:
    """CPU use over one window, in cores (CPU seconds per wall second)."""

    wall_s: float
    foreign: float  # other processes, steal included
    steal: float
    own: float  # this process and its children
    cores: int
    threads: int

    @property
    def contended(self) -> bool:
        return self.threads + self.foreign > self.cores + MARGIN or self.steal > STEAL_LIMIT

    def describe(self) -> str:
        steal = f" (steal {self.steal:.2f})" if self.steal >= 0.01 else ""
        return (
            f"foreign load {self.foreign:.2f} cores{steal} + {self.threads} threads "
            f"{'>' if self.contended else '<='} {self.cores} cores"
        )


class Monitor(Protocol):
    """Starts and stops a window of CPU accounting; ``CpuMonitor`` is the real one."""

    def start(self) -> None: ...

    def stop(self) -> Usage: ...


def _busy(per_cpu: list[Any], cpus: set[int] | None) -> tuple[float, float]:
    """(busy seconds other than steal, steal seconds) over ``cpus`` (None: all) of ``psutil.cpu_times(percpu=True)``."""
    busy = steal = 0.0
    for i, times in enumerate(per_cpu):
        if cpus is not None and i not in cpus:
            continue
        # On Linux, guest time is already inside user; idle and iowait are not work.
        busy += sum(getattr(times, k, 0.0) for k in ("user", "nice", "system", "irq", "softirq"))
        steal += getattr(times, "steal", 0.0)
    return busy, steal


def usage_from(wall_s: float, busy_s: float, steal_s: float, own_s: float, cores: int, threads: int) -> Usage:
    """A window's CPU seconds as a ``Usage``: the case needs ``threads`` cores, however few it used."""
    wall = max(wall_s, 1e-9)
    # CPU-time counters tick at 10 ms: clip the small negatives that leaves.
    foreign = max(busy_s - own_s, 0.0) + max(steal_s, 0.0)
    needed = max(1, min(threads or cores, cores))
    return Usage(wall, foreign / wall, max(steal_s, 0.0) / wall, own_s / wall, cores, needed)


class CpuMonitor:
    """Foreign CPU over a window: busy time on this process's CPUs minus this process tree's."""

    def __init__(self, threads: int, pid: int | None = None, peers: Sequence[int] = ()) -> None:
        import psutil

        self._psutil = psutil
        self.proc = psutil.Process(pid)
        # Lockstep (suite.lockstep): the other sides' processes, working only in their turns.
        self.peers = []
        for p in peers:
            with contextlib.suppress(psutil.Error):
                self.peers.append(psutil.Process(p))
        self.cores = cores_available()
        self.threads = threads
        try:
            affinity: set[int] | None = set(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            affinity = None
        # Every CPU allowed: the system-wide total (cheaper, and counts CPUs psutil lists apart).
        self.cpus = None if affinity is None or len(affinity) >= (psutil.cpu_count() or 0) else affinity
        self._t0 = 0.0
        self._sys0 = (0.0, 0.0)
        self._own0 = 0.0

    def _own(self) -> float:
        total = 0.0
        for p in [self.proc, *self._children(), *self.peers]:
            try:
                t = p.cpu_times()
            except (self._psutil.NoSuchProcess, self._psutil.AccessDenied):
                continue
            total += t.user + t.system
            if p is self.proc or p in self.peers:  # children already waited for
                total += t.children_user + t.children_system
        return total

    def _children(self) -> list[Any]:
        try:
            return list(self.proc.children(recursive=True))
        except (self._psutil.NoSuchProcess, self._psutil.AccessDenied):
            return []

    def _system(self) -> tuple[float, float]:
        return _busy(self._psutil.cpu_times(percpu=True), self.cpus)

    def start(self) -> None:
        self._sys0 = self._system()
        self._own0 = self._own()
        self._t0 = time.monotonic()

    def stop(self) -> Usage:
        wall = time.monotonic() - self._t0
        busy1, steal1 = self._system()
        own = max(self._own() - self._own0, 0.0)
        return usage_from(wall, busy1 - self._sys0[0], steal1 - self._sys0[1], own, self.cores, self.threads)


@dataclass
class Outcome:
    """What the policy kept: the measurement, its window, and how the case got there."""

    value: Any
    usage: Usage | None
    attempts: int = 1
    waited_s: float = 0.0

    @property
    def contended(self) -> bool:
        return self.usage is not None and self.usage.contended

    @property
    def foreign_cpu(self) -> float:
        return self.usage.foreign if self.usage is not None else math.nan

    def reason(self) -> str:
        """The row's reason fragment: empty unless contended or waited for."""
        if self.usage is None:
            return ""
        waited = f"; waited {self.waited_s:.0f} s over {self.attempts} measurements" if self.attempts > 1 else ""
        if self.contended:
            return f"contended: {self.usage.describe()}{waited}"
        return f"measured after waiting out contention{waited}" if waited else ""


def wait_for_quiet(monitor_for: Callable[[], Monitor], limit_s: float, sleep: Callable[[float], None]) -> float:
    """Look at the machine in ``POLL_S`` windows until one is quiet or ``limit_s`` is spent; the seconds used."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        m = monitor_for()
        m.start()
        sleep(min(POLL_S, max(limit_s - (time.monotonic() - start), 0.01)))
        if not m.stop().contended:
            break
    return time.monotonic() - start


def measure_watched(
    measure: Callable[[], T],
    threads: int,
    policy: str = "wait",
    wait_s: float = 20.0,
    notify: Notify | None = None,
    monitor_for: Callable[[], Monitor] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Run ``measure`` inside a monitor window and apply ``policy`` to what the window saw.

    ``monitor_for`` makes a fresh monitor (tests pass a fake); a monitor that cannot
    start (psutil missing or refused) leaves the measurement unjudged, never lost.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown contention policy {policy!r}; choose from {', '.join(POLICIES)}")
    make = monitor_for or (lambda: CpuMonitor(threads))
    best: Outcome | None = None
    waited = 0.0
    for attempt in range(1, MAX_ATTEMPTS + 1):
        monitor: Monitor | None
        try:
            monitor = make()
            monitor.start()
        except Exception:  # no psutil, no /proc: measure unjudged
            monitor = None
        value = measure()
        usage = monitor.stop() if monitor is not None else None
        outcome = Outcome(value, usage, attempt, waited)
        if best is None or (usage is not None and best.usage is not None and usage.foreign < best.usage.foreign):
            best = outcome
        if not outcome.contended:
            return outcome
        left = wait_s - waited
        if policy == "flag" or attempt == MAX_ATTEMPTS or left <= 0:
            break
        if notify is not None and usage is not None:
            notify(f"contended ({usage.describe()}); waiting up to {left:.0f} s for the machine to quiet down")
        waited += wait_for_quiet(make, left, sleep)
    assert best is not None
    best.attempts, best.waited_s = attempt, waited
    return best
