"""The progress display of a sweep (rich): which case, which round, how far along, the time left,
and contention waits as they happen."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

from suite.cases import Case, RunOptions
from suite.format import format_seconds
from suite.results import Row
from suite.session import estimated_case_s


class Progress:
    """A rich progress bar on a terminal, one line per finished case elsewhere (CI logs).

    The estimate of the time left scales a per-case prior by how fast finished
    steps actually went. ``note`` shows what a worker says while a case runs (a
    contention wait) at once. rich is imported when the display starts.

    With the ``quiet`` isolation step (``suite.isolation``) the bar has no refresh
    thread: it redraws when told something (a case starts or ends, a note), never
    while a case is timed, so the harness takes no CPU from the worker.
    """

    def __init__(self, cases: Sequence[Case], options: RunOptions, quiet: bool) -> None:
        rounds = max(options.rounds, 1)
        self.priors = [estimated_case_s(c, options) for c in cases] * rounds
        self.quiet = quiet
        self.auto_refresh = "quiet" not in options.isolation
        self.start = time.perf_counter()
        self._bar: Any = None
        self._task: Any = None
        self._console: Any = None
        if not quiet:
            from rich.console import Console

            self._console = Console(stderr=True)
            self.tty = self._console.is_terminal
        else:
            self.tty = False

    def _left_s(self, done: int) -> float:
        elapsed = time.perf_counter() - self.start
        spent_prior = sum(self.priors[:done]) or 1.0
        return sum(self.priors[done:]) * (elapsed / spent_prior if done else 1.0)

    def _open(self, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("~{task.fields[left]:.0f}s left | {task.description}"),
            console=self._console,
            transient=False,
            auto_refresh=self.auto_refresh,
        )
        self._bar.start()
        self._task = self._bar.add_task("", total=total, left=self._left_s(0))

    def __call__(self, done: int, total: int, case: Case, row: Row | None, seconds: float) -> None:
        if self.quiet:
            return
        if not self.tty:
            if row is not None:
                print(f"[{done}/{total}] {case.label()}: {_what(row)}", file=sys.stderr, flush=True)
            return
        if self._bar is None:
            self._open(total)
        what = f"{case.label()} ..." if row is None else f"{case.label()}: {_what(row)}"
        self._bar.update(self._task, completed=done, description=what, left=self._left_s(done), refresh=True)
        if row is not None and row.contended:
            self._bar.console.print(f"contended: {case.label()}: {row.reason}", style="yellow", highlight=False)
        if done == total:
            self.close()

    def note(self, text: str) -> None:
        """A message from the running case (a contention wait), shown as it happens."""
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.update(self._task, description=text, refresh=True)
            self._bar.console.print(text, style="yellow", highlight=False)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _what(row: Row) -> str:
    if row.status != "ok":
        return row.status
    text = format_seconds(row.median_s) if row.n_samples else "ok"
    return text + (" (contended)" if row.contended else "")
