"""Plots of stored rows, written as PNG and SVG beside the markdown report.

matplotlib is an optional extra (``pip install 'causal-bench[plots]'``) and is
imported inside ``write_plots`` only; without it ``write_plots`` raises
``PlotsUnavailable`` with the install hint and the report goes on without plots.
Figures are drawn on the Agg canvas directly (no pyplot), so nothing here
changes the caller's matplotlib backend or global state.

Three kinds of figure, each only where a curve has at least two sizes:

- ``time-vs-T-<form>``: seconds per call against T on log-log axes, one line per
  backend, the fitted ``a * T^k`` dashed and ``k ± its standard error`` in the
  legend; where one backend overtakes another, a dotted vertical line.
- ``forms-<backend>``: the same axes, one line per form on one backend; dotted
  lines mark the sizes where one form overtakes another.
- ``speedup-vs-numpy``: NumPy's median over each backend's, per form, against T;
  above 1 is faster than NumPy.

A name gets a suffix (``-float32-B8-C64``) only when one form or backend has
several groups (other B, C, dtype, precision or input) in the rows.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from suite.report.scaling import Crossover, GroupKey, ScalingFit, find_crossovers, fit_scaling, group_key, timed
from suite.results import Row

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

INSTALL_HINT = "pip install 'causal-bench[plots]'"
#: File-name prefixes this module owns in the plots folder (stale ones are removed).
PREFIXES = ("time-vs-T-", "forms-", "speedup-vs-numpy")
BASELINE = "numpy"


class PlotsUnavailable(Exception):
    """matplotlib is not installed; the message carries the install hint."""


@dataclass(frozen=True)
class Plot:
    """One figure, written twice: ``png`` and ``svg`` share a name."""

    kind: str
    title: str
    png: Path
    svg: Path


# -- grouping ---------------------------------------------------------------------------

Family = tuple[str, str, str, int, int]  # dtype, precision, input, B, C


def _family(key: GroupKey) -> Family:
    return (key.dtype, key.precision, key.input, key.B, key.C)


def _family_text(f: Family) -> str:
    dtype, precision, input_, B, C = f
    parts = [f"B={B}", f"C={C}", dtype]
    parts += [p for p, default in ((precision, "ieee"), (input_, "normal")) if p != default]
    return ", ".join(parts)


def _family_slug(f: Family) -> str:
    dtype, precision, input_, B, C = f
    parts = [dtype, *(p for p, default in ((precision, "ieee"), (input_, "normal")) if p != default), f"B{B}", f"C{C}"]
    return "-".join(parts)


def slug(text: str) -> str:
    """A file-name-safe form of ``text``: letters, digits, dot, dash and underscore."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


Points = dict[int, float]


def _series(rows: Sequence[Row]) -> dict[GroupKey, Points]:
    """Median seconds by T for each group (several rows at one T: the smallest index wins)."""
    out: dict[GroupKey, Points] = defaultdict(dict)
    for r in rows:
        if timed(r):
            out[group_key(r)].setdefault(r.T, r.median_s)
    return out


# -- drawing ----------------------------------------------------------------------------


def _new_figure(width: float = 7.0, height: float = 4.5) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, folder: Path, name: str, kind: str, title: str) -> Plot:
    import matplotlib

    png, svg = folder / f"{name}.png", folder / f"{name}.svg"
    # Fixed ids and no date: a rebuilt report from the same rows gives the same SVG;
    # text stays text (smaller, searchable).
    with matplotlib.rc_context({"svg.hashsalt": "causal-bench", "svg.fonttype": "none"}):
        fig.savefig(png, dpi=110, metadata={"Software": None})
        fig.savefig(svg, metadata={"Date": None})
    return Plot(kind, title, png, svg)


def _loglog(ax: Axes, ylabel: str, y_suffix: str = "") -> None:
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    # Plain numbers (T = 512, 2x) read faster than 2^9 and 2 x 10^0.
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    if y_suffix:
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}{y_suffix}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}{y_suffix}"))
    ax.set_xlabel("T (sequence length)")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)


def _curve(ax: Axes, points: Points, fit: ScalingFit | None, label: str, style: dict[str, Any]) -> None:
    ts = sorted(points)
    line = ax.plot(ts, [points[T] for T in ts], marker="o", label=label, **style)[0]
    if fit is not None:
        lo, hi = fit.t_min, fit.t_max
        grid = [lo * (hi / lo) ** (i / 40) for i in range(41)]
        ax.plot(grid, [fit.predict(T) for T in grid], linestyle="--", linewidth=1, color=line.get_color(), alpha=0.7)


def _mark(ax: Axes, crossings: Sequence[Crossover]) -> None:
    for c in crossings:
        ax.axvline(c.T, linestyle=":", color="0.35", linewidth=1)
        ax.text(
            c.T,
            0.03,
            f"{c.faster_above} overtakes {c.faster_below} at T≈{c.T:.0f} ",
            transform=ax.get_xaxis_transform(),
            rotation=90,
            ha="right",
            va="bottom",
            fontsize=7,
            color="0.25",
        )


def _label(name: str, fit: ScalingFit | None) -> str:
    return f"{name} k={fit.exponent()}" if fit is not None else name


def _time_plots(folder: Path, rows: Sequence[Row]) -> list[Plot]:
    series = _series(rows)
    fits = {f.key: f for f in fit_scaling(rows)}
    crossings = find_crossovers(rows, vary="backend")
    by_form: dict[str, dict[Family, list[GroupKey]]] = defaultdict(lambda: defaultdict(list))
    for key in series:
        by_form[key.form][_family(key)].append(key)
    plots: list[Plot] = []
    for form in sorted(by_form):
        families = {f: ks for f, ks in by_form[form].items() if any(k in fits for k in ks)}
        for family in sorted(families):
            keys = sorted(families[family])
            multi_device = len({k.backend for k in keys}) < len(keys)
            fig = _new_figure()
            ax = fig.add_subplot()
            for key in keys:
                name = f"{key.backend} ({key.device})" if multi_device else key.backend
                _curve(ax, series[key], fits.get(key), _label(name, fits.get(key)), {})
            _mark(ax, [c for c in crossings if c.key.form == form and _family(c.key) == family])
            _loglog(ax, "seconds per call (median)")
            title = f"{form}: time per call against T ({_family_text(family)})"
            ax.set_title(title, fontsize=10)
            ax.legend(fontsize=8)
            name = f"time-vs-T-{form}" + (f"-{_family_slug(family)}" if len(by_form[form]) > 1 else "")
            plots.append(_save(fig, folder, slug(name), "time", title))
    return plots


def _form_plots(folder: Path, rows: Sequence[Row]) -> list[Plot]:
    series = _series(rows)
    fits = {f.key: f for f in fit_scaling(rows)}
    crossings = find_crossovers(rows, vary="form")
    by_backend: dict[tuple[str, str], dict[Family, list[GroupKey]]] = defaultdict(lambda: defaultdict(list))
    for key in series:
        by_backend[(key.backend, key.device)][_family(key)].append(key)
    several_devices = {b for b, n in _count(k[0] for k in by_backend).items() if n > 1}
    plots: list[Plot] = []
    for backend, device in sorted(by_backend):
        families = {f: ks for f, ks in by_backend[(backend, device)].items() if any(k in fits for k in ks)}
        for family in sorted(families):
            keys = sorted(families[family], key=lambda k: k.form)
            if len(keys) < 2:
                continue  # one form: the time-vs-T plot already shows it
            fig = _new_figure()
            ax = fig.add_subplot()
            for key in keys:
                _curve(ax, series[key], fits.get(key), _label(key.form, fits.get(key)), {})
            mine = [
                c for c in crossings if (c.key.backend, c.key.device) == (backend, device) and _family(c.key) == family
            ]
            _mark(ax, mine)
            _loglog(ax, "seconds per call (median)")
            title = f"{backend} ({device}): the forms against T ({_family_text(family)})"
            ax.set_title(title, fontsize=10)
            ax.legend(fontsize=8)
            name = f"forms-{backend}" + (f"-{device}" if backend in several_devices else "")
            if len(by_backend[(backend, device)]) > 1:
                name += f"-{_family_slug(family)}"
            plots.append(_save(fig, folder, slug(name), "forms", title))
    return plots


def _count(items: Any) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for item in items:
        counts[item] += 1
    return counts


def _involves_baseline(c: Crossover) -> bool:
    return BASELINE in {name.split(" (")[0] for name in (c.faster_below, c.faster_above)}


def _speedup_plots(folder: Path, rows: Sequence[Row]) -> list[Plot]:
    series = _series(rows)
    crossings = [c for c in find_crossovers(rows, vary="backend") if _involves_baseline(c)]
    families: dict[Family, dict[str, dict[GroupKey, Points]]] = defaultdict(lambda: defaultdict(dict))
    for key, points in series.items():
        families[_family(key)][key.form][key] = points
    plots: list[Plot] = []
    for family in sorted(families):
        panels: list[tuple[str, list[tuple[str, Points]]]] = []
        for form in sorted(families[family]):
            curves = families[family][form]
            base = next((p for k, p in curves.items() if k.backend == BASELINE), None)
            if base is None:
                continue
            lines = []
            for key in sorted(k for k in curves if k.backend != BASELINE):
                common = sorted(set(base) & set(curves[key]))
                if len(common) >= 2:
                    lines.append((f"{key.backend} ({key.device})", {T: base[T] / curves[key][T] for T in common}))
            if lines:
                panels.append((form, lines))
        if not panels:
            continue
        cols = min(2, len(panels))
        nrows = math.ceil(len(panels) / cols)
        fig = _new_figure(7.0 if cols == 1 else 10.0, 3.4 * nrows + 0.4)
        axes = fig.subplots(nrows, cols, squeeze=False)
        for ax, (form, lines) in zip(axes.flat, panels, strict=False):
            for label, points in lines:
                ts = sorted(points)
                ax.plot(ts, [points[T] for T in ts], marker="o", label=label)
            ax.axhline(1.0, color="0.35", linewidth=1, linestyle=":")
            _mark(ax, [c for c in crossings if c.key.form == form and _family(c.key) == family])
            _loglog(ax, f"speedup over {BASELINE}", "x")
            ax.set_title(form, fontsize=10)
            ax.legend(fontsize=8)
        for ax in list(axes.flat)[len(panels) :]:
            ax.set_visible(False)
        title = f"Speedup against NumPy (above 1 is faster; {_family_text(family)})"
        fig.suptitle(title, fontsize=10)
        name = "speedup-vs-numpy" + (f"-{_family_slug(family)}" if len(families) > 1 else "")
        plots.append(_save(fig, folder, slug(name), "speedup", title))
    return plots


def remove_stale(folder: Path) -> None:
    """Delete the PNG and SVG files an earlier ``write_plots`` left in ``folder``."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.suffix in (".png", ".svg") and path.name.startswith(PREFIXES):
            path.unlink()


def write_plots(folder: Path, rows: Sequence[Row]) -> list[Plot]:
    """Draw every figure the rows allow into ``folder``; return them in report order.

    Raises PlotsUnavailable when matplotlib is missing. Stale figures from an
    earlier build in ``folder`` are removed first, so the folder matches the rows.
    """
    if not fit_scaling(rows):
        remove_stale(folder)
        return []  # no curve with two sizes: nothing to draw, and no need for matplotlib
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotsUnavailable(f"matplotlib is not installed; {INSTALL_HINT}") from None
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale(folder)
    return [*_time_plots(folder, rows), *_speedup_plots(folder, rows), *_form_plots(folder, rows)]
