"""Worker processes: each backend runs its cases in a spawned child of its own.

JAX preallocates GPU memory when it starts, frameworks crash, and one bad case
must not cost the others. The parent (``IsolatedRunner``) keeps one worker alive
at a time, sends it cases and receives rows; a worker that dies or runs past the
per-case timeout is replaced and its case becomes an ``error`` or ``timeout`` row.
The child's side is ``_worker_main``; the case pipeline itself is ``suite.runner``.

Isolation (``suite.isolation``): a worker is born pinned to its cores, with the
thread variables of its plan in its environment; it sizes every pool to them and
reads them back before its first case. The runner closes a backend's worker
before it starts the next one's, so no idle worker sits beside a timed case, and
with ``--worker-cores`` N below the cores available it pins the harness (this
process) to the others while it runs.

A fleet node runs the same runner inside each of its lanes' node agent
(``suite.fleet_node``), which names its node in the rows' reasons (``place``) and
hands each worker of a GPU case the GPU Ray gave the lane (``env``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.machinery
import multiprocessing as mp
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from multiprocessing.connection import Connection
from typing import Any

from suite.cases import Case, RunOptions
from suite.isolation import WorkerPlan, allowed_cpus, pin_process, plan_worker, spawning
from suite.results import Row
from suite.runner import BackendInfo, first_line, open_backend, placed, run_case


def _worker_main(conn: Connection, name: str, options: RunOptions, plan: WorkerPlan, env: Mapping[str, str]) -> None:
    """Worker loop: report the backend, then answer each case with a row."""
    # The parent decides what Ctrl-C means; a worker must not die mid-row from it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.update(env)  # before the adapter imports its framework (CUDA_VISIBLE_DEVICES)
    if plan.cpus:  # born pinned; this also catches a thread started before the pin took
        pin_process(plan.cpus)
    try:
        adapter, info = open_backend(name, options, plan)
    except Exception as e:
        conn.send(("info", BackendInfo(name, False, f"failed to start: {first_line(e)}")))
        return
    if info.isolation:
        conn.send(("note", f"{name} worker: {info.isolation}"))
    conn.send(("info", info))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        row = run_case(msg, adapter, options, info.threads, notify=lambda text: conn.send(("note", text)))
        conn.send(("row", placed(row, info)))


class WorkerDied(Exception):
    pass


@contextlib.contextmanager
def main_left_alone() -> Iterator[None]:
    """Start a spawned worker inside this block and it does not import the parent's ``__main__``.

    multiprocessing's spawn runs the parent's main script again in the child (as
    ``__mp_main__``) so that functions defined there unpickle; a worker needs none (its
    target and arguments live in ``suite`` and ``backends``). Under Ray the main script
    is Ray's own worker, which imports Ray: measured on the project's 2-core VM, a spawn
    from inside a Ray task took 1.7-2.0 s against 0.1-0.4 s outside, once per worker
    and round, most of what a fleet run added per case. A ``__spec__`` named
    ``*.__main__`` is what spawn leaves alone (``python -m suite`` has one already).
    """
    main = sys.modules.get("__main__")
    if main is None or getattr(getattr(main, "__spec__", None), "name", "").endswith(".__main__"):
        yield
        return
    had, saved = hasattr(main, "__spec__"), getattr(main, "__spec__", None)
    main.__spec__ = importlib.machinery.ModuleSpec("suite.__main__", None)
    try:
        yield
    finally:
        if had:
            main.__spec__ = saved
        else:
            del main.__spec__


class Worker:
    """One backend in a child process; restarted by the caller when it dies."""

    def __init__(
        self,
        name: str,
        options: RunOptions,
        on_note: Callable[[str], None] | None = None,
        plan: WorkerPlan | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.on_note = on_note  # hears what the worker says while a case runs (contention waits)
        self.plan = plan or plan_worker(options.worker_cores, options.isolation, options.threads)[0]
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_worker_main, args=(child, name, options, self.plan, dict(env or {})), daemon=True
        )
        with spawning(self.plan), main_left_alone():
            self.process.start()
        child.close()
        self.info: BackendInfo = self._expect("info", options.case_timeout_s + 60)

    def _expect(self, kind: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            if not self._conn.poll(max(deadline - time.monotonic(), 0.0)):
                self.kill()
                raise TimeoutError
            try:
                got_kind, payload = self._conn.recv()
            except (EOFError, ConnectionError, OSError):
                self.process.join(5)
                raise WorkerDied(_exit_description(self.process.exitcode)) from None
            if got_kind != "note":
                break
            if self.on_note is not None:
                self.on_note(str(payload))
        if got_kind != kind:
            raise WorkerDied(f"worker sent {got_kind!r} where {kind!r} was due")
        return payload

    def run(self, case: Case, timeout: float) -> Row:
        self._conn.send(case)
        row: Row = self._expect("row", timeout)
        return row

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._conn.send(None)
        self.process.join(10)
        self.kill()


def _exit_description(code: int | None) -> str:
    if code is None:
        return "worker process vanished"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out-of-memory kill?)" if -code == signal.SIGKILL else ""
        return f"worker process killed by {name}{hint}"
    return f"worker process exited with status {code}"


class IsolatedRunner:
    """Runs each backend's cases in its own worker process.

    ``env`` is set in each worker before its adapter opens; ``place`` (" on node X")
    goes into the reasons of timeout and crash rows; ``ceilings_for(backend)`` says
    whether that backend's worker measures its device's ceilings (default:
    ``options.ceilings``), so a fleet measures each machine's once.
    """

    def __init__(
        self,
        options: RunOptions,
        on_note: Callable[[str], None] | None = None,
        env: Mapping[str, str] | None = None,
        place: str = "",
        ceilings_for: Callable[[str], bool] | None = None,
    ) -> None:
        self.options = options
        self.on_note = on_note
        self.env = dict(env or {})
        self.place = place
        self.ceilings_for = ceilings_for
        self._workers: dict[str, Worker] = {}
        self._infos: dict[str, BackendInfo] = {}
        self.plan, harness = plan_worker(options.worker_cores, options.isolation, options.threads)
        # The harness keeps to the cores the worker leaves it, until close().
        self._restore = allowed_cpus() if harness else None
        if harness:
            pin_process(harness)

    def info(self, name: str) -> BackendInfo:
        if name not in self._infos:
            self._start(name)
        return self._infos[name]

    def live_workers(self) -> list[Worker]:
        return [w for w in self._workers.values() if w.process.is_alive()]

    def _start(self, name: str) -> None:
        for other in list(self._workers):  # one worker at a time: none idles beside a timed case
            self._workers.pop(other).close()
        options = self.options
        if self.ceilings_for is not None:
            options = dataclasses.replace(options, ceilings=options.ceilings and self.ceilings_for(name))
        try:
            worker = Worker(name, options, self.on_note, self.plan, self.env)
        except (TimeoutError, WorkerDied) as e:
            self._infos[name] = BackendInfo(name, False, f"worker failed to start{self.place}: {e}")
            return
        self._workers[name] = worker
        self._infos[name] = worker.info

    def run(self, case: Case) -> Row:
        worker = self._workers.get(case.backend)
        if worker is None:
            self._start(case.backend)
            worker = self._workers.get(case.backend)
            if worker is None:
                return Row(case, status="error", reason=self._infos[case.backend].reason)
        start, timeout = time.perf_counter(), self.options.case_timeout_s
        try:
            return worker.run(case, timeout)
        except TimeoutError:
            self._workers.pop(case.backend, None)
            return Row(
                case,
                status="timeout",
                device=worker.info.device,
                reason=f"ran past the per-case timeout of {timeout:g} s{self.place}; worker stopped",
                elapsed_s=time.perf_counter() - start,
            )
        except WorkerDied as e:
            self._workers.pop(case.backend, None)
            worker.kill()
            return Row(
                case,
                status="error",
                device=worker.info.device,
                reason=f"{e}{self.place}",
                elapsed_s=time.perf_counter() - start,
            )

    def close(self) -> None:
        for w in self._workers.values():
            w.close()
        self._workers.clear()
        if self._restore is not None:
            pin_process(self._restore)
            self._restore = None
