"""The progress line of a sweep: which case, how far along, and the time left."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from suite.cases import Case, RunOptions
from suite.format import format_seconds
from suite.results import Row
from suite.session import estimated_case_s


class Progress:
    """One status line: which case, how far along, and an estimate of the time left.

    The estimate scales a per-case prior by how fast finished cases actually went.
    """

    def __init__(self, cases: Sequence[Case], options: RunOptions, quiet: bool) -> None:
        self.priors = [estimated_case_s(c, options) for c in cases]
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.start = time.perf_counter()

    def __call__(self, done: int, total: int, case: Case, row: Row | None, seconds: float) -> None:
        if self.quiet:
            return
        elapsed = time.perf_counter() - self.start
        spent_prior = sum(self.priors[:done]) or 1.0
        left = sum(self.priors[done:]) * (elapsed / spent_prior if done else 1.0)
        bar = "#" * int(20 * done / max(total, 1))
        head = f"[{bar:<20}] {done}/{total} {elapsed:5.0f}s elapsed, ~{left:4.0f}s left"
        if row is None:
            if self.tty:
                sys.stderr.write(f"\r\x1b[K{head} | {case.label()} ...")
                sys.stderr.flush()
            return
        what = row.status if row.status != "ok" else format_seconds(row.median_s) if row.n_samples else "ok"
        line = f"{head} | {case.label()}: {what}"
        sys.stderr.write(f"\r\x1b[K{line}" if self.tty else line + "\n")
        if self.tty and done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()
