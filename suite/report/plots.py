"""Plots of stored rows, written as PNG and SVG beside the markdown report.

matplotlib is an optional extra (``pip install 'causal-bench[plots]'``) and is
imported inside ``write_plots`` only; without it ``write_plots`` raises
``PlotsUnavailable`` with the install hint and the report goes on without plots.
Figures are drawn on the Agg canvas directly (no pyplot), so nothing here
changes the caller's matplotlib backend or global state.

Three kinds of figure, each only where a curve has at least two sizes:

- ``time-vs-T-<form>``: seconds per call against T on log-log axes, one line per
  backend with its interquartile range as a band, the fitted ``a * T^k`` dashed
  and ``k ± its standard error`` in the legend; where one backend overtakes
  another, a numbered marker on the curves, listed under the plot.
- ``forms-<backend>``: the same axes, one line per form on one backend; numbered
  markers where one form overtakes another.
- ``speedup-vs-numpy``: NumPy's median over each backend's, per form, against T;
  above 1 is faster than NumPy.
- ``memory-vs-T-<backend>``: measured peak memory per form against T (device
  figure where the adapter gives one, else the host's resident-set peak), the
  memory guard's estimate dashed: the matrix forms' T^2 shows here.

A name gets a suffix (``-float32-B8-C64``) only when one form or backend has
several groups (other B, C, dtype, precision or input) in the rows.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Container, Sequence, Sized
from pathlib import Path
from typing import Any

from suite.report.drawing import (
    Band,
    Entry,
    Plot,
    Points,
    draw_curve,
    fit_label,
    legend_below,
    legend_entries,
    loglog,
    mark_crossings,
    new_figure,
    save_figure,
)
from suite.report.scaling import Crossover, GroupKey, find_crossovers, fit_scaling, group_key, timed
from suite.results import Row

INSTALL_HINT = "pip install 'causal-bench[plots]'"
#: File-name prefixes this module owns in the plots folder (stale ones are removed).
PREFIXES = ("time-vs-T-", "forms-", "speedup-vs-numpy", "memory-vs-T-")
BASELINE = "numpy"


class PlotsUnavailable(Exception):
    """matplotlib is not installed; the message carries the install hint."""


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


def _series(rows: Sequence[Row]) -> dict[GroupKey, Points]:
    """Median seconds by T for each group (several rows at one T: the smallest index wins)."""
    out: dict[GroupKey, Points] = defaultdict(dict)
    for r in rows:
        if timed(r):
            out[group_key(r)].setdefault(r.T, r.median_s)
    return out


def quartiles(r: Row) -> tuple[float, float]:
    """The row's 25th and 75th percentile seconds: from its samples, else median ± IQR / 2."""
    samples = [s for s in r.samples_s if math.isfinite(s)]
    if len(samples) >= 2:
        import numpy as np

        q1, q3 = np.percentile(samples, [25, 75])
        return float(q1), float(q3)
    half = r.iqr_s / 2 if math.isfinite(r.iqr_s) else 0.0
    return r.median_s - half, r.median_s + half


def _bands(rows: Sequence[Row]) -> dict[GroupKey, Band]:
    """The interquartile range by T for each group, beside ``_series``."""
    out: dict[GroupKey, Band] = defaultdict(dict)
    for r in rows:
        if timed(r):
            out[group_key(r)].setdefault(r.T, quartiles(r))
    return out


def _time_plots(folder: Path, rows: Sequence[Row]) -> list[Plot]:
    series, bands = _series(rows), _bands(rows)
    fits = {f.key: f for f in fit_scaling(rows)}
    crossings = find_crossovers(rows, vary="backend")
    by_form: dict[str, dict[Family, list[GroupKey]]] = defaultdict(lambda: defaultdict(list))
    for key in series:
        # A variant is a curve on its form's figure, beside the idiom: ``numpy cumsum[staged]``.
        by_form[key.figure_form][_family(key)].append(key)
    plots: list[Plot] = []
    for form in sorted(by_form):
        families = {f: ks for f, ks in by_form[form].items() if any(k in fits for k in ks)}
        for family in sorted(families):
            keys = sorted(families[family])
            multi_device = len({(k.backend, k.variant) for k in keys}) < len(keys)
            fig = new_figure()
            ax = fig.add_subplot()
            for key in keys:
                name = f"{key.backend} ({key.device})" if multi_device else key.backend
                name += f" {key.form}" if key.variant else ""
                draw_curve(ax, series[key], fits.get(key), fit_label(name, fits.get(key)), {}, bands.get(key))
            loglog(ax, "time per call (median, IQR band)")
            mine = [c for c in crossings if c.key.figure_form == form and _family(c.key) == family]
            legend_below(fig, legend_entries(ax) + mark_crossings(ax, mine))
            title = f"{form}: time per call against T ({_family_text(family)})"
            ax.set_title(title, fontsize=10)
            name = f"time-vs-T-{form}" + (f"-{_family_slug(family)}" if len(by_form[form]) > 1 else "")
            plots.append(save_figure(fig, folder, slug(name), "time", title))
    return plots


def _form_plots(folder: Path, rows: Sequence[Row]) -> list[Plot]:
    series, bands = _series(rows), _bands(rows)
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
            if len({k.figure_form for k in keys}) < 2:
                continue  # one form (and its variants): the time-vs-T plot already shows it
            fig = new_figure()
            ax = fig.add_subplot()
            for key in keys:
                draw_curve(ax, series[key], fits.get(key), fit_label(key.form, fits.get(key)), {}, bands.get(key))
            mine = [
                c for c in crossings if (c.key.backend, c.key.device) == (backend, device) and _family(c.key) == family
            ]
            loglog(ax, "time per call (median, IQR band)")
            legend_below(fig, legend_entries(ax) + mark_crossings(ax, mine))
            title = f"{backend} ({device}): the forms against T ({_family_text(family)})"
            ax.set_title(title, fontsize=10)
            name = _backend_plot_name("forms", backend, device, several_devices, by_backend[(backend, device)], family)
            plots.append(save_figure(fig, folder, name, "forms", title))
    return plots


def _backend_plot_name(
    prefix: str, backend: str, device: str, several_devices: Container[str], families: Sized, family: Family
) -> str:
    """A per-backend figure's file stem: the device only where a backend ran on several, the
    family only where the backend has several."""
    name = f"{prefix}-{backend}" + (f"-{device}" if backend in several_devices else "")
    if len(families) > 1:
        name += f"-{_family_slug(family)}"
    return slug(name)


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
        families[_family(key)][key.figure_form][key] = points
    plots: list[Plot] = []
    for family in sorted(families):
        panels: list[tuple[str, list[tuple[str, Points]]]] = []
        for form in sorted(families[family]):
            curves = families[family][form]
            # Against NumPy's own idiom; its variants are lines like any other backend's.
            base_key = next((k for k in curves if k.backend == BASELINE and not k.variant), None)
            if base_key is None:
                continue
            base = curves[base_key]
            lines = []
            for key in sorted(k for k in curves if k != base_key):
                common = sorted(set(base) & set(curves[key]))
                if len(common) >= 2:
                    name = f"{key.backend} ({key.device})" + (f" {key.form}" if key.variant else "")
                    lines.append((name, {T: base[T] / curves[key][T] for T in common}))
            if lines:
                panels.append((form, lines))
        if not panels:
            continue
        cols = min(2, len(panels))
        nrows = math.ceil(len(panels) / cols)
        fig = new_figure(7.0 if cols == 1 else 10.0, 3.4 * nrows + 0.4)
        axes = fig.subplots(nrows, cols, squeeze=False)
        entries: list[Entry] = []
        marks: list[Entry] = []
        # One colour per backend in every panel: the figure has one legend.
        colors = {name: f"C{i}" for i, name in enumerate(sorted({n for _, ls in panels for n, _ in ls}))}
        for ax, (form, lines) in zip(axes.flat, panels, strict=False):
            for label, points in lines:
                ts = sorted(points)
                ax.plot(ts, [points[T] for T in ts], marker="o", label=label, color=colors[label])
            ax.axhline(1.0, color="0.35", linewidth=1, linestyle=":")
            loglog(ax, f"speedup over {BASELINE}", "x")
            # Against NumPy a crossing is where the speedup passes 1.
            mine = [c for c in crossings if c.key.figure_form == form and _family(c.key) == family]
            entries += legend_entries(ax)
            marks += mark_crossings(ax, mine, y_of=lambda c: 1.0, prefix=f"{form} ")
            ax.set_title(form, fontsize=10)
        for ax in list(axes.flat)[len(panels) :]:
            ax.set_visible(False)
        legend_below(fig, entries + marks)
        title = f"Speedup against NumPy (above 1 is faster; {_family_text(family)})"
        fig.suptitle(title, fontsize=10)
        name = "speedup-vs-numpy" + (f"-{_family_slug(family)}" if len(families) > 1 else "")
        plots.append(save_figure(fig, folder, slug(name), "speedup", title))
    return plots


def measured_memory(r: Row) -> float:
    """A row's measured peak: the device figure where the adapter gives one, else the host's RSS peak."""
    return r.peak_mem_bytes if math.isfinite(r.peak_mem_bytes) else r.peak_rss_bytes


def _memory_plots(folder: Path, rows: Sequence[Row]) -> list[Plot]:
    measured: dict[tuple[str, str], dict[Family, dict[str, tuple[Points, Points]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(lambda: ({}, {})))
    )
    for r in rows:
        peak = measured_memory(r)
        if timed(r) and math.isfinite(peak) and peak > 0:
            key = group_key(r)
            got, est = measured[(key.backend, key.device)][_family(key)][key.form]
            got.setdefault(r.T, peak)
            if math.isfinite(r.est_mem_bytes) and r.est_mem_bytes > 0:
                est.setdefault(r.T, r.est_mem_bytes)
    several_devices = {b for b, n in _count(k[0] for k in measured).items() if n > 1}
    plots: list[Plot] = []
    for backend, device in sorted(measured):
        for family, forms in sorted(measured[(backend, device)].items()):
            forms = {f: v for f, v in forms.items() if len(v[0]) >= 2}
            if not forms:
                continue
            fig = new_figure()
            ax = fig.add_subplot()
            for form in sorted(forms):
                got, est = forms[form]
                ts = sorted(got)
                line = ax.plot(ts, [got[T] for T in ts], marker="o", label=f"{form} measured")[0]
                if est:
                    te = sorted(est)
                    ax.plot(te, [est[T] for T in te], linestyle="--", color=line.get_color(), alpha=0.7)
            ax.plot([], [], linestyle="--", color="0.4", label="guard's estimate (dashed)")
            loglog(ax, "peak memory of the case", "B")
            legend_below(fig, legend_entries(ax))
            title = f"{backend} ({device}): peak memory against T ({_family_text(family)})"
            ax.set_title(title, fontsize=10)
            name = _backend_plot_name(
                "memory-vs-T", backend, device, several_devices, measured[(backend, device)], family
            )
            plots.append(save_figure(fig, folder, name, "memory", title))
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
    return [
        *_time_plots(folder, rows),
        *_speedup_plots(folder, rows),
        *_form_plots(folder, rows),
        *_memory_plots(folder, rows),
    ]
