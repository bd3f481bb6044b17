"""The dashboard's data: stored runs -> one plotly figure spec per case and per backend group.

Inputs are run folders (what ``python -m suite run --out`` wrote) or folders of run
folders (a history). Rows are grouped by the machine that measured them (the row's
``machine`` column, else the run's fingerprint), so a fleet run gives one series per
machine; each machine's runs are judged for steps as ``history`` judges them
(``history.judge_series``). Figures are plain plotly JSON (``data`` and ``layout``),
drawn in the browser by plotly.js; ``dashboard_page`` writes them into one HTML file.

Columns other engineers add are read with defaults: ``drifted`` (False), ``metric``
("time") and ``instructions``: a counted row plots instructions instead of seconds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from suite.format import format_seconds
from suite.machine import machine_fingerprint
from suite.results import CSV_NAME, JSON_NAME, ResultsError, Row, load_run
from suite.track.config import CompareConfig
from suite.track.history import STEP_DOWN, STEP_UP, Point, StoredRun, judge_series

#: Runs kept per machine, newest first: 200 runs of the default sweep's 180 cases stay under 15 MB.
DEFAULT_LAST = 200
UNKNOWN = "unknown"
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def metric(row: Row) -> str:
    """``time`` or ``instructions``; rows written before the metric column are timed."""
    return str(getattr(row, "metric", "") or "time")


def value(row: Row) -> float:
    """The figure plotted for a row: instructions per call for counted rows, else the median seconds."""
    if metric(row) == "instructions":
        return float(getattr(row, "instructions", math.nan))
    return float(row.median_s)


def flagged(row: Row) -> str:
    """Why a timed row is drawn apart: contended, drifted (the canary's column), or ""."""
    flags = [name for name in ("contended", "drifted") if bool(getattr(row, name, False))]
    return ", ".join(flags)


def round_bounds(row: Row) -> tuple[float, float] | None:
    """The lowest and highest round median of a row of several rounds; None for one round."""
    if row.rounds >= 2 and len(row.samples_round) == len(row.samples_s) and row.samples_s:
        per_round: dict[int, list[float]] = {}
        for r, s in zip(row.samples_round, row.samples_s, strict=True):
            per_round.setdefault(r, []).append(s)
        medians = [statistics.median(v) for v in per_round.values()]
        if len(medians) >= 2:
            return min(medians), max(medians)
    if math.isfinite(row.round_spread) and math.isfinite(row.median_s):
        half = row.round_spread * row.median_s / 2  # only the spread was kept: centred on the median
        return row.median_s - half, row.median_s + half
    return None


def is_run(path: Path) -> bool:
    return path.is_file() or (path / JSON_NAME).exists() or (path / CSV_NAME).exists()


def load_inputs(paths: Iterable[Path]) -> list[StoredRun]:
    """Every run named, or held one level down in a named folder. ResultsError names the bad input.

    A folder holding no run (a history not yet begun) contributes none.
    """
    runs: list[StoredRun] = []
    seen: set[Path] = set()
    for path in paths:
        if not path.exists():
            raise ResultsError(f"{path} does not exist")
        members = [path] if is_run(path) else sorted(p for p in path.iterdir() if p.is_dir() and is_run(p))
        for p in members:
            if p.resolve() in seen:
                continue
            seen.add(p.resolve())
            meta, rows = load_run(p)
            runs.append(StoredRun(p, meta, {r.key: r for r in rows}))
    return runs


def started(run: StoredRun) -> str:
    """The run's start as plotly reads dates (UTC, no offset); the file's time when the run has none."""
    text = run.started
    try:
        when = datetime.fromisoformat(text) if text else None
    except ValueError:
        when = None
    if when is None:
        file = (
            run.path if run.path.is_file() else run.path / (JSON_NAME if (run.path / JSON_NAME).exists() else CSV_NAME)
        )
        when = datetime.fromtimestamp(file.stat().st_mtime, UTC)
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when.strftime("%Y-%m-%d %H:%M:%S")


def by_machine(runs: Sequence[StoredRun], last: int = DEFAULT_LAST) -> dict[str, list[StoredRun]]:
    """Each machine's view of the runs (its rows only), oldest first, its newest ``last`` runs."""
    ordered = sorted(runs, key=lambda r: (started(r), str(r.path)))
    machines: dict[str, list[StoredRun]] = {}
    for run in ordered:
        fallback = machine_fingerprint(run.meta) or UNKNOWN
        mine: dict[str, dict[str, Row]] = {}
        for key, row in run.rows.items():
            mine.setdefault(row.machine or fallback, {})[key] = row
        for fp, rows in mine.items():
            machines.setdefault(fp, []).append(StoredRun(run.path, run.meta, rows))
    return {fp: rs[-last:] for fp, rs in sorted(machines.items())}


@dataclass(frozen=True)
class Machine:
    fingerprint: str
    label: str
    color: str


def describe_machines(machines: dict[str, list[StoredRun]]) -> dict[str, Machine]:
    out = {}
    for i, (fp, runs) in enumerate(machines.items()):
        info = runs[-1].meta.get("machine")
        cpu = info.get("cpu_model", "") if isinstance(info, dict) else ""
        label = f"{fp[:12]}" + (f" ({cpu})" if cpu else "")
        out[fp] = Machine(fp, label, COLORS[i % len(COLORS)])
    return out


def _num(x: float) -> float | None:
    return float(f"{x:.6g}") if math.isfinite(x) else None


def figures_text(row: Row) -> str:
    """The row's figures for a hover: its value, spread and flags."""
    v = value(row)
    shown = f"{v:,.0f} instructions" if metric(row) == "instructions" else format_seconds(v)
    parts = [f"{row.status}: {shown} per call"]
    if row.rounds >= 2:
        spread = f", spread {row.round_spread:.1%}" if math.isfinite(row.round_spread) else ""
        parts.append(f"{row.rounds} rounds{spread}")
    if math.isfinite(row.ci_low_s) and metric(row) == "time":
        parts.append(f"95% CI {format_seconds(row.ci_low_s)} to {format_seconds(row.ci_high_s)}")
    if flags := flagged(row):
        parts.append(f"measured {flags}")
    return "<br>".join(parts)


def hover(run: StoredRun, machine: Machine, row: Row, point: Point | None = None) -> str:
    commit = str(run.meta.get("git_commit") or "no commit recorded")[:12]
    lines = [f"commit {commit}", f"{started(run)} UTC", f"machine {machine.label}", figures_text(row)]
    if point is not None and point.step:
        lines.append(f"{point.step}: {point.ratio:.2f}x the previous run (p={point.p_value:.2g})")
    return "<br>".join(lines)


def _trace(
    name: str, points: Sequence[tuple[StoredRun, Row, Point | None]], machine: Machine, **style: Any
) -> dict[str, Any]:
    ys = [value(r) for _, r, _ in points]
    bounds = [round_bounds(r) if metric(r) == "time" else None for _, r, _ in points]
    trace: dict[str, Any] = {
        "type": "scatter",
        "name": name,
        "legendgroup": machine.fingerprint,
        "x": [started(run) for run, _, _ in points],
        "y": [_num(y) for y in ys],
        "hovertext": [hover(run, machine, r, p) for run, r, p in points],
        "hovertemplate": "%{hovertext}<extra></extra>",
        "customdata": [str(run.meta.get("git_commit") or "") for run, _, _ in points],
        "marker": {"color": machine.color, "size": 7},
        "line": {"color": machine.color},
    }
    if any(b is not None for b in bounds):
        trace["error_y"] = {
            "type": "data",
            "symmetric": False,
            "array": [_num(b[1] - y) if b else None for b, y in zip(bounds, ys, strict=True)],
            "arrayminus": [_num(y - b[0]) if b else None for b, y in zip(bounds, ys, strict=True)],
            "color": machine.color,
            "thickness": 1,
        }
    for k, v in style.items():
        trace[k] = {**trace[k], **v} if isinstance(v, dict) and k in trace else v
    return trace


def axis_title(rows: Iterable[Row]) -> str:
    counted = any(metric(r) == "instructions" for r in rows)
    return "instructions per call" if counted else "seconds per call (median)"


def trend_figure(key: str, series: dict[str, list[Point]], machines: dict[str, Machine]) -> dict[str, Any]:
    """A case over time: per machine its timed runs (bars: spread between rounds), flagged runs apart, steps marked."""
    data: list[dict[str, Any]] = []
    rows: list[Row] = []
    untimed = 0
    for fp, points in series.items():
        m = machines[fp]
        timed = [(p.run, p.row, p) for p in points if p.row is not None and p.row.status == "ok"]
        untimed += sum(1 for p in points if p.row is not None and p.row.status != "ok")
        rows += [r for _, r, _ in timed]
        clean = [t for t in timed if not flagged(t[1])]
        apart = [t for t in timed if flagged(t[1])]
        if clean:
            data.append(_trace(m.label, clean, m, mode="lines+markers"))
        if apart:
            marker = {"symbol": "x-open", "size": 10}
            data.append(_trace(f"{m.label}: contended or drifted", apart, m, mode="markers", marker=marker))
        for step, symbol, color in ((STEP_UP, "triangle-up", "#d62728"), (STEP_DOWN, "triangle-down", "#2ca02c")):
            stepped = [t for t in clean if t[2] is not None and t[2].step == step]
            if stepped:
                marker = {"symbol": symbol, "size": 15, "color": color, "line": {"width": 1, "color": "#000"}}
                data.append(_trace(f"{m.label}: {step}", stepped, m, mode="markers", marker=marker))
    note = f" ({untimed} rows not timed)" if untimed else ""
    layout = {
        "title": {"text": f"{key}{note}", "font": {"size": 14}},
        "xaxis": {"title": {"text": "run started (UTC)"}, "type": "date"},
        "yaxis": {"title": {"text": axis_title(rows)}, "rangemode": "tozero"},
        "hovermode": "closest",
        "legend": {"orientation": "h", "y": -0.25},
        "height": 440,
        "margin": {"t": 50, "l": 70, "r": 20},
    }
    return {"data": data, "layout": layout}


def group_of(key: str) -> str:
    """The case without its backend: the cases drawn side by side."""
    return key.split(":", 1)[1] if ":" in key else key


def backends_figure(group: str, machines: dict[str, list[StoredRun]], described: dict[str, Machine]) -> dict[str, Any]:
    """The backends of one group side by side at each machine's latest run that holds the group."""
    data: list[dict[str, Any]] = []
    rows: list[Row] = []
    for fp, runs in machines.items():
        latest = next((r for r in reversed(runs) if any(group_of(k) == group for k in r.rows)), None)
        if latest is None:
            continue
        timed = [(latest, r, None) for k, r in latest.rows.items() if group_of(k) == group and r.status == "ok"]
        if not timed:
            continue
        rows += [r for _, r, _ in timed]
        trace = _trace(described[fp].label, timed, described[fp])
        trace.update(type="bar", x=[r.backend for _, r, _ in timed])
        trace["marker"] = {"color": described[fp].color}
        del trace["line"]
        data.append(trace)
    layout = {
        "title": {"text": f"backends side by side at the latest run: {group}", "font": {"size": 14}},
        "barmode": "group",
        "yaxis": {"title": {"text": axis_title(rows)}},
        "hovermode": "closest",
        "height": 380,
        "margin": {"t": 50, "l": 70, "r": 20},
    }
    return {"data": data, "layout": layout}


def build_data(
    runs: Sequence[StoredRun], config: CompareConfig | None = None, last: int = DEFAULT_LAST
) -> dict[str, Any]:
    """Everything the page embeds, once: runs, machines, one trend per case, one bar chart per group."""
    config = config or CompareConfig()
    machines = by_machine(runs, last)
    described = describe_machines(machines)
    judged = {fp: judge_series(rs, config) for fp, rs in machines.items()}
    keys = sorted({k for series in judged.values() for k in series})
    cases: dict[str, Any] = {}
    steps: list[dict[str, str]] = []
    for key in keys:
        series = {fp: s[key] for fp, s in judged.items() if key in s}
        cases[key] = {"group": group_of(key), "trend": trend_figure(key, series, described)}
        for fp, points in series.items():
            steps += [
                {
                    "case": key,
                    "step": p.step,
                    "when": started(p.run),
                    "machine": described[fp].label,
                    "ratio": f"{p.ratio:.2f}x",
                }
                for p in points
                if p.step
            ]
    groups = {g: backends_figure(g, machines, described) for g in sorted({c["group"] for c in cases.values()})}
    steps.sort(key=lambda s: s["when"], reverse=True)
    machine_list = [
        {"label": described[fp].label, "runs": len(rs), "first": started(rs[0]), "last": started(rs[-1])}
        for fp, rs in machines.items()
    ]
    timed = [k for k in keys if any(t["y"] for t in cases[k]["trend"]["data"])]
    first = steps[0]["case"] if steps else next(iter(timed or keys), "")
    return {
        "runs": len(runs),
        "machines": machine_list,
        "cases": cases,
        "groups": groups,
        "steps": steps,
        "first": first,
    }
