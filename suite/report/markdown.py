"""Markdown reports from stored rows; nothing here runs a benchmark.

Layout of ``report.md``:

1. the run (id, commit, machine, libraries, case counts);
2. a summary to act on: the fastest form per backend and size, accuracy at a
   glance (the worst relative error as a fraction of its tolerance, per backend)
   and what did not run, counted by reason;
   for a run of several machines, the same case on each side by side, each against its
   own machine's ceilings (``suite.report.machines``);
3. the full tables: for each form, backends (and devices) down and sizes across,
   each cell the median with its IQR and the speedup against NumPy at the same
   case; the correctness table; every case that did not run, with its reason
   (each table built in ``suite.report.tables``);
4. scaling: the exponent k of ``time = a * T^k`` per backend and form, and the
   sizes where one form overtakes another (``suite.report.scaling``);
5. memory and traces: measured peak memory against the guard's estimate, and
   links to the ``--profile`` traces (``suite.report.why``);
6. the plots (``suite.report.plots``), linked relatively from ``plots/``.

``render`` builds the text from rows; ``write_report`` writes it, with the plots,
and is what ``python -m suite run`` and ``python -m suite report`` call. Plotting
can never fail a report: without matplotlib the report says how to install it,
and any other plotting error is logged in one line and noted in the report.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from suite.report.counts import COUNTS_INTRO, count_tables, counted
from suite.report.machines import across_machines, machines_line
from suite.report.scaling import find_crossovers, fit_scaling
from suite.report.tables import (
    accuracy_table,
    ceilings_line,
    correctness_table,
    crossover_table,
    fastest_table,
    machine_caches,
    not_run_summary,
    not_run_table,
    roofline_table,
    scaling_table,
    timing_tables,
)
from suite.report.why import memory_table, profiles_table
from suite.results import REPORT_NAME, STATUSES, Row, write_atomic

#: The folder, beside the report, that holds its figures.
PLOTS_DIR = "plots"


@dataclass(frozen=True)
class PlotLink:
    """A figure as the report links it: title and paths relative to the report."""

    title: str
    png: str
    svg: str


def plots_section(plots: Sequence[PlotLink], note: str) -> list[str]:
    lines: list[str] = []
    if note:
        lines += [note, ""]
    if not plots and not note:
        lines += ["No backend and form was measured at two or more sizes: nothing to plot.", ""]
    for p in plots:
        alt = p.title.replace("[", "(").replace("]", ")")
        lines += [f"**{p.title}** ([SVG]({p.svg}))", "", f"![{alt}]({p.png})", ""]
    return lines


def contention_lines(rows: Sequence[Row]) -> list[str]:
    """A warning paragraph when rows were measured under contention or drift, else nothing."""
    lines: list[str] = []
    contended = [r for r in rows if r.contended]
    if contended:
        lines += [
            f"> **{len(contended)} of {len(rows)} rows were measured under contention** (other processes used the "
            "cores they needed; the `foreign_cpu` and `reason` columns give the figures). They are marked "
            "**contended** below; their times are likely too slow and `compare` will not judge them.",
            "",
        ]
    drifted = [r for r in rows if r.drifted]
    if drifted:
        lines += [
            f"> **{len(drifted)} of {len(rows)} rows were measured while the machine had drifted**: the machine "
            "canary (a fixed copy and matmul, timed between cases) ran off its speed at the start of the run "
            "(the `canary_copy` and `canary_matmul` columns give the ratios). They are marked **drifted** below; "
            "`compare` will not judge them.",
            "",
        ]
    return lines


def render(
    meta: dict[str, Any], rows: Sequence[Row], plots: Sequence[PlotLink] = (), plot_note: str | None = None
) -> str:
    """The whole markdown report for one run.

    ``plots`` are the figures to embed; ``plot_note`` replaces the plots section's
    default note (None: the report was rendered without asking for plots).
    """
    machine = meta.get("machine", {})
    marked = any(r.contended or r.drifted for r in rows)
    counts = {s: sum(r.status == s for r in rows) for s in STATUSES}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    libs = ", ".join(f"{k} {v}" for k, v in machine.get("libraries", {}).items())
    head = [
        "# causal-bench report",
        "",
        f"- run: `{meta.get('run_id', '?')}`" + (" (interrupted, partial)" if meta.get("interrupted") else ""),
        f"- commit: `{str(meta.get('git_commit', '?'))[:12]}`" + (" (dirty tree)" if meta.get("git_dirty") else ""),
        machines_line(meta)
        or f"- machine: {machine.get('cpu_model', '?')}, {machine.get('cpu_count', '?')} cores, "
        f"{machine.get('memory_gib', '?')} GiB"
        + (f", {machine['gpu_name']}" if machine.get("gpu_name") else "")
        + f" (fingerprint `{machine.get('fingerprint', '?')}`)",
        f"- libraries: {libs or '?'}",
        f"- cases: {len(rows)} ({summary or 'none'})",
        "",
    ]
    if counted(rows):  # a counted run: counts in place of every time table
        return "\n".join([*head, *counted_sections(rows)]).rstrip("\n") + "\n"
    lines = [
        *head,
        "## Summary",
        "",
        *contention_lines(rows),
        "**Fastest form** for each backend at each size (B x T x C), with its median time per call:",
        "",
        *fastest_table(rows),
        "",
        "**How close to the hardware**: that fastest form's achieved rate as a fraction of the measured "
        "ceiling for its bound (memory: copy bandwidth, the best of several copy probes; compute: matmul "
        "rate). Above 100% is *in cache* only where the case's working set fits a cache of the machine; "
        "anywhere else it marks a ceiling that is too low. " + ceilings_line(meta),
        "",
        *roofline_table(rows, machine_caches(meta)),
        "",
        "**Accuracy at a glance**: the worst relative error of each backend as a fraction of its "
        "tolerance (below 1 passes; the full table is under Correctness).",
        "",
        *accuracy_table(rows),
        "",
        "**Not run**:",
        "",
        *not_run_summary(rows),
        "",
        *across_machines(meta, rows),
        "## Timings",
        "",
        "Cells: median time per call ± interquartile range; *spread* within/between: the noise inside one "
        "process (IQR / median, the median over rounds) and the spread between processes ((max - min) / median "
        "of the round medians; `-` with one round); in brackets the speedup against NumPy on the same case "
        "(above 1 is faster). *unstable* marks a spread within a process above 10%."
        + (" **contended** and **drifted** mark rows measured on a busy or drifting machine." if marked else ""),
        "",
        *timing_tables(rows),
        *correctness_and_not_run(rows),
        "",
        "## Scaling",
        "",
        "A straight line through log(time) against log(T) for each backend and form at fixed B and C: "
        "time = a * T^k. k is the slope with its standard error from the least-squares fit "
        "(none with two sizes); fixed per-call overhead flattens it at small T, so the slope between "
        "the two largest sizes is the better guess at the asymptote (about 2 for loop, matrix and softmax "
        "in flops, 1 for cumsum).",
        "",
        *scaling_table(fit_scaling(rows)),
        "",
        "**Crossovers**: where one form overtakes another on a backend, interpolated in log-log "
        "between the measured sizes.",
        "",
        *crossover_table(find_crossovers(rows, vary="form"), "No form overtakes another within the measured sizes."),
        "",
        "**Backend crossovers**: where one backend overtakes another on a form.",
        "",
        *crossover_table(find_crossovers(rows, vary="backend"), "No backend overtakes another."),
        "",
        "## Memory and traces",
        "",
        "**Peak memory** of each timed case, measured (the device's figure where the adapter gives one, "
        "else the worker's resident-set high-water mark over the timed calls, above what it held before "
        "the case's input existed), beside the memory guard's estimate (input, output and the form's working "
        "memory). The first case of a worker also carries the framework's one-time memory (a compile); "
        "arrays under the allocator's mmap threshold can reuse freed memory and read low.",
        "",
        *memory_table(rows),
        "",
        *profiles_table(rows),
        "## Plots",
        "",
        *plots_section(plots, "Plots were not written for this report." if plot_note is None else plot_note),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


def counted_sections(rows: Sequence[Row]) -> list[str]:
    """The report of a counted run: the counts, correctness and what did not run; no times, no plots."""
    return [
        "## Counts",
        "",
        COUNTS_INTRO,
        "",
        *count_tables(rows),
        *correctness_and_not_run(rows),
    ]


@dataclass
class WrittenReport:
    """What ``write_report`` wrote: the markdown, the figures, and why there are none."""

    path: Path
    plots: list[Path] = field(default_factory=list)
    note: str = ""


def write_report(
    out_dir: Path, meta: dict[str, Any], rows: Sequence[Row], plots: bool = True, name: str = REPORT_NAME
) -> WrittenReport:
    """Write ``out_dir/name`` and, with ``plots``, its figures in ``out_dir/plots``.

    Never fails for the plots: matplotlib missing gives a note with the install
    hint; any other plotting error is logged to stderr in one line and noted.
    """
    written = WrittenReport(out_dir / name)
    links: list[PlotLink] = []
    if plots and counted(rows):
        written.note = "A counted run has no time plots."
    elif plots:
        from suite.report.plots import PlotsUnavailable, write_plots

        try:
            for p in write_plots(out_dir / PLOTS_DIR, rows):
                links.append(PlotLink(p.title, f"{PLOTS_DIR}/{p.png.name}", f"{PLOTS_DIR}/{p.svg.name}"))
                written.plots += [p.png, p.svg]
        except PlotsUnavailable as e:
            written.note = f"Plots were not written: {e}."
        except Exception as e:  # a figure must never cost the report or the run
            first = (str(e).strip().splitlines() or [""])[0]
            print(f"warning: plots not written: {type(e).__name__}: {first}", file=sys.stderr)
            written.note = f"Plots were not written: {type(e).__name__} while plotting (see the log)."
            links = []
    else:
        written.note = "Plots were not requested (`--no-plots`)."
    write_atomic(written.path, render(meta, rows, links, written.note))
    return written


def correctness_and_not_run(rows: Sequence[Row]) -> list[str]:
    """The sections every report ends with, timed or counted: agreement, and what did not run and why."""
    return [
        "## Correctness",
        "",
        "Relative error is ||out - ref|| / ||ref|| against a float64 reference on the same input.",
        "",
        *correctness_table(rows),
        "",
        "## Not run",
        "",
        *not_run_table(rows),
    ]
