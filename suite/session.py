"""A run: the sweep loop, resume, signals and the final writes of one results folder.

``run_cases`` places each case with a runner (in this process, or in one worker
process per backend) and hands every row on the moment it exists. ``Session``
wraps a sweep for the command line: it opens or resumes an output folder,
appends rows as they arrive, turns SIGTERM into the same path as Ctrl-C, and
writes the final files with signals held off, so an interruption keeps every
finished row.
"""

from __future__ import annotations

import dataclasses
import platform
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends.base import Ceilings
from suite import fleet, machine
from suite.canary import Canary
from suite.cases import Case, RunOptions, SweepSpec
from suite.ceilings import HOST_DEVICE, annotate, measure_host
from suite.ceilings import from_metadata as ceilings_from_metadata
from suite.ceilings import to_metadata as ceilings_to_metadata
from suite.count_runner import CountingRunner
from suite.counting import COUNTED
from suite.isolation import blas_threads, on_cpus, worker_cpus
from suite.machine import machine_fingerprint
from suite.machines import run_machines, with_machines
from suite.procgroup import raise_interrupted
from suite.results import (
    CSV_NAME,
    JSON_NAME,
    ResultsError,
    Row,
    RowLog,
    load_run,
    prepare_folder,
    read_csv_rows,
    write_csv,
    write_json,
)
from suite.rounds import as_round, merge_rows, round_options
from suite.runner import BackendInfo, InProcessRunner
from suite.workers import IsolatedRunner

ProgressFn = Callable[[int, int, Case, Row | None, float], None]
#: Writes what a finished (or interrupted) run adds beside its CSV and JSON: the report.
FinalWriter = Callable[[Path, dict[str, Any], list[Row]], object]


Runner = InProcessRunner | IsolatedRunner | CountingRunner


def make_runner(options: RunOptions, on_note: Callable[[str], None] | None = None, counted: bool = False) -> Runner:
    """The runner of a sweep: counted cases each under callgrind, timed ones in workers or here."""
    if counted:
        return CountingRunner(options, on_note)
    return IsolatedRunner(options, on_note) if options.isolate else InProcessRunner(options, on_note)


def estimated_case_s(case: Case, options: RunOptions) -> float:
    """A rough prior for how long a case takes, for the progress line's estimate."""
    compile_s = 1.0 if case.backend in ("torch-compile", "jax") else 0.0
    if not options.measure:
        return 0.1 + compile_s
    return options.timer.warmup_s + options.timer.budget_s * 0.6 + compile_s


def run_cases(
    cases: Sequence[Case],
    options: RunOptions,
    on_row: Callable[[Row], None],
    progress: ProgressFn | None = None,
    infos: dict[str, BackendInfo] | None = None,
    ceilings: dict[str, Ceilings] | None = None,
    machines: dict[str, dict[str, Any]] | None = None,
    canary: Canary | None = None,
) -> Iterator[Row]:
    """Run ``cases`` in order, handing every row to ``on_row`` as soon as it exists.

    Unavailable backends give ``skipped`` rows with the reason. ``infos`` collects
    each backend's availability, device and versions for the run metadata. With
    ``ceilings`` (device -> ceilings, the host's measured by the caller), device
    ceilings the backends measure are added and every row gets its roofline
    bound and fraction (``suite.ceilings.annotate``) before ``on_row`` sees it.

    With ``options.rounds`` R above 1 the sweep runs R times, interleaved as asv
    does: round 1 of every case, then round 2, ..., each round with fresh worker
    processes (a new runner), so a slow minute hits many cases a little rather
    than one case wholly. A case's row (its rounds pooled by
    ``suite.rounds.merge_rows``) exists after its last round; a case that did not
    time in a round (skipped, failed) is final at once and not run again. An
    interruption keeps the cases whose rounds all finished; ``--resume`` measures
    the others in full (a row of fewer rounds would be judged at another level).
    ``progress`` sees every round of every case (``len(cases) * R`` steps); when
    it has a ``note`` method, that hears contention waits as they happen.

    With a ``canary`` (``suite.canary``, started by the caller) the machine is looked
    at between cases, here in the parent while no case is timed, and each timed row
    gets the canary's figures for the looks around its case (``drifted`` past the
    limit).
    """
    if options.cluster:  # a Ray cluster places the cases; each node's ceilings judge its rows (suite.fleet)
        yield from fleet.run_cases(cases, options, on_row, progress, infos, machines)
        return
    counted = any(c.metric == COUNTED for c in cases)
    # Counts are deterministic: one round says all that more rounds would.
    rounds = 1 if counted else max(options.rounds, 1)
    infos = infos if infos is not None else {}
    note = getattr(progress, "note", None)
    total = len(cases) * rounds
    step = 0
    pending: dict[str, list[Row]] = {}
    final: set[str] = set()
    for r in range(rounds):
        runner = make_runner(round_options(options, r), note, counted)
        try:
            for case in cases:
                if case.key in final:
                    step += 1
                    continue
                if progress:
                    progress(step, total, case, None, 0.0)
                t0 = time.perf_counter()
                before = canary.look() if canary is not None else None
                info = runner.info(case.backend)
                infos.setdefault(case.backend, info)
                got = Row(case, status="skipped", reason=info.reason) if not info.available else runner.run(case)
                if canary is not None and before is not None:
                    canary.mark(got, before, canary.look())
                if ceilings is not None and info.ceilings is not None:
                    # First measurement of a device wins: every row of the run is
                    # judged against the same ceiling, the one stored in the metadata.
                    ceilings.setdefault(info.ceilings.device, info.ceilings)
                step += 1
                pending.setdefault(case.key, []).append(as_round(got))
                row = got
                if r == rounds - 1 or got.status != "ok":
                    final.add(case.key)
                    row = merge_rows(pending.pop(case.key)) if rounds > 1 else pending.pop(case.key)[0]
                    if ceilings is not None:
                        annotate(row, ceilings)
                    on_row(row)
                if progress:
                    progress(step, total, case, row, time.perf_counter() - t0)
                if case.key in final:
                    yield row
        finally:
            runner.close()


@dataclass
class Session:
    """One results folder being written by a sweep, fresh or resumed."""

    out: Path
    resume: bool = False
    rows: list[Row] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False
    #: What the machine was doing at the start (``suite.machine.machine_state``); taken by run() when unset.
    machine_state: dict[str, Any] | None = None

    def open(self) -> None:
        """Read what a resumed run already has, or make sure a fresh one may write; ResultsError if not."""
        if self.resume:
            if not (self.out / CSV_NAME).exists():
                raise ResultsError(f"--resume: {self.out / CSV_NAME} does not exist")
            # Cases lost with a fleet node are run again; every other row is kept.
            self.rows = [r for r in read_csv_rows(self.out / CSV_NAME) if not fleet.is_lost(r)]
            if (self.out / JSON_NAME).exists():
                self.meta = load_run(self.out / JSON_NAME)[0]
            return
        prepare_folder(self.out)
        for name in (CSV_NAME, JSON_NAME):
            if (self.out / name).exists():
                try:
                    load_run(self.out / name)
                except ResultsError as e:
                    raise ResultsError(
                        f"refusing to overwrite {self.out / name}, which is not a readable results file ({e})"
                    ) from None

    def run(
        self,
        spec: SweepSpec,
        options: RunOptions,
        progress_for: Callable[[Sequence[Case]], ProgressFn | None] = lambda cases: None,
        final: FinalWriter | None = None,
    ) -> None:
        """Run the cases of ``spec`` not yet in the folder; write CSV, JSON and ``final``'s files."""
        stored = self.meta
        run_id = stored.get("run_id") or machine.new_run_id()
        meta = {**machine.run_metadata(run_id, sys.argv), **{k: stored[k] for k in ("started",) if k in stored}}
        meta["sweep"] = dataclasses.asdict(spec)
        meta["options"] = dataclasses.asdict(options)
        meta["machine_state"] = self.machine_state or machine.machine_state(options.threads)
        # A resumed run keeps the ceilings it was judged by.
        ceilings = None if options.cluster else run_ceilings(stored.get("ceilings"), options)
        machines = run_machines(stored) if options.cluster and stored.get("machines") else {}
        here, host = machine_fingerprint(meta) or "", platform.node()
        finished = {r.key for r in self.rows}
        cases = [c for c in spec.cases() if c.key not in finished]
        log = RowLog(self.out / CSV_NAME, resume=self.resume)
        infos: dict[str, BackendInfo] = {}
        # The canary's reference is taken after the ceilings, just before the first case. Counted
        # cases need none: a count does not move with the machine's speed.
        counted = any(c.metric == COUNTED for c in cases)
        canary = (
            Canary(limit=options.drift_limit, cpus=worker_cpus(options))
            if options.drift_limit > 0 and options.measure and not options.cluster and not counted
            else None
        )
        if canary is not None:
            canary.start()

        def on_row(row: Row) -> None:
            row.run_id = run_id
            if not options.cluster:  # a fleet's rows name their own node and machine
                row.node = row.node or host
                # A counted row names its simulated machine (none when it was not counted).
                row.machine = row.machine or ("" if row.metric == COUNTED else here)
            # In memory first: a Ctrl-C landing inside the append (its fsync is the
            # slow part) still leaves the row in the files written on the way out.
            self.rows.append(row)
            log.append(row)

        previous = signal.signal(signal.SIGTERM, raise_interrupted)
        try:
            for _ in run_cases(cases, options, on_row, progress_for(cases), infos, ceilings, machines, canary):
                pass
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (Interrupted)
            self.interrupted = True
        finally:
            # A second Ctrl-C must not cut the final files short: hold signals off
            # while they are written (each file is replaced atomically besides).
            previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            log.close()
            meta["backends"] = {k: dataclasses.asdict(v) for k, v in infos.items()}
            if ceilings is not None:
                meta["ceilings"] = ceilings_to_metadata(ceilings)
            if canary is not None:
                meta["canary"] = canary.metadata()
            with_machines(meta, machines)
            meta["interrupted"] = self.interrupted
            meta["finished"] = machine.now_iso()
            self.meta = meta
            try:
                write_csv(self.out / CSV_NAME, self.rows)
                write_json(self.out / JSON_NAME, meta, self.rows)
                if final is not None:
                    final(self.out, meta, self.rows)
            finally:
                signal.signal(signal.SIGINT, previous_int)
                signal.signal(signal.SIGTERM, previous)


def run_ceilings(stored: Any, options: RunOptions) -> dict[str, Ceilings] | None:
    """The ceilings rows are judged by: a resumed run's own, else the host measured now."""
    if not options.ceilings:
        return None
    ceilings = ceilings_from_metadata(stored)
    if HOST_DEVICE not in ceilings:
        # On the cores and threads the workers get, so a row is judged by what its own cores can do.
        cpus = worker_cpus(options)
        threads = options.threads or (len(cpus) if cpus else None)
        with on_cpus(cpus), blas_threads(threads):
            ceilings[HOST_DEVICE] = measure_host(threads)
    return ceilings
