"""Reading callgrind's output: a dump's totals, its cost per function, one cycle estimate.

A counted case (``suite.counting``) leaves one callgrind file, a dump named by the
case that holds only its counted calls. This module reads the file format directly
(``events:``, ``totals:``, ``fn=`` blocks of cost lines; valgrind's
docs/cl-format.html) rather than shelling out to ``callgrind_annotate``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

#: The combined figure's weights, from pythonspeed/cachegrind-benchmarking
#: (``cachegrind.py``: ``l1_hits + 5 * ll_hits + 35 * ram_hits``): an access served by
#: the first-level cache costs 1 cycle, one served by the last level 5, one from RAM 35.
#: Every instruction fetch and data read or write is one access.
L1_HIT_CYCLES = 1
LL_HIT_CYCLES = 5
RAM_CYCLES = 35

_NAME = re.compile(r"^\((\d+)\)(?:\s+(.*))?$")


class CallgrindError(Exception):
    """A callgrind file is missing, unreadable or holds no totals."""


@dataclass
class CallgrindDump:
    """One dump: its event totals and each function's self cost in instructions (Ir)."""

    events: dict[str, int]
    functions: dict[str, int] = field(default_factory=dict)

    def event(self, name: str) -> int:
        return self.events.get(name, 0)

    @property
    def instructions(self) -> int:
        return self.event("Ir")

    @property
    def l1_misses(self) -> int:
        """First-level misses: instruction reads, data reads and writes."""
        return self.event("I1mr") + self.event("D1mr") + self.event("D1mw")

    @property
    def ll_misses(self) -> int:
        """Last-level misses, served from RAM."""
        return self.event("ILmr") + self.event("DLmr") + self.event("DLmw")

    @property
    def est_cycles(self) -> int:
        """Cycles as pythonspeed/cachegrind-benchmarking estimates them (the weights above)."""
        accesses = self.instructions + self.event("Dr") + self.event("Dw")
        ram = self.ll_misses
        ll_hits = self.l1_misses - ram
        l1_hits = accesses - ll_hits - ram
        return L1_HIT_CYCLES * l1_hits + LL_HIT_CYCLES * ll_hits + RAM_CYCLES * ram


def _name(value: str, names: dict[str, str]) -> str:
    """A (possibly compressed) name: ``(id) name`` defines id, ``(id)`` reuses it."""
    m = _NAME.match(value.strip())
    if m is None:
        return value.strip()
    ident, name = m.group(1), m.group(2)
    if name:
        names[ident] = name
        return name
    return names.get(ident, f"({ident})")


def read_dump(path: Path) -> CallgrindDump:
    """The totals and per-function self Ir of the callgrind file at ``path``; CallgrindError if unusable."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise CallgrindError(f"cannot read callgrind output {path}: {e.strerror or e}") from None
    event_names: list[str] = []
    positions = 1  # position columns before the events (``positions: line`` by default)
    totals: list[int] | None = None
    functions: dict[str, int] = {}
    fn_names: dict[str, str] = {}
    current = ""
    after_calls = False
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head = line[0]
        if head.isdigit() or head in "+-*":
            # A cost line: the position, then the events in order (missing ones are 0).
            # The line after ``calls=`` is the call's inclusive cost, not the caller's own.
            if not after_calls and current:
                parts = line.split()
                if len(parts) > positions:
                    functions[current] = functions.get(current, 0) + int(parts[positions])
            after_calls = False
            continue
        key, _, value = line.partition("=")
        if key == "fn":
            current = _name(value, fn_names)
        elif key == "cfn":
            _name(value, fn_names)
        elif key == "calls":
            after_calls = True
        elif line.startswith("positions:"):
            positions = len(line.split(":", 1)[1].split())
        elif line.startswith("events:"):
            event_names = line.split(":", 1)[1].split()
        elif line.startswith("totals:"):
            totals = [int(v) for v in line.split(":", 1)[1].split()]
    if totals is None or not event_names:
        raise CallgrindError(f"{path} holds no callgrind totals (the counted process stopped before its dump?)")
    return CallgrindDump(dict(zip(event_names, totals, strict=False)), functions)


def grown_functions(base: CallgrindDump, head: CallgrindDump, top: int = 5) -> list[tuple[str, int, int]]:
    """The ``top`` functions whose self Ir grew most from ``base`` to ``head``: (name, base Ir, head Ir)."""
    names = set(base.functions) | set(head.functions)
    growth = [(n, base.functions.get(n, 0), head.functions.get(n, 0)) for n in names]
    grown = [g for g in growth if g[2] > g[1]]
    grown.sort(key=lambda g: (g[1] - g[2], g[0]))
    return grown[:top]
