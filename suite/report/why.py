"""The report's "why" section: measured peak memory against the guard's estimate, and the traces.

Every timed row carries its measured peak (``peak_mem_bytes`` on a device,
``peak_rss_bytes`` on the host) and the memory guard's estimate
(``est_mem_bytes``); their ratio checks the guard's model on every run. Rows run
with ``--profile`` link their trace, and say why where there is none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from suite.format import format_bytes, markdown_table
from suite.results import Row

#: A measured/estimate ratio outside [1 / FLAG, FLAG] is marked: the model needs a look.
FLAG = 2.0
#: Below this estimate the process's own noise (allocator pools, pages) dominates: no mark.
MIN_FLAGGED_BYTES = 32 << 20


def measured_bytes(r: Row) -> tuple[float, str]:
    """The row's measured peak and where it was taken (device or host RSS)."""
    if math.isfinite(r.peak_mem_bytes):
        return r.peak_mem_bytes, "device"
    return r.peak_rss_bytes, "host RSS"


def memory_table(rows: Sequence[Row]) -> list[str]:
    """Measured peak, the guard's estimate and their ratio for every timed row."""
    body = []
    for r in rows:
        peak, where = measured_bytes(r)
        if r.status != "ok" or not math.isfinite(peak):
            continue
        est = r.est_mem_bytes
        ratio = peak / est if math.isfinite(est) and est > 0 else math.nan
        mark = ""
        if math.isfinite(ratio) and est >= MIN_FLAGGED_BYTES and not 1 / FLAG <= ratio <= FLAG:
            mark = " **(off by more than 2x)**"
        size = f"{r.B}x{r.T}x{r.C}"
        text = f"{ratio:.2f}{mark}" if math.isfinite(ratio) else "-"
        body.append([r.backend, r.form, size, r.dtype, where, format_bytes(peak), format_bytes(est), text])
    if not body:
        return ["No row has a measured peak (an older run, or nothing was timed)."]
    return markdown_table(
        ["backend", "form", "size", "dtype", "measured", "peak", "estimate", "measured/estimate"], body
    )


def profiles_table(rows: Sequence[Row]) -> list[str]:
    """A link to each row's trace (``--profile``), or why it has none; nothing for a run without traces."""
    from suite.profiling import tool_hint

    profiled = [r for r in rows if r.profile]
    missing = [r for r in rows if r.status == "ok" and "not profiled:" in r.reason]
    if not profiled and not missing:
        return []
    body = [
        [r.backend, r.form, f"{r.B}x{r.T}x{r.C}", f"[{r.profile}]({r.profile})", tool_hint(r.profile)] for r in profiled
    ]
    for r in missing:
        why = next(p for p in r.reason.split("; ") if p.startswith("not profiled:"))
        body.append([r.backend, r.form, f"{r.B}x{r.T}x{r.C}", why, "-"])
    return [
        "**Traces** (`--profile`): extra calls after the timed ones, so no timing includes a profiler.",
        "",
        *markdown_table(["backend", "form", "size", "trace", "open with"], body),
        "",
    ]
