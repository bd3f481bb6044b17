"""Child processes that leave nothing behind: each in a session of its own, stopped as a group.

``suite ab`` runs every round as a ``python -m suite run`` process, the gate runs ``suite ab``
as one, and a counted case runs under valgrind in one (``suite.count_runner``). Each of them
may have children of its own (valgrind's worker, the timed workers). :func:`run` starts such
a process as the leader of a new session (so a Ctrl-C typed at the terminal reaches the
caller alone, which decides) and, on every way out but a normal end (its timeout, Ctrl-C,
SIGTERM taken as :class:`Interrupted`, any exception), stops the whole group and waits for
it: SIGTERM to the leader first, so that a ``suite run`` takes its own interrupted path (its
valgrind worker stopped, its finished rows written), then, after ``grace_s``, SIGKILL to the
group. Whatever the leader left in its group when it ended is killed too.

On Linux each child also dies with its parent (``PR_SET_PDEATHSIG``): when a caller is
killed outright (SIGKILL, out of memory) and has no chance to stop its children, they go with
it, and their own children with them, down the chain.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

#: Seconds a stopped group's leader gets to end on SIGTERM before the group is killed.
GRACE_S = 5.0
#: Seconds to wait for a killed group's last members to be gone.
GONE_S = 5.0
_PR_SET_PDEATHSIG = 1


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that it takes Ctrl-C's path (it is a KeyboardInterrupt)."""


def raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises :class:`Interrupted` in the main thread while inside; nothing elsewhere."""
    if not _main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, raise_interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM ignored while inside (the main thread only): a second one cannot cut a cleanup short."""
    if not _main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def _dies_with(parent: int) -> Callable[[], None]:
    """The child's set-up (after the fork, before the exec): SIGKILL when ``parent`` ends."""

    def setup() -> None:
        if _LIBC is not None:
            _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent ended before the guard was up
            os._exit(1)

    return setup


def _signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the group; False when the group is gone."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _drain(proc: subprocess.Popen[str], timeout: float | None) -> bool:
    """Wait for the leader, reading its pipes so it cannot block on them; whether it ended."""
    try:
        proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    except (OSError, ValueError):  # pipes already closed
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
    return True


def stop(proc: subprocess.Popen[str], grace_s: float = GRACE_S) -> None:
    """Stop ``proc``'s group: SIGTERM to the leader, ``grace_s`` to end, then SIGKILL to the group; waited for."""
    with signals_held():
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            _drain(proc, grace_s)
        _signal_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(30)
        deadline = time.monotonic() + GONE_S
        while _signal_group(proc.pid, 0) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def run(
    argv: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    grace_s: float = GRACE_S,
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(argv, capture_output=True, text=True)`` in a session of its own, stopped as a group.

    Raises what ``subprocess.run`` raises (``TimeoutExpired``, ``OSError``), and whatever
    interrupted the wait, each after the whole group is stopped and gone.
    """
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=None if env is None else dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_dies_with(os.getpid()),  # after the fork: one foreign call, no lock taken
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        stop(proc, grace_s)
        raise
    _signal_group(proc.pid, signal.SIGKILL)  # anything the leader left behind in its group
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


#: What :func:`run_together` starts: argv, working folder, environment (None: this process's).
Job = tuple[Sequence[str], Path | str | None, Mapping[str, str] | None]


def run_together(
    jobs: Sequence[Job], *, timeout: float | None = None, grace_s: float = GRACE_S
) -> list[subprocess.CompletedProcess[str]]:
    """:func:`run` of several processes at once, each in a session of its own; their results in order.

    For work whose result does not depend on what runs beside it (a counted case: valgrind
    counts the same with a CPU hog on the other core). Their output goes to temporary files,
    so none can block on a full pipe while another is waited for. ``timeout`` bounds the
    whole wait. On any way out but a normal end of all (the timeout, Ctrl-C, SIGTERM, any
    exception), every group is stopped and waited for, as :func:`run` stops its one.
    """
    procs: list[subprocess.Popen[str]] = []
    with contextlib.ExitStack() as files:
        outs = [
            (files.enter_context(tempfile.TemporaryFile("w+")), files.enter_context(tempfile.TemporaryFile("w+")))
            for _ in jobs
        ]
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            for (argv, cwd, env), (out, err) in zip(jobs, outs, strict=True):
                procs.append(
                    subprocess.Popen(
                        list(argv),
                        cwd=cwd,
                        env=None if env is None else dict(env),
                        stdout=out,
                        stderr=err,
                        text=True,
                        start_new_session=True,
                        preexec_fn=_dies_with(os.getpid()),
                    )
                )
            for proc in procs:
                left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
                try:
                    proc.wait(left)
                except subprocess.TimeoutExpired:
                    raise subprocess.TimeoutExpired(proc.args, timeout or 0.0) from None
        except BaseException:
            for proc in procs:
                stop(proc, grace_s)
            raise
        done = []
        for proc, (out, err) in zip(procs, outs, strict=True):
            _signal_group(proc.pid, signal.SIGKILL)  # anything a leader left behind in its group
            out.seek(0)
            err.seek(0)
            done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out.read(), err.read()))
        return done
