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
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends.base import Ceilings
from suite import machine
from suite.cases import Case, RunOptions, SweepSpec
from suite.ceilings import HOST_DEVICE, annotate, measure_host
from suite.ceilings import from_metadata as ceilings_from_metadata
from suite.ceilings import to_metadata as ceilings_to_metadata
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
from suite.runner import BackendInfo, InProcessRunner
from suite.workers import IsolatedRunner

ProgressFn = Callable[[int, int, Case, Row | None, float], None]
#: Writes what a finished (or interrupted) run adds beside its CSV and JSON: the report.
FinalWriter = Callable[[Path, dict[str, Any], list[Row]], object]


def make_runner(options: RunOptions) -> InProcessRunner | IsolatedRunner:
    return IsolatedRunner(options) if options.isolate else InProcessRunner(options)


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
) -> Iterator[Row]:
    """Run ``cases`` in order, handing every row to ``on_row`` as soon as it exists.

    Unavailable backends give ``skipped`` rows with the reason. ``infos`` collects
    each backend's availability, device and versions for the run metadata. With
    ``ceilings`` (device -> ceilings, the host's measured by the caller), device
    ceilings the backends measure are added and every row gets its roofline
    bound and fraction (``suite.ceilings.annotate``) before ``on_row`` sees it.
    """
    runner = make_runner(options)
    infos = infos if infos is not None else {}
    try:
        for i, case in enumerate(cases):
            if progress:
                progress(i, len(cases), case, None, 0.0)
            t0 = time.perf_counter()
            info = runner.info(case.backend)
            infos[case.backend] = info
            row = case.row(status="skipped", reason=info.reason) if not info.available else runner.run(case)
            if ceilings is not None:
                if info.ceilings is not None:
                    # First measurement of a device wins: every row of the run is
                    # judged against the same ceiling, the one stored in the metadata.
                    ceilings.setdefault(info.ceilings.device, info.ceilings)
                annotate(row, ceilings)
            on_row(row)
            if progress:
                progress(i + 1, len(cases), case, row, time.perf_counter() - t0)
            yield row
    finally:
        runner.close()


class Interrupted(Exception):
    """SIGTERM, raised in the main thread so that it takes Ctrl-C's path."""


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted


@dataclass
class Session:
    """One results folder being written by a sweep, fresh or resumed."""

    out: Path
    resume: bool = False
    rows: list[Row] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False

    def open(self) -> None:
        """Read what a resumed run already has, or make sure a fresh one may write; ResultsError if not."""
        if self.resume:
            if not (self.out / CSV_NAME).exists():
                raise ResultsError(f"--resume: {self.out / CSV_NAME} does not exist")
            self.rows = read_csv_rows(self.out / CSV_NAME)
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
        # A resumed run keeps the ceilings it was judged by.
        ceilings = run_ceilings(stored.get("ceilings"), options)
        finished = {r.key for r in self.rows}
        cases = [c for c in spec.cases() if c.key not in finished]
        log = RowLog(self.out / CSV_NAME, resume=self.resume)
        infos: dict[str, BackendInfo] = {}

        def on_row(row: Row) -> None:
            row.run_id = run_id
            # In memory first: a Ctrl-C landing inside the append (its fsync is the
            # slow part) still leaves the row in the files written on the way out.
            self.rows.append(row)
            log.append(row)

        previous = signal.signal(signal.SIGTERM, _raise_interrupted)
        try:
            for _ in run_cases(cases, options, on_row, progress_for(cases), infos, ceilings):
                pass
        except (KeyboardInterrupt, Interrupted):
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
        ceilings[HOST_DEVICE] = measure_host()
    return ceilings
