"""Stored results in the formats of dashboards people already run.

- ``github-action-benchmark``: the ``customSmallerIsBetter`` tool reads a JSON
  list of ``{"name", "unit", "value", "range"?, "extra"?}`` objects (``value`` a
  number, the others strings), one per benchmark.
- ``bencher``: Bencher Metric Format (BMF), an object keyed by benchmark name,
  each holding measures keyed by slug, each ``{"value", "lower_value"?,
  "upper_value"?}`` (numbers). We report the built-in ``latency`` measure, whose
  unit is nanoseconds.

Both carry one entry per timed (``ok``) case, named by its case key; the value is
the median time per call in nanoseconds, and the bounds are the median's 95%
confidence interval from the run. Cases that did not run or failed have no time
and are left out (the caller is told how many).

Counted cases (``--metric instructions``, keys ending ``@instructions``) are their own
measure: Bencher's ``instructions`` and ``estimated-cycles`` (the measures its Iai
adapters use), and a github-action-benchmark entry whose unit is ``instructions``.
Counts are exact, so they carry no bounds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

from suite.counting import COUNTED
from suite.format import format_count
from suite.results import Row

FORMATS = ("github-action-benchmark", "bencher")
#: Bencher's built-in latency measure (nanoseconds).
BENCHER_MEASURE = "latency"
_NS = 1e9


#: Bencher's built-in measures for counted rows.
BENCHER_COUNT_MEASURES = {"instructions": "instructions", "estimated-cycles": "est_cycles"}


def timed_rows(rows: Sequence[Row]) -> list[Row]:
    """Rows with a usable median (``ok`` and finite)."""
    return [r for r in rows if r.status == "ok" and math.isfinite(r.median_s) and r.median_s > 0]


def counted_rows(rows: Sequence[Row]) -> list[Row]:
    """Counted rows with usable counts (``ok``, instructions finite)."""
    return [r for r in rows if r.status == "ok" and r.metric == COUNTED and math.isfinite(r.instructions)]


def exported_rows(rows: Sequence[Row]) -> list[Row]:
    """The rows an exporter writes: timed and counted."""
    return [*timed_rows(rows), *counted_rows(rows)]


def _g(x: float) -> str:
    return f"{x:.4g}"


def github_action_benchmark(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """``customSmallerIsBetter`` entries: median ns per call, ± half the 95% CI."""
    out: list[dict[str, Any]] = []
    for r in timed_rows(rows):
        entry: dict[str, Any] = {"name": r.key, "unit": "ns", "value": r.median_s * _NS}
        if math.isfinite(r.ci_low_s) and math.isfinite(r.ci_high_s):
            entry["range"] = f"± {_g((r.ci_high_s - r.ci_low_s) / 2 * _NS)}"
        extra = [
            f"device: {r.device or '?'}",
            f"IQR: {_g(r.iqr_s * _NS)} ns" if math.isfinite(r.iqr_s) else "",
            f"samples: {r.n_samples} x {r.calls_per_sample} calls",
            f"threads: {r.threads}" if r.threads else "",
            "unstable (IQR > 10% of median)" if r.unstable else "",
            f"run: {r.run_id}" if r.run_id else "",
        ]
        entry["extra"] = "\n".join(e for e in extra if e)
        out.append(entry)
    for r in counted_rows(rows):
        extra = [
            f"est. cycles: {format_count(r.est_cycles)}",
            f"L1 misses: {format_count(r.l1_misses)}",
            f"LL misses: {format_count(r.ll_misses)}",
            f"simulated machine: {r.machine}",
            f"run: {r.run_id}" if r.run_id else "",
        ]
        out.append(
            {"name": r.key, "unit": "instructions", "value": r.instructions, "extra": "\n".join(e for e in extra if e)}
        )
    return out


def bencher_metric_format(rows: Sequence[Row]) -> dict[str, dict[str, dict[str, float]]]:
    """BMF: ``{case key: {"latency": {"value", "lower_value", "upper_value"}}}`` in ns."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for r in timed_rows(rows):
        metric = {"value": r.median_s * _NS}
        if math.isfinite(r.ci_low_s) and math.isfinite(r.ci_high_s):
            metric["lower_value"] = r.ci_low_s * _NS
            metric["upper_value"] = r.ci_high_s * _NS
        out[r.key] = {BENCHER_MEASURE: metric}
    for r in counted_rows(rows):
        out[r.key] = {
            slug: {"value": float(getattr(r, column))}
            for slug, column in BENCHER_COUNT_MEASURES.items()
            if math.isfinite(getattr(r, column))
        }
    return out


EXPORTERS: dict[str, Callable[[Sequence[Row]], Any]] = {
    "github-action-benchmark": github_action_benchmark,
    "bencher": bencher_metric_format,
}


def export_text(rows: Sequence[Row], fmt: str) -> str:
    """The rows in format ``fmt`` as JSON text (KeyError for an unknown format)."""
    return json.dumps(EXPORTERS[fmt](rows), indent=1, allow_nan=False) + "\n"
