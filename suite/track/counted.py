"""Judging counted rows (``--metric instructions``): a relative threshold, no p-values; what grew, by function.

Counts under callgrind are deterministic (the same case counted twice agrees to the
instruction; results/tuning/counting.md), so a counted case is ``slower`` when its
per-call instructions grew by more than ``count_threshold`` (default 0.5%) and
``faster`` when they shrank by as much; there is no interval to estimate and no test
to run. A timed run and a counted run are never compared (``CompareError``), and two
counted runs must have counted on the same simulated machine (caches, dispatch).

For each counted case that got slower, :func:`add_grown_functions` reads both sides'
callgrind files and lists the functions whose own instructions grew most, as
CodSpeed's differential flame graphs show them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from suite.callgrind import CallgrindError, grown_functions, read_dump
from suite.counting import COUNTED
from suite.results import Row
from suite.track.config import CompareError, Thresholds

#: Functions listed per regressed counted case.
TOP_FUNCTIONS = 5


def is_counted(rows: Sequence[Row]) -> bool:
    """Whether ``rows`` (one run) were counted rather than timed."""
    return any(r.metric == COUNTED for r in rows)


def check_metrics(base_rows: Sequence[Row], head_rows: Sequence[Row]) -> None:
    """CompareError when one run was timed and the other counted: their figures are not comparable."""
    b = {r.metric for r in base_rows}
    h = {r.metric for r in head_rows}
    if b and h and not b & h:
        raise CompareError(
            f"the base measured {', '.join(sorted(b))} and the head {', '.join(sorted(h))}: "
            "a timed run and a counted run are never compared; measure both sides with the same --metric"
        )


def check_simulated_machines(base_rows: Sequence[Row], head_rows: Sequence[Row], allow_other: bool) -> list[str]:
    """Warnings about counted runs' simulated machines; CompareError when they differ and that is not allowed."""
    b = sorted({r.machine for r in base_rows if r.metric == COUNTED and r.status == "ok"})
    h = sorted({r.machine for r in head_rows if r.metric == COUNTED and r.status == "ok"})
    if not b or not h or b == h:
        return []
    what = f"base counted on {', '.join(b)}, head on {', '.join(h)} (simulated caches, valgrind or CPU dispatch differ)"
    if not allow_other:
        raise CompareError(
            f"refusing to compare counts of different simulated machines: {what}; "
            "pass --allow-other-machine to compare anyway"
        )
    return [f"different simulated machines: {what}; compared anyway (--allow-other-machine)"]


def count_verdict(base: Row, head: Row, limits: Thresholds) -> dict[str, Any]:
    """Ratio of per-call instructions and the verdict by the relative threshold alone."""
    t = limits.count_threshold
    out: dict[str, Any] = {"threshold": t, "alpha": math.nan}
    if not base.instructions > 0 or not math.isfinite(head.instructions):
        return {**out, "verdict": "same", "note": "no counts to compare"}
    ratio = head.instructions / base.instructions
    out.update(ratio=ratio, ci_low=ratio, ci_high=ratio)
    note = ""
    if base.est_cycles > 0 and math.isfinite(head.est_cycles):
        note = f"est. cycles x{head.est_cycles / base.est_cycles:.4f}"
    if ratio > 1 + t:
        return {**out, "verdict": "slower", "note": note}
    if ratio < 1 / (1 + t):
        return {**out, "verdict": "faster", "note": note}
    return {**out, "verdict": "same", "note": note}


def add_grown_functions(cases: Sequence[Any], base_folder: Path, head_folder: Path, top: int = TOP_FUNCTIONS) -> None:
    """For each ``slower`` counted case, its ``functions``: (name, base Ir, head Ir) per call, most grown first."""
    for c in cases:
        if c.verdict != "slower" or c.base is None or c.head is None or c.head.metric != COUNTED:
            continue
        if not c.base.counts or not c.head.counts:
            c.note = "; ".join(filter(None, (c.note, "no callgrind files to list functions")))
            continue
        try:
            base, head = read_dump(base_folder / c.base.counts), read_dump(head_folder / c.head.counts)
        except CallgrindError as e:
            c.note = "; ".join(filter(None, (c.note, f"functions not listed: {e}")))
            continue
        nb, nh = max(c.base.n_samples, 1), max(c.head.n_samples, 1)
        c.functions = [(name, b / nb, h / nh) for name, b, h in grown_functions(base, head, top * 4)]
        c.functions = sorted(c.functions, key=lambda f: f[1] - f[2])[:top]
