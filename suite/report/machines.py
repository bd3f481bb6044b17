"""The same case on different machines, side by side: the report section of a run of several machines.

Each cell is the case's median on that machine and its achieved rate as a
fraction of that machine's own ceiling for the row's bound (``ceiling_frac``,
judged on the node against its own copy bandwidth and matmul rate), so an H100
and a laptop are each read against what they can do. Empty for a run of one
machine: the rest of the report covers it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from suite.format import format_seconds, markdown_table
from suite.machines import label, run_machines
from suite.results import Row


def machine_columns(meta: Mapping[str, Any], rows: Sequence[Row]) -> list[str]:
    """The fingerprints of the machines the rows were measured on, in the order first seen."""
    return list(dict.fromkeys(r.machine for r in rows if r.machine))


def machines_line(meta: Mapping[str, Any]) -> str:
    """The report header's line for a run of several machines; "" for a run of one."""
    machines = run_machines(meta)
    if len(machines) < 2:
        return ""
    return f"- machines: {len(machines)}: " + "; ".join(f"{label(e)} (`{fp}`)" for fp, e in machines.items())


def _cell(row: Row | None) -> str:
    if row is None:
        return ""
    if row.status != "ok":
        return row.status
    frac = f" ({row.ceiling_frac:.0%} of {row.bound})" if row.bound and math.isfinite(row.ceiling_frac) else ""
    return f"{format_seconds(row.median_s)}{frac}"


def across_machines(meta: Mapping[str, Any], rows: Sequence[Row]) -> list[str]:
    """The markdown section comparing machines, or no lines when the run holds one machine."""
    columns = machine_columns(meta, rows)
    if len(columns) < 2:
        return []
    described = run_machines(meta)
    by_case: dict[str, dict[str, Row]] = {}
    for r in rows:
        if r.machine:
            by_case.setdefault(r.key, {})[r.machine] = r
    shared = {k: cells for k, cells in by_case.items() if len(cells) >= 2}
    legend = [f"- `{fp}`: {label(described.get(fp, {}))}" for fp in columns]
    lines = [
        "## Across machines",
        "",
        f"This run holds {len(columns)} machines. Each cell: the median time per call on that machine and, "
        "in brackets, the achieved rate as a fraction of that machine's own ceiling for the case's bound "
        "(memory: its copy bandwidth; compute: its matmul rate). Compare fractions across machines, "
        "times within one. The tables further down pool every machine's rows.",
        "",
        *legend,
        "",
    ]
    if not shared:
        return [*lines, "No case ran on two or more machines.", ""]
    body = [
        [next(iter(cells.values())).case.label(), *(_cell(cells.get(fp)) for fp in columns)]
        for _, cells in sorted(shared.items())
    ]
    return [*lines, *markdown_table(["case", *(f"`{fp}`" for fp in columns)], body), ""]
