"""The tables of a report, each built from stored rows as markdown lines.

Timings (forms x backends x sizes), correctness, what did not run, the summary
tables (fastest form, roofline, accuracy), scaling exponents and crossovers.
``suite.report.markdown`` puts them together into one document.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from suite.ceilings import beyond_ceiling
from suite.ceilings import from_metadata as ceilings_from_metadata
from suite.format import format_seconds, format_speedup, format_spread, markdown_table
from suite.forms import FORMS
from suite.report.scaling import Crossover, GroupKey, ScalingFit
from suite.results import Row


def _size(r: Row) -> str:
    return f"{r.B}x{r.T}x{r.C}"


def _variant(r: Row | GroupKey) -> str:
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
    if math.isfinite(r.within_spread) or math.isfinite(r.round_spread):
        text += f", spread {format_spread(r.within_spread, r.round_spread)}"
    if r.unstable:
        text += " (unstable)"
    if r.contended:
        text += " (**contended**)"
    if r.drifted:
        text += " (**drifted**)"
    if base is not None and base is not r and base.status == "ok" and r.median_s > 0:
        text += f" ({format_speedup(base.median_s / r.median_s)})"
    return text


def timing_tables(rows: Sequence[Row]) -> list[str]:
    """One table per (form, variant): backends down, sizes across."""
    out: list[str] = []
    size_names = [f"{b}x{t}x{c}" for b, t, c in _sizes(rows)]
    for form in FORMS:
        for variant in sorted({_variant(r) for r in rows if r.form == form}):
            group = [r for r in rows if r.form == form and _variant(r) == variant]
            # A backend none of whose cases ran here (not installed, no GPU) gets no
            # row of blanks: the Not run table says why, once.
            ran = {r.backend for r in group if r.status != "skipped"}
            # A skipped row may not know its device (the worker never started); it
            # belongs on the row of its backend's device, not on one of its own.
            known = {r.backend: r.device for r in group if r.device}
            cells: dict[tuple[str, str], Row] = {}
            order: dict[str, tuple[bool, str, str]] = {}
            for r in group:
                if r.backend in ran:
                    # A form with kernels gets a line per kernel: ``torch (cpu) flash``; a
                    # variant its own line under the idiom's: ``numpy (cpu) cumsum[staged]``.
                    backend = f"{r.backend} ({r.device or known.get(r.backend) or '?'})"
                    tag = f"{r.form}[{r.variant}]" if r.variant else ""
                    label = " ".join(p for p in (backend, r.kernel, tag) if p)
                    cells[(label, _size(r))] = r
                    order[label] = (r.backend != "numpy", f"{backend} {r.kernel}", r.variant)
            # Speed-ups are against NumPy's own idiom, never its tuned variant.
            baseline = {_size(r): r for r in group if r.backend == "numpy" and not r.variant}
            backends = sorted(order, key=lambda b: order[b])
            body = [
                [b, *[_cell(cells[(b, s)], baseline.get(s)) if (b, s) in cells else "" for s in size_names]]
                for b in backends
            ]
            out += [f"### {form} ({variant})", "", f"`{FORMS[form].summary}`, {FORMS[form].complexity}", ""]
            out += markdown_table(["backend (device)", *size_names], body)
            out.append("")
    return out


def correctness_table(rows: Sequence[Row]) -> list[str]:
    checked = [r for r in rows if r.status in ("ok", "mismatch")]
    body = [
        [
            r.backend,
            r.case.form_kernel,
            _size(r),
            _variant(r),
            f"{r.rel_err:.2e}",
            f"{r.max_abs_err:.2e}",
            f"{r.tol:.2e}",
            "pass" if r.status == "ok" else "**FAIL**",
        ]
        for r in sorted(checked, key=lambda r: (r.status == "ok", r.backend, r.form, r.B * r.T * r.C))
    ]
    return markdown_table(
        ["backend", "form", "size", "dtype", "rel. error", "max abs error", "tolerance", "verdict"], body
    )


def not_run_table(rows: Sequence[Row]) -> list[str]:
    rest = [r for r in rows if r.status not in ("ok", "mismatch")]
    if not rest:
        return ["Every case ran."]
    body = [[r.status, r.backend, r.case.form_kernel, _size(r), _variant(r), r.reason] for r in rest]
    return markdown_table(["status", "backend", "form", "size", "dtype", "reason"], body)


def _backend(r: Row) -> str:
    return f"{r.backend} ({r.device or '?'})"


def _sizes(rows: Sequence[Row]) -> list[tuple[int, int, int]]:
    return sorted({(r.B, r.T, r.C) for r in rows}, key=lambda s: (s[0] * s[1] * s[2], s))


def _fastest(rows: Sequence[Row]) -> tuple[list[str], dict[tuple[str, str], dict[str, Row]]]:
    """Sizes, and the fastest timed row per (backend, variant) and size."""
    timed = [r for r in rows if r.status == "ok" and math.isfinite(r.median_s)]
    best: dict[tuple[str, str], dict[str, Row]] = defaultdict(dict)
    for r in timed:
        cell = best[(_backend(r), _variant(r))]
        if _size(r) not in cell or r.median_s < cell[_size(r)].median_s:
            cell[_size(r)] = r
    return [f"{b}x{t}x{c}" for b, t, c in _sizes(timed)], best


def _per_backend_table(rows: Sequence[Row], cell: Callable[[Row], str]) -> list[str]:
    sizes, best = _fastest(rows)
    if not best:
        return ["No case was timed."]
    several_variants = len({v for _, v in best}) > 1
    body = []
    for backend, variant in sorted(best, key=lambda k: (not k[0].startswith("numpy "), k)):
        cells = best[(backend, variant)]
        label = f"{backend} {variant}" if several_variants else backend
        body.append([label, *[cell(cells[s]) if s in cells else "" for s in sizes]])
    return markdown_table(["backend (device)", *sizes], body)


def fastest_table(rows: Sequence[Row]) -> list[str]:
    """The fastest form for each backend (and variant) at each size, with its time."""
    return _per_backend_table(
        rows,
        lambda r: (
            f"{r.case.form_kernel}, {format_seconds(r.median_s)}"
            + (" (**contended**: measured on a busy machine, may not be the fastest)" if r.contended else "")
            + (" (**drifted**: the machine's speed had moved, may not be the fastest)" if r.drifted else "")
        ),
    )


def _roofline_cell(r: Row, caches: Mapping[str, int]) -> str:
    if not r.bound or not math.isfinite(r.ceiling_frac):
        return f"{r.case.form_kernel}, no ceiling"
    rate = f"{r.gbs:.3g} GB/s" if r.bound == "memory" else f"{r.gflops:.3g} GFLOP/s"
    ceiling = "copy" if r.bound == "memory" else "matmul"
    text = f"{r.case.form_kernel}, {r.ceiling_frac:.0%} of {ceiling} ({rate})"
    beyond = beyond_ceiling(r, caches)
    if beyond.startswith("ceiling exceeded"):
        return f"{text} (**{beyond}**)"
    return f"{text} ({beyond})" if beyond else text


def machine_caches(meta: Mapping[str, Any]) -> dict[str, int]:
    """The measuring machine's cache sizes as the run stored them (``meta["machine"]["caches"]``); {} if not."""
    machine = meta.get("machine")
    caches = machine.get("caches") if isinstance(machine, dict) else None
    if not isinstance(caches, dict):
        return {}
    return {str(k): int(v) for k, v in caches.items() if isinstance(v, int | float)}


def roofline_table(rows: Sequence[Row], caches: Mapping[str, int] | None = None) -> list[str]:
    """Each backend's fastest form at each size and how close it came to its ceiling.

    Above 100% reads ``in cache`` only where the row's working set fits a cache of
    ``caches``; elsewhere it is flagged as a ceiling that is too low.
    """
    return _per_backend_table(rows, lambda r: _roofline_cell(r, caches or {}))


def ceilings_line(meta: dict[str, Any]) -> str:
    """The ceilings measured at the start of the run, one clause per device."""
    stored = meta.get("ceilings")
    ceilings = ceilings_from_metadata(stored if isinstance(stored, dict) else None)
    if not ceilings:
        return "No ceilings were measured in this run (`--no-ceilings`, or an older run)."
    parts = []
    for device, c in ceilings.items():
        rates = ", ".join(f"{k} {v:.3g}" for k, v in sorted(c.matmul_gflops.items()))
        parts.append(f"{device}: copy {c.copy_gbs:.3g} GB/s; matmul GFLOP/s {rates or '-'}")
    return "Ceilings measured at the start of the run: " + "; ".join(parts) + "."


def accuracy_table(rows: Sequence[Row]) -> list[str]:
    """Per backend: cases checked, failed, and the worst rel. error / tolerance with where."""
    checked = [r for r in rows if r.status in ("ok", "mismatch")]
    if not checked:
        return ["No case was checked against the reference."]
    by_backend: dict[str, list[Row]] = defaultdict(list)
    for r in checked:
        by_backend[_backend(r)].append(r)

    def ratio(r: Row) -> float:
        return r.rel_err / r.tol if r.tol > 0 and not math.isnan(r.rel_err) else math.nan

    body = []
    for backend in sorted(by_backend, key=lambda b: (not b.startswith("numpy "), b)):
        group = by_backend[backend]
        known = [r for r in group if not math.isnan(ratio(r))]
        worst = max(known, key=ratio) if known else None
        failed = sum(r.status == "mismatch" for r in group)
        body.append(
            [
                backend,
                str(len(group)),
                f"**{failed}**" if failed else "0",
                f"{ratio(worst):.2g}" if worst else "-",
                f"{worst.form} {_size(worst)} {_variant(worst)}" if worst else "-",
            ]
        )
    return markdown_table(["backend (device)", "checked", "failed", "worst error / tolerance", "at"], body)


def not_run_summary(rows: Sequence[Row]) -> list[str]:
    """Cases that did not run, counted by status and reason."""
    rest = [r for r in rows if r.status not in ("ok", "mismatch")]
    if not rest:
        return ["Every case ran."]
    counts = Counter((r.status, r.reason) for r in rest)
    backends: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in rest:
        backends[(r.status, r.reason)].add(r.backend)
    body = [
        [str(n), status, ", ".join(sorted(backends[(status, reason)])), reason or "-"]
        for (status, reason), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    by_status = Counter(r.status for r in rest)
    head = (
        f"{len(rest)} of {len(rows)} cases did not run (" + ", ".join(f"{n} {s}" for s, n in by_status.items()) + "):"
    )
    return [head, "", *markdown_table(["cases", "status", "backends", "reason"], body)]


def scaling_table(fits: Sequence[ScalingFit]) -> list[str]:
    """One line per fitted group: k with its standard error and the slope at the largest sizes."""
    if not fits:
        return ["No backend and form was measured at two or more sizes with the same B and C."]
    body = [
        [
            f"{f.key.backend} ({f.key.device or '?'})",
            f.key.form,
            _variant(f.key),
            f"{f.key.B}, {f.key.C}",
            f"{f.t_min}..{f.t_max} ({len(f.sizes)})",
            f.exponent(),
            f"{f.k_tail:.2f}",
            format_seconds(f.predict(f.t_max)),
        ]
        for f in fits
    ]
    header = [
        "backend (device)",
        "form",
        "dtype",
        "B, C",
        "T (sizes)",
        "k ± s.e.",
        "k, largest two T",
        "fit at largest T",
    ]
    return markdown_table(header, body)


def crossover_table(crossings: Sequence[Crossover], empty: str = "No form overtakes another.") -> list[str]:
    """Crossovers as a table: forms on a backend, or backends on a form (``Crossover.vary``)."""
    if not crossings:
        return [empty]
    by_backend = crossings[0].vary == "backend"
    body = [
        [
            c.key.form if by_backend else f"{c.key.backend} ({c.key.device or '?'})",
            _variant(c.key),
            f"{c.key.B}, {c.key.C}",
            c.faster_below,
            c.faster_above,
            f"{c.T:.0f}",
            f"{c.between[0]}..{c.between[1]}",
        ]
        for c in crossings
    ]
    first = "form" if by_backend else "backend (device)"
    return markdown_table([first, "dtype", "B, C", "faster below", "faster above", "T at crossover", "between"], body)
