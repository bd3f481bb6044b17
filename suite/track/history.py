"""Per-case trends over the stored runs of one machine, with step changes flagged.

A history folder holds run folders (each what ``python -m suite run --out``
wrote). Runs are grouped by machine fingerprint (runs of different machines are
never put on one trend line) and ordered by their start time. For every case,
each run is compared with the previous run that timed it, using the same test as
``suite.track.compare`` (ratio of medians beyond the threshold, ``p < alpha``,
interval excluding 1; between rounds where both runs have two or more, as
``compare`` judges them): a ``step up`` is a significant slowdown between
consecutive runs, a ``step down`` a significant speedup. A row measured under
contention (``Row.contended``) or while the machine canary had drifted
(``Row.drifted``) is shown, marked, but judges nothing: it gets no step, and the
next run is compared with the last run before it.

Counted rows (``--metric instructions``; their keys end in ``@instructions``, so a
counted case and its timed twin are two series, never one) are judged as ``compare``
judges them: a step when the instructions per call moved beyond the counted threshold
(``count_threshold``, 0.5% by default), with no test and no p-value
(``suite.track.counted.count_verdict``). Counts of different simulated machines
(``Row.machine``: valgrind, caches, CPU dispatch) are never set against each other: a
row counted on another one than the row before it starts the series afresh, marked,
with no step. Figures are instructions per call where the rows were counted.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from suite.counting import COUNTED
from suite.format import csv_cell, format_count, format_p, format_ratio, format_seconds, markdown_table
from suite.machine import machine_fingerprint
from suite.results import ResultsError, Row, load_run
from suite.track.compare import count_verdict, rounds_verdict
from suite.track.config import CompareConfig, Thresholds

MD_NAME, CSV_NAME = "history.md", "history.csv"
STEP_UP, STEP_DOWN = "step up", "step down"


@dataclass
class StoredRun:
    path: Path
    meta: dict[str, Any]
    rows: dict[str, Row]

    @property
    def started(self) -> str:
        return str(self.meta.get("started") or "")

    @property
    def label(self) -> str:
        commit = str(self.meta.get("git_commit") or "")[:7]
        return f"{self.started[:16] or self.path.name}" + (f" {commit}" if commit else "")


@dataclass
class Point:
    """One case in one run, and how it moved from the previous timed run."""

    run: StoredRun
    row: Row | None
    ratio: float = math.nan
    p_value: float = math.nan
    step: str = ""
    #: A counted row whose simulated machine differs from the previous counted row's: not compared.
    new_machine: bool = False


@dataclass
class History:
    fingerprint: str
    runs: list[StoredRun]
    series: dict[str, list[Point]]
    skipped: list[str] = field(default_factory=list)
    other_machines: dict[str, int] = field(default_factory=dict)

    def steps(self) -> list[tuple[str, Point]]:
        return [(k, p) for k, pts in self.series.items() for p in pts if p.step]


def discover_runs(root: Path) -> tuple[list[StoredRun], list[str]]:
    """Every readable run under ``root`` (its subfolders, or root itself), and what was skipped."""
    candidates = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if root.is_dir() and not candidates:
        candidates = [root]
    runs, skipped = [], []
    for p in candidates:
        try:
            meta, rows = load_run(p)
        except ResultsError as e:
            skipped.append(f"{p}: {e}")
            continue
        runs.append(StoredRun(p, meta, {r.key: r for r in rows}))
    return runs, skipped


def build_history(root: str | Path, config: CompareConfig | None = None, fingerprint: str | None = None) -> History:
    """Trend lines of the runs under ``root`` for one machine.

    ``fingerprint`` None takes the machine of the most recent run. Raises
    ResultsError when ``root`` is not a folder or holds no readable run.
    """
    config = config or CompareConfig()
    base = Path(root)
    if not base.is_dir():
        raise ResultsError(f"{base} is not a folder of run folders")
    runs, skipped = discover_runs(base)
    if not runs:
        raise ResultsError(f"{base} holds no readable runs" + (f" ({len(skipped)} unreadable)" if skipped else ""))
    runs.sort(key=lambda r: (r.started, r.path.name))
    by_fp: dict[str, list[StoredRun]] = {}
    for r in runs:
        by_fp.setdefault(machine_fingerprint(r.meta) or "unknown", []).append(r)
    fp = fingerprint or (machine_fingerprint(runs[-1].meta) or "unknown")
    if fp not in by_fp:
        raise ResultsError(f"no run of machine {fp} under {base}; machines there: {', '.join(sorted(by_fp))}")
    chosen = by_fp[fp]
    series = judge_series(chosen, config)
    others = {k: len(v) for k, v in by_fp.items() if k != fp}
    return History(fp, chosen, series, skipped, others)


def judge_series(runs: list[StoredRun], config: CompareConfig) -> dict[str, list[Point]]:
    """Each case's points over ``runs`` (one machine's, in time order), steps judged.

    A timed row is compared with the previous timed, uncontended row of its case;
    a contended row is kept, marked, and judges nothing. A counted row is compared with
    the previous counted row of its case by the counted threshold alone, when both were
    counted on one simulated machine.
    """
    keys = list(dict.fromkeys(k for r in runs for k in r.rows))
    series: dict[str, list[Point]] = {}
    for key in keys:
        points: list[Point] = []
        previous: Row | None = None
        for run in runs:
            row = run.rows.get(key)
            point = Point(run, row)
            if row is not None and row.status == "ok" and not row.contended and not row.drifted:
                if previous is not None and is_counted(row) and previous.machine != row.machine:
                    point.new_machine = True  # other simulated machine: its counts start afresh
                elif previous is not None:
                    figures = step_figures(previous, row, config.for_case(row.backend, row.form))
                    point.ratio = figures.get("ratio", math.nan)
                    point.p_value = figures.get("p_value", math.nan)
                    point.step = {"slower": STEP_UP, "faster": STEP_DOWN}.get(figures["verdict"], "")
                previous = row
            points.append(point)
        series[key] = points
    return series


def is_counted(row: Row) -> bool:
    return row.case.metric == COUNTED


def step_figures(previous: Row, row: Row, limits: Thresholds) -> dict[str, Any]:
    """The verdict and figures of ``row`` against the ``previous`` row of its case, as ``compare`` judges them."""
    if is_counted(row):
        return count_verdict(previous, row, limits)
    return rounds_verdict(previous, row, limits)


def _cell(p: Point) -> str:
    if p.row is None:
        return ""
    if p.row.status != "ok":
        return f"*{p.row.status}*"
    counted = is_counted(p.row)
    text = f"{format_count(p.row.instructions)} instr" if counted else format_seconds(p.row.median_s)
    if p.row.contended:
        return f"{text} (contended)"
    if p.row.drifted:
        return f"{text} (drifted)"
    if p.new_machine:
        return f"{text} (other simulated machine)"
    if p.step:
        arrow = "▲" if p.step == STEP_UP else "▼"
        # Counted steps start at 0.5%: three decimals show them.
        text += f" {arrow} {p.ratio:.3f}x" if counted else f" {arrow} {p.ratio:.2f}x"
    return text


def _figures_title(h: History) -> str:
    counted = {is_counted(p.row) for pts in h.series.values() for p in pts if p.row is not None}
    if counted == {True}:
        return "Instructions per call"
    if True in counted:
        return "Per call: median time, instructions where counted (`@instructions`)"
    return "Median per call"


def render_markdown(h: History, last: int = 12) -> str:
    """Trend table (the newest ``last`` runs as columns) and the list of step changes."""
    shown = h.runs[-last:]
    first = len(h.runs) - len(shown)
    lines = [
        f"## causal-bench history: machine `{h.fingerprint}`, {len(h.runs)} runs, {len(h.series)} cases",
        "",
    ]
    if first:
        lines.append(f"The newest {len(shown)} runs are shown; history.csv holds all {len(h.runs)}.")
    if h.other_machines:
        other = ", ".join(f"`{fp}` ({n} runs)" for fp, n in sorted(h.other_machines.items()))
        lines.append(f"Runs of other machines left out: {other}.")
    for s in h.skipped:
        lines.append(f"> unreadable, skipped: {s}")
    steps = h.steps()
    lines += ["", f"### Step changes ({len(steps)})", ""]
    if steps:
        body = [[f"`{key}`", p.run.label, p.step, format_ratio(p.ratio), format_p(p.p_value)] for key, p in steps]
        lines += markdown_table(["case", "run", "step", "head/previous", "p"], body)
    else:
        lines.append("none")
    lines += ["", f"### {_figures_title(h)}", ""]
    body = [[f"`{key}`", *(_cell(p) for p in points[first:])] for key, points in h.series.items()]
    lines += markdown_table(["case", *(r.label for r in shown)], body)
    return "\n".join(lines) + "\n"


CSV_COLUMNS = (
    "key",
    "run_id",
    "started",
    "git_commit",
    "path",
    "status",
    "median_s",
    "instructions",
    "ratio",
    "p_value",
    "step",
    "contended",
    "drifted",
)


def render_csv(h: History) -> str:
    """One line per case and run that has a row, every run (not only the newest)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for key, points in h.series.items():
        for p in points:
            if p.row is None:
                continue
            meta = p.run.meta
            w.writerow(
                [
                    key,
                    meta.get("run_id", ""),
                    p.run.started,
                    meta.get("git_commit", ""),
                    str(p.run.path),
                    p.row.status,
                    *(csv_cell(x) for x in (p.row.median_s, p.row.instructions, p.ratio, p.p_value)),
                    p.step,
                    str(bool(p.row.contended)).lower(),
                    str(bool(p.row.drifted)).lower(),
                ]
            )
    return buf.getvalue()
