"""A comparison as people and machines read it: markdown, CSV, JSON.

Markdown (a pull-request comment or a CI step summary) lists regressions first,
then improvements and scaling changes, the rest folded; CSV and JSON hold every
case in the same order, the JSON with the configuration and both runs.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from suite.cases import Case
from suite.counting import COUNTED
from suite.format import csv_cell, format_count, format_p, format_ratio, format_seconds, format_spread, markdown_table
from suite.machine import machine_fingerprint
from suite.results import Row
from suite.track.compare import IMPROVEMENTS, REGRESSIONS, VERDICTS, CaseComparison, Comparison

COMPARE_SCHEMA = "causal-bench/compare"
COMPARE_VERSION = 1
MD_NAME, CSV_NAME, JSON_NAME = "compare.md", "compare.csv", "compare.json"


def _time(r: Row | None) -> str:
    """A row's figure: its median time, or its instructions per call when it was counted."""
    if r is None:
        return "-"
    if r.status != "ok":
        return f"*{r.status}*"
    return f"{format_count(r.instructions)} instr" if r.metric == COUNTED else format_seconds(r.median_s)


def _counted(c: CaseComparison) -> bool:
    return c.row.case.metric == COUNTED


def grown_functions_lines(cases: Sequence[CaseComparison]) -> list[str]:
    """What got slower, by function: per regressed counted case, the functions whose own instructions grew most."""
    lines: list[str] = []
    for c in cases:
        if not c.functions:
            continue
        lines += ["", f"`{c.key}`: instructions per call, own (self) cost", ""]
        body = [
            [f"`{name}`", format_count(b), format_count(h), f"+{format_count(h - b)}"] for name, b, h in c.functions
        ]
        lines += markdown_table(["function", "base", "head", "grew by"], body)
    return ["", "#### What got slower, by function", *lines] if lines else []


def _spread(r: Row | None) -> str:
    if r is None or r.status != "ok":
        return "-"
    return format_spread(r.within_spread, r.round_spread)


def _table(cases: Sequence[CaseComparison]) -> list[str]:
    header = ["case", "verdict", "base", "head", "head/base [95% CI]", "p", "spread base → head", "note"]
    body = [
        [
            f"`{c.key}`",
            f"**{c.verdict}**" if c.verdict in REGRESSIONS else c.verdict,
            _time(c.base),
            _time(c.head),
            # Counts carry no interval; their threshold is fractions of a percent.
            f"{c.ratio:.4f}"
            if _counted(c) and math.isfinite(c.ratio)
            else format_ratio(c.ratio, (c.ci_low, c.ci_high)),
            format_p(c.p_value),
            f"{_spread(c.base)} → {_spread(c.head)}",
            c.note,
        ]
        for c in cases
    ]
    return markdown_table(header, body)


def _ordered(cmp: Comparison) -> tuple[list[CaseComparison], list[CaseComparison], list[CaseComparison]]:
    def by_ratio(c: CaseComparison) -> float:
        return -math.inf if math.isnan(c.ratio) else c.ratio

    regress = sorted(
        (c for c in cmp.cases if c.verdict in REGRESSIONS), key=lambda c: (c.verdict != "broken", -by_ratio(c))
    )
    improve = sorted(
        (c for c in cmp.cases if c.verdict in IMPROVEMENTS), key=lambda c: (c.verdict != "fixed", by_ratio(c))
    )
    rest = sorted((c for c in cmp.cases if c.verdict not in REGRESSIONS + IMPROVEMENTS), key=lambda c: c.key)
    return regress, improve, rest


def _run_line(label: str, meta: Mapping[str, Any]) -> str:
    commit = str(meta.get("git_commit") or "")[:10] or "?"
    dirty = " (dirty)" if meta.get("git_dirty") else ""
    fp = machine_fingerprint(meta) or "?"
    return f"**{label}**: run `{meta.get('run_id', '?')}`, commit `{commit}`{dirty}, machine `{fp}`"


def render_markdown(cmp: Comparison, title: str = "causal-bench compare") -> str:
    """A summary for a pull-request comment or a CI step summary."""
    counts = cmp.counts()
    status = "regression" if cmp.regressed else "cases missing" if cmp.missing_fails else "no regression"
    lines = [f"## {title}: {status}", ""]
    lines.append(", ".join(f"{n} {v}" for v, n in counts.items()) or "no cases")
    lines += ["", _run_line("base", cmp.base_meta) + "  ", _run_line("head", cmp.head_meta) + "  "]
    lines.append(f"Rule: {cmp.config.describe()}; the ratio's 95% CI must exclude 1.  ")
    lines.append(
        "Spread: within a process (IQR / median, median over rounds) / between processes "
        "((max - min) / median of the round medians)."
    )
    for w in cmp.warnings:
        lines += ["", f"> **Warning:** {w}"]
    regress, improve, rest = _ordered(cmp)
    if regress:
        lines += ["", f"### Regressions ({len(regress)})", "", *_table(regress), *grown_functions_lines(regress)]
    if improve:
        lines += ["", f"### Improvements ({len(improve)})", "", *_table(improve)]
    if cmp.scaling:
        lines += ["", f"### Scaling changes ({len(cmp.scaling)})", ""]
        lines += [f"- {line}" for line in cmp.scaling]
    if rest:
        what = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts and v not in REGRESSIONS + IMPROVEMENTS)
        lines += ["", f"<details><summary>Other cases ({what})</summary>", "", *_table(rest), "", "</details>"]
    return "\n".join(lines) + "\n"


#: The columns of ``compare.csv``: the keys of ``CaseComparison.to_dict``.
CSV_COLUMNS = tuple(CaseComparison("", "", None, Row(Case("", "", 1, 1, 1))).to_dict())


def render_csv(cmp: Comparison) -> str:
    """Every case, one line each, in the order of the markdown."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    regress, improve, rest = _ordered(cmp)
    for c in (*regress, *improve, *rest):
        d = c.to_dict()
        w.writerow([csv_cell(d[k]) for k in CSV_COLUMNS])
    return buf.getvalue()


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def render_json(cmp: Comparison) -> str:
    """Every case with the counts, warnings, configuration and both runs (``COMPARE_SCHEMA``)."""
    regress, improve, rest = _ordered(cmp)

    def run(meta: Mapping[str, Any]) -> dict[str, Any]:
        keep = ("run_id", "started", "git_commit", "git_dirty")
        return {**{k: meta.get(k) for k in keep}, "machine_fingerprint": machine_fingerprint(meta)}

    doc = {
        "schema": COMPARE_SCHEMA,
        "schema_version": COMPARE_VERSION,
        "regressed": cmp.regressed,
        "counts": cmp.counts(),
        "warnings": cmp.warnings,
        "scaling_changes": cmp.scaling,
        "config": {
            "default": asdict(cmp.config.default),
            "backend": cmp.config.backend,
            "form": cmp.config.form,
            "source": cmp.config.source,
        },
        "base": run(cmp.base_meta),
        "head": run(cmp.head_meta),
        "cases": [{k: _json_value(v) for k, v in c.to_dict().items()} for c in (*regress, *improve, *rest)],
    }
    return json.dumps(doc, indent=1, allow_nan=False) + "\n"
