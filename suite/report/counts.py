"""The counted part of a report (``--metric instructions``): counts in place of times, never beside them.

One table per form and dtype: each counted case a line, with its per-call instructions,
estimated cycles (``suite.callgrind``'s weights), simulated L1 and last-level misses and
the callgrind file it was read from.
"""

from __future__ import annotations

from collections.abc import Sequence

from suite.counting import COUNTED
from suite.format import format_count, markdown_table
from suite.results import Row

COUNTS_INTRO = (
    "Counted under valgrind's callgrind, CPU only, one thread, only around the calls: per call, the "
    "executed instructions, an estimate of cycles (L1 hits x1, last-level hits x5, RAM x35, after "
    "pythonspeed/cachegrind-benchmarking) and the misses of the simulated caches (32 KiB L1s, 8 MiB "
    "last level). Counts are deterministic: compare gates them on a relative threshold. They cannot "
    "see what time alone shows (threading, frequency, memory bandwidth)."
)


def counted(rows: Sequence[Row]) -> list[Row]:
    return [r for r in rows if r.metric == COUNTED]


def count_tables(rows: Sequence[Row]) -> list[str]:
    """Per form and dtype, one line per counted ``ok`` case, small sizes first."""
    ok = [r for r in counted(rows) if r.status == "ok"]
    if not ok:
        return ["No case was counted.", ""]
    lines: list[str] = []
    for form, dtype in dict.fromkeys((r.case.form_kernel, r.dtype) for r in ok):
        group = sorted(
            (r for r in ok if (r.case.form_kernel, r.dtype) == (form, dtype)),
            key=lambda r: (r.backend, r.B * r.T * r.C),
        )
        body = [
            [
                r.backend,
                f"{r.B}x{r.T}x{r.C}",
                format_count(r.instructions),
                format_count(r.est_cycles),
                format_count(r.l1_misses),
                format_count(r.ll_misses),
                f"[callgrind]({r.counts})" if r.counts else "-",
            ]
            for r in group
        ]
        header = ["backend", "B x T x C", "instructions", "est. cycles", "L1 misses", "LL misses", "file"]
        lines += [f"### {form} ({dtype})", "", *markdown_table(header, body), ""]
    return lines
