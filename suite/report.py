"""Markdown reports from stored rows; nothing here runs a benchmark.

Layout of ``report.md``: run summary, then for each form a table with backends
(and their devices) as rows and sizes as columns, each cell the median with its
IQR and the speedup against NumPy at the same case; then the correctness table
and the list of cases that did not run, with reasons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from suite.forms import FORMS
from suite.results import STATUSES, Row


def format_seconds(s: float) -> str:
    """A time with a unit a person reads at a glance (ns, us, ms, s)."""
    if s is None or math.isnan(s):
        return "-"
    units = (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9))
    for i, (unit, scale) in enumerate(units):
        if s >= scale or unit == "ns":
            text = f"{s / scale:.3g}"
            if float(text) >= 1000 and i > 0:  # rounding carried into the next unit
                unit, scale = units[i - 1]
                text = f"{s / scale:.3g}"
            return f"{text} {unit}"
    raise AssertionError("unreachable")


def format_speedup(ratio: float) -> str:
    """``2.5x``, ``0.47x``, ``123x``: two significant digits, never an exponent."""
    return f"{ratio:.0f}x" if ratio >= 100 else f"{ratio:.2g}x"


def _size(r: Row) -> str:
    return f"{r.B}x{r.T}x{r.C}"


def _variant(r: Row) -> str:
    """Dtype, precision and input, where they differ from the plain float32 case."""
    parts = [r.dtype]
    if r.precision != "ieee":
        parts.append(r.precision)
    if r.input != "normal":
        parts.append(r.input)
    return " ".join(parts)


def _cell(r: Row, base: Row | None) -> str:
    if r.status != "ok":
        return f"*{r.status}*"
    text = f"{format_seconds(r.median_s)} ± {format_seconds(r.iqr_s)}"
    if r.unstable:
        text += " (unstable)"
    if base is not None and base is not r and base.status == "ok" and r.median_s > 0:
        text += f" ({format_speedup(base.median_s / r.median_s)})"
    return text


def _table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(" ".join(c.split("\n")).replace("|", "\\|") for c in row) + " |" for row in body]
    return lines


def timing_tables(rows: Sequence[Row]) -> list[str]:
    """One table per (form, variant): backends down, sizes across."""
    out: list[str] = []
    sizes = sorted({(r.B, r.T, r.C) for r in rows}, key=lambda s: (s[0] * s[1] * s[2], s))
    size_names = [f"{b}x{t}x{c}" for b, t, c in sizes]
    for form in FORMS:
        for variant in sorted({_variant(r) for r in rows if r.form == form}):
            group = [r for r in rows if r.form == form and _variant(r) == variant]
            cells: dict[tuple[str, str], Row] = {}
            for r in group:
                cells[(f"{r.backend} ({r.device or '?'})", _size(r))] = r
            baseline = {_size(r): r for r in group if r.backend == "numpy"}
            backends = sorted({k[0] for k in cells}, key=lambda b: (not b.startswith("numpy "), b))
            body = [
                [b, *[_cell(cells[(b, s)], baseline.get(s)) if (b, s) in cells else "" for s in size_names]]
                for b in backends
            ]
            out += [f"### {form} ({variant})", "", f"`{FORMS[form].summary}`, {FORMS[form].complexity}", ""]
            out += _table(["backend (device)", *size_names], body)
            out.append("")
    return out


def correctness_table(rows: Sequence[Row]) -> list[str]:
    checked = [r for r in rows if r.status in ("ok", "mismatch")]
    body = [
        [
            r.backend,
            r.form,
            _size(r),
            _variant(r),
            f"{r.rel_err:.2e}",
            f"{r.max_abs_err:.2e}",
            f"{r.tol:.2e}",
            "pass" if r.status == "ok" else "**FAIL**",
        ]
        for r in sorted(checked, key=lambda r: (r.status == "ok", r.backend, r.form, r.B * r.T * r.C))
    ]
    return _table(["backend", "form", "size", "dtype", "rel. error", "max abs error", "tolerance", "verdict"], body)


def not_run_table(rows: Sequence[Row]) -> list[str]:
    rest = [r for r in rows if r.status not in ("ok", "mismatch")]
    if not rest:
        return ["Every case ran."]
    body = [[r.status, r.backend, r.form, _size(r), _variant(r), r.reason] for r in rest]
    return _table(["status", "backend", "form", "size", "dtype", "reason"], body)


def render(meta: dict[str, Any], rows: Sequence[Row]) -> str:
    """The whole markdown report for one run."""
    machine = meta.get("machine", {})
    counts = {s: sum(r.status == s for r in rows) for s in STATUSES}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    libs = ", ".join(f"{k} {v}" for k, v in machine.get("libraries", {}).items())
    lines = [
        "# causal-bench report",
        "",
        f"- run: `{meta.get('run_id', '?')}`" + (" (interrupted, partial)" if meta.get("interrupted") else ""),
        f"- commit: `{str(meta.get('git_commit', '?'))[:12]}`" + (" (dirty tree)" if meta.get("git_dirty") else ""),
        f"- machine: {machine.get('cpu_model', '?')}, {machine.get('cpu_count', '?')} cores, "
        f"{machine.get('memory_gib', '?')} GiB"
        + (f", {machine['gpu_name']}" if machine.get("gpu_name") else "")
        + f" (fingerprint `{machine.get('fingerprint', '?')}`)",
        f"- libraries: {libs or '?'}",
        f"- cases: {len(rows)} ({summary or 'none'})",
        "",
        "Cells: median time per call ± interquartile range, and in brackets the speedup "
        "against NumPy on the same case (above 1 is faster). *unstable* marks IQR/median above 10%.",
        "",
        "## Timings",
        "",
        *timing_tables(rows),
        "## Correctness",
        "",
        "Relative error is ||out - ref|| / ||ref|| against a float64 reference on the same input.",
        "",
        *correctness_table(rows),
        "",
        "## Not run",
        "",
        *not_run_table(rows),
        "",
    ]
    return "\n".join(lines)
