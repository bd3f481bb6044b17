"""How every figure of ``suite.report.plots`` draws: log-log axes, curves with bands and fits,
numbered crossing markers, one legend under the axes, and PNG + SVG saving.

matplotlib is imported inside the functions only (``plots.write_plots`` checks it is there).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from suite.format import format_bytes, format_seconds
from suite.report.scaling import Crossover, ScalingFit

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Up to this many measured T values each get a labelled tick.
MAX_T_TICKS = 12
Points = dict[int, float]
Band = dict[int, tuple[float, float]]


@dataclass(frozen=True)
class Plot:
    """One figure, written twice: ``png`` and ``svg`` share a name."""

    kind: str
    title: str
    png: Path
    svg: Path


def new_figure(width: float = 7.0, height: float = 4.5) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, folder: Path, name: str, kind: str, title: str) -> Plot:
    import matplotlib

    png, svg = folder / f"{name}.png", folder / f"{name}.svg"
    # Fixed ids and no date: a rebuilt report from the same rows gives the same SVG;
    # text stays text (smaller, searchable).
    with matplotlib.rc_context({"svg.hashsalt": "causal-bench", "svg.fonttype": "none"}):
        fig.savefig(png, dpi=110, metadata={"Software": None})
        fig.savefig(svg, metadata={"Date": None})
    return Plot(kind, title, png, svg)


def y_text(v: float, unit: str) -> str:
    if unit == "s":
        return format_seconds(v)
    if unit == "B":
        return format_bytes(v)
    return f"{v:g}{unit}"


def loglog(ax: Axes, ylabel: str, y_unit: str = "s") -> None:
    """Log-log axes whose ticks read as numbers with units: T = 512, 2 ms, 64 MiB, 2x."""
    import numpy as np
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    # Ticks at the measured T values: each labelled point is a measurement, and no
    # label sits in the corner beside the y axis's lowest one.
    xs = [np.asarray(line.get_xdata(), dtype=float) for line in ax.get_lines() if line.get_marker() == "o"]
    measured = sorted({float(x) for part in xs for x in part})
    if 2 <= len(measured) <= MAX_T_TICKS:
        ax.set_xticks(measured)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    low, high = ax.get_ylim()
    if y_unit == "B":  # bytes on binary steps: 1 KiB, 4 KiB, 16 KiB ...
        ax.set_yscale("log", base=2)
        ax.yaxis.set_major_locator(LogLocator(base=4 if high / max(low, 1e-300) < 2**16 else 16))
    else:
        # Under two decades the powers of ten alone leave too few labels: mark 2 and 5 too.
        subs = (1.0, 2.0, 5.0) if high / max(low, 1e-300) < 100 else (1.0,)
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: y_text(v, y_unit)))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("T (sequence length)")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    ax.grid(True, which="minor", alpha=0.1)


def draw_curve(
    ax: Axes, points: Points, fit: ScalingFit | None, label: str, style: dict[str, Any], band: Band | None = None
) -> None:
    ts = sorted(points)
    line = ax.plot(ts, [points[T] for T in ts], marker="o", label=label, **style)[0]
    if band:
        bt = [T for T in ts if T in band]
        ax.fill_between(bt, [band[T][0] for T in bt], [band[T][1] for T in bt], color=line.get_color(), alpha=0.2)
    if fit is not None:
        lo, hi = fit.t_min, fit.t_max
        grid = [lo * (hi / lo) ** (i / 40) for i in range(41)]
        ax.plot(grid, [fit.predict(T) for T in grid], linestyle="--", linewidth=1, color=line.get_color(), alpha=0.7)


Entry = tuple[Any, str]  # a legend handle and its label


def mark_crossings(ax: Axes, crossings: Sequence[Crossover], y_of: Any = None, prefix: str = "") -> list[Entry]:
    """Numbered markers where curves cross; their legend entries, for ``legend_below``.

    ``y_of(c)`` places a marker (default: the interpolated time of the crossing).
    """
    entries: list[Entry] = []
    for i, c in enumerate(sorted(crossings, key=lambda c: c.T), start=1):
        y = c.seconds if y_of is None else y_of(c)
        if not (math.isfinite(y) and y > 0):
            continue
        handle = ax.scatter([c.T], [y], marker="X", s=60, color="black", zorder=5)
        # Numbers alternate above and below, so neighbouring crossings keep theirs readable.
        offset = (4, 6) if i % 2 else (4, -14)
        ax.annotate(
            str(i),
            (c.T, y),
            xytext=offset,
            textcoords="offset points",
            fontsize=8,
            weight="bold",
            zorder=6,
            bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.85},
        )
        entries.append((handle, f"{prefix}{i}: {c.faster_above} overtakes {c.faster_below} at T≈{c.T:.0f}"))
    return entries


def legend_below(fig: Figure, entries: Sequence[Entry]) -> None:
    """One legend under the axes: the curves, then the crossings (never over the data)."""
    seen: dict[str, Any] = {}
    for handle, label in entries:
        seen.setdefault(label, handle)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncols=2, fontsize=7, frameon=False)


def legend_entries(ax: Axes) -> list[Entry]:
    handles, labels = ax.get_legend_handles_labels()
    return list(zip(handles, labels, strict=True))


def fit_label(name: str, fit: ScalingFit | None) -> str:
    return f"{name} k={fit.exponent()}" if fit is not None else name
