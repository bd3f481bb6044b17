"""Lockstep: two or more processes timing one case by turns, sample by sample.

Pairing rounds (``suite ab``, ABBA) cancels drift between rounds, but not a machine
whose speed changes *within* a round: on the project's 2-core VM one NumPy worker's
samples jumped between 3,700-4,300 us and 2,100-2,400 us while it ran, with nothing
else on the guest (results/gatebench/power/pairs-load0.md), and seven pairs of
rounds could not find a 25% slowdown under that. Here the sides of a comparison are
alive at once, each in its own fresh ``suite run`` (its own checkout, its own worker,
its own agreement check), and a conductor hands out turns: one side times one sample,
then the next side, in ABBA order (``AB BA AB ...``), so each side's k-th sample lies
milliseconds from the others' k-th sample and both see the same machine. Only the side
whose turn it is works; the others wait on a socket read, so the run's isolation
(one working process per core set) holds.

This is randomized multiple interleaved trials (Abedi and Brecht, ICPE 2017) carried
down to the sample, with the sides kept in separate processes because they are separate
revisions. ``suite.track.verdicts.paired_verdict`` reduces each round of a lockstep
job to the median of its per-sample ratios and tests the rounds (fresh processes)
as pairs.

The protocol, over a Unix socket the conductor listens on (nothing leaves the host),
one JSON object a line:

- the side, first thing in its case (``run_case``): ``{"hello": NAME, "pid": PID}``;
- the conductor, once every side has said hello: ``{"go": true, "peers": [PID, ...]}``
  for the first turn (warm-up and calibration), then ``{"go": true}`` per sample, or
  ``{"go": false}``: stop;
- the side, after each turn: ``{"s": SECONDS_PER_CALL, "wall": BLOCK_SECONDS}`` (nulls for the
  first turn).

A side that fails before its first turn (a mismatch, a skip) closes its socket; the
conductor then stops the others, whose rows say why. The address a side joins by is
``SOCKET#NAME`` (``suite run --lockstep``, ``RunOptions.lockstep``).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: How long the conductor waits for every side to join (process start, imports, the check).
JOIN_TIMEOUT_S = 600.0
#: How long one turn may take (a sample, or the first turn's warm-up and calibration).
TURN_TIMEOUT_S = 600.0


class LockstepError(Exception):
    """A side left, or broke the protocol."""


class _Line:
    """Newline-delimited JSON over one connected socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def send(self, obj: Any) -> None:
        self.sock.sendall(json.dumps(obj).encode() + b"\n")

    def recv(self) -> Any:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise LockstepError("the other end closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def parse_address(address: str) -> tuple[str, str]:
    """``SOCKET#NAME`` -> (socket path, side name)."""
    path, sep, name = address.rpartition("#")
    if not sep or not path or not name:
        raise ValueError(f"--lockstep: expected SOCKET#NAME, got {address!r}")
    return path, name


class Turns:
    """A side's end: wait for a turn, time, report. Used by ``suite.timing.Timer``."""

    def __init__(self, address: str) -> None:
        path, self.name = parse_address(address)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except OSError as e:
            sock.close()
            raise LockstepError(f"cannot join the lockstep conductor at {path}: {e}") from None
        self.line = _Line(sock)
        self.line.send({"hello": self.name, "pid": os.getpid()})
        self.peers: list[int] = []

    def first(self) -> list[int]:
        """Wait for the first turn (warm-up and calibration); the other sides' PIDs. LockstepError on stop."""
        if not self.wait():
            raise LockstepError("the lockstep stopped before this side's first turn (another side failed)")
        return self.peers

    def wait(self) -> bool:
        """Block until the conductor says go (True) or stop (False; also when it is gone)."""
        try:
            msg = self.line.recv()
        except (LockstepError, OSError, ValueError):
            return False
        if "peers" in msg:
            self.peers = [int(p) for p in msg["peers"]]
        return bool(msg.get("go"))

    def done(self, seconds_per_call: float | None = None, wall_s: float | None = None) -> None:
        """The turn is over: report its sample, per call, and the block's wall seconds (None for the
        warm-up turn)."""
        self.line.send({"s": seconds_per_call, "wall": wall_s})

    def close(self) -> None:
        self.line.close()


@contextlib.contextmanager
def joined(address: str) -> Any:
    """:class:`Turns` for ``address`` ("" for none), closed on the way out."""
    if not address:
        yield None
        return
    turns = Turns(address)
    try:
        yield turns
    finally:
        turns.close()


@dataclass
class Conducted:
    """What one lockstep round gave: the per-call seconds of each side's samples, by name, in turn
    order, and why it stopped (``budget``, ``max_samples``, or what went wrong)."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    stop: str = ""
    error: str = ""


def order(names: Sequence[str], k: int) -> list[str]:
    """The sides' order in sample ``k``: as given when ``k`` is even, reversed when odd (ABBA)."""
    return list(names) if k % 2 == 0 else list(reversed(names))


class Conductor:
    """Listens on a Unix socket, lets the sides in, and hands out turns (:meth:`start`, :meth:`join`).

    ``names`` in the order of the first sample; ``budget_s``: sampling seconds each side
    must reach; samples are taken in lockstep until every side has reached its budget and
    at least ``min_samples`` are in, or ``max_samples`` are.
    """

    def __init__(
        self,
        names: Sequence[str],
        budget_s: float,
        min_samples: int = 10,
        max_samples: int = 10_000,
        join_timeout_s: float = JOIN_TIMEOUT_S,
        turn_timeout_s: float = TURN_TIMEOUT_S,
    ) -> None:
        if len(set(names)) != len(names) or len(names) < 2:
            raise ValueError("a lockstep needs two or more sides with distinct names")
        self.names = list(names)
        self.budget_s, self.min_samples, self.max_samples = budget_s, min_samples, max_samples
        self.join_timeout_s, self.turn_timeout_s = join_timeout_s, turn_timeout_s
        self._dir = Path(tempfile.mkdtemp(prefix="cb-lock-"))
        self.path = str(self._dir / "s")
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.path)
        self._server.listen(len(names))
        self.result = Conducted()
        self._thread = threading.Thread(target=self._serve, name="lockstep-conductor", daemon=True)
        self._cancel = threading.Event()

    def address(self, name: str) -> str:
        """The ``--lockstep`` address of side ``name``."""
        return f"{self.path}#{name}"

    def start(self) -> Conductor:
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Stop waiting for sides (they ended without joining, e.g. a mismatch)."""
        self._cancel.set()

    def join(self, timeout: float | None = None) -> Conducted:
        self._thread.join(timeout)
        return self.result

    def close(self) -> None:
        self._cancel.set()
        with contextlib.suppress(OSError):
            self._server.close()
        self._thread.join(5)
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):
            self._dir.rmdir()

    def __enter__(self) -> Conductor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> dict[str, tuple[_Line, int]]:
        sides: dict[str, tuple[_Line, int]] = {}
        deadline = time.monotonic() + self.join_timeout_s
        self._server.settimeout(0.2)
        while len(sides) < len(self.names):
            if self._cancel.is_set() or time.monotonic() > deadline:
                missing = [n for n in self.names if n not in sides]
                for line, _ in sides.values():
                    line.close()
                raise LockstepError(f"{', '.join(missing)} never joined")
            try:
                sock, _ = self._server.accept()
            except TimeoutError:
                continue
            sock.settimeout(self.turn_timeout_s)
            line = _Line(sock)
            try:
                hello = line.recv()
            except (LockstepError, OSError, ValueError):
                line.close()
                continue
            name = str(hello.get("hello", ""))
            if name not in self.names or name in sides:
                line.close()
                continue
            sides[name] = (line, int(hello.get("pid", 0)))
        return sides

    def _serve(self) -> None:
        try:
            self._conduct()
        finally:  # no one joins a finished lockstep: a late side is refused at once, never left waiting
            with contextlib.suppress(OSError):
                self._server.close()

    def _conduct(self) -> None:
        try:
            sides = self._accept()
        except (LockstepError, OSError) as e:
            self.result.error = str(e)
            return
        samples: dict[str, list[float]] = {n: [] for n in self.names}
        elapsed = dict.fromkeys(self.names, 0.0)
        try:
            for name in self.names:  # the first turn: warm-up and calibration, one side at a time
                line, _ = sides[name]
                line.send({"go": True, "peers": [pid for n, (_, pid) in sides.items() if n != name]})
                line.recv()
            k = 0
            while True:
                for name in order(self.names, k):
                    line, _ = sides[name]
                    line.send({"go": True})
                    got = line.recv()
                    s, wall = got.get("s"), got.get("wall")
                    if not isinstance(s, (int, float)) or not isinstance(wall, (int, float)):
                        raise LockstepError(f"{name} sent no sample")
                    samples[name].append(float(s))
                    elapsed[name] += float(wall)
                k += 1
                if k >= self.max_samples:
                    self.result.stop = "max_samples"
                    break
                # The budget is each side's own sampling time (the first turn's calls are not sampling).
                if k >= self.min_samples and min(elapsed.values()) >= self.budget_s:
                    self.result.stop = "budget"
                    break
        except (LockstepError, OSError, ValueError) as e:
            self.result.error = f"lockstep broke: {e}"
        finally:
            self.result.samples = samples
            for line, _ in sides.values():
                with contextlib.suppress(OSError):
                    line.send({"go": False})
                line.close()
