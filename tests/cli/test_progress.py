"""The progress display: with the quiet isolation step it redraws only when told something,
never while a case is being timed (the mechanism, not a timing)."""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console

from suite.cases import Case, RunOptions
from suite.cli.progress import Progress
from suite.results import Row

#: Longer than three of rich's automatic refreshes (10 a second by default).
WAIT_S = 0.35


def terminal_progress(case: Case, steps: tuple[str, ...]) -> tuple[Progress, io.StringIO]:
    progress = Progress([case, case], RunOptions(isolation=steps), quiet=False)
    screen = io.StringIO()
    progress._console = Console(file=screen, force_terminal=True, width=100)
    progress.tty = True
    return progress, screen


@pytest.mark.parametrize(("steps", "redraws_while_timing"), [(("pin", "quiet"), False), (("pin",), True)])
def test_the_display_does_not_redraw_while_a_case_runs(steps: tuple[str, ...], redraws_while_timing: bool) -> None:
    case = Case("numpy", "cumsum", 1, 8, 2)
    progress, screen = terminal_progress(case, steps)
    try:
        progress(0, 2, case, None, 0.0)  # the case starts: one redraw
        started = screen.getvalue()
        assert "numpy cumsum 1x8x2 float32 ..." in started
        time.sleep(WAIT_S)  # the worker times the case meanwhile
        assert (screen.getvalue() != started) == redraws_while_timing
        progress(1, 2, case, Row(case, status="ok", median_s=1e-5, n_samples=5), 0.1)  # the row arrives
        assert "numpy cumsum 1x8x2 float32: 10 us" in screen.getvalue()[len(started) :]
    finally:
        progress.close()


def test_a_quiet_display_has_no_refresh_thread_and_shows_notes_at_once() -> None:
    case = Case("numpy", "cumsum", 1, 8, 2)
    progress, screen = terminal_progress(case, ("quiet",))
    try:
        progress(0, 2, case, None, 0.0)
        assert progress._bar.live.auto_refresh is False and progress._bar.live._refresh_thread is None
        progress.note("contended (foreign load 1.80 cores + 1 threads > 2 cores); waiting up to 20 s")
        assert "waiting up to 20 s" in screen.getvalue()
    finally:
        progress.close()
