"""Units and tables as people read them: times, speedups, ratios, p-values, table cells."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


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


def format_count(n: float) -> str:
    """A count (instructions, misses, cycles) in full with thousands separators; ``-`` for NaN."""
    if n is None or math.isnan(n):
        return "-"
    return f"{n:,.0f}"


def format_bytes(n: float) -> str:
    """A size with a binary unit a person reads at a glance (B, KiB, MiB, GiB)."""
    if n is None or math.isnan(n):
        return "-"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.3g} B"


def format_speedup(ratio: float) -> str:
    """``2.5x``, ``0.47x``, ``123x``: two significant digits, never an exponent."""
    return f"{ratio:.0f}x" if ratio >= 100 else f"{ratio:.2g}x"


def format_ratio(ratio: float, ci: tuple[float, float] | None = None) -> str:
    """``1.234``, with ``[low, high]`` when an interval is given and known; ``-`` for NaN."""
    if math.isnan(ratio):
        return "-"
    if ci is None or math.isnan(ci[0]):
        return f"{ratio:.3f}"
    return f"{ratio:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def format_spread(within: float, between: float) -> str:
    """``2.1%/8%``: the spread within a process, then between processes; ``-`` for what is unknown."""

    def pct(x: float) -> str:
        if x is None or math.isnan(x):
            return "-"
        return f"{x:.1%}" if x < 0.095 else f"{x:.0%}"

    return f"{pct(within)}/{pct(between)}"


def format_p(p: float) -> str:
    """A p-value to two significant digits; ``-`` for NaN."""
    return "-" if math.isnan(p) else f"{p:.2g}"


def markdown_cell(text: str) -> str:
    """One line, whitespace runs folded, ``|`` escaped: safe inside a table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def markdown_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    """A GitHub markdown table: the header, its rule, one line per row of ``body``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(markdown_cell(c) for c in row) + " |" for row in body]
    return lines


def csv_cell(value: Any) -> str:
    """A CSV cell: a float by ``repr`` (it reads back exactly), NaN as empty; the rest by ``str``."""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)
