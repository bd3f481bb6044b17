"""Scaling model: time = a * T^k per group of rows, and where curves cross.

A **group** is every ``ok`` row that differs only in T: same backend, device,
form (with its kernel, ``attention[flash]``), dtype, precision, input, B and C (``GroupKey``). Over a group's measured
sizes, ``fit_scaling`` fits a straight line to ``log(median_s)`` against ``log(T)``
by ordinary least squares (``suite.stats.fit_power_law``); the slope is the
exponent ``k`` and its standard error is the textbook one, ``sqrt(RSS / (n - 2) /
sum((log T - mean)^2))``. With only two sizes the line is exact and the error
unknown (NaN). The error reflects how well a single power law fits, which is
usually the larger uncertainty: fixed per-call overhead flattens the curve at
small T, so ``k`` over the whole range sits below the asymptotic exponent. ``k_tail``, the slope between the two largest
sizes, is the better guess at that asymptote (the loop, matrix and softmax forms
approach 2, cumsum approaches 1).

A **crossover** is where one curve overtakes another within a group: two forms
on one backend (``vary="form"``), or two backends on one form
(``vary="backend"``). Between consecutive measured sizes common to both curves
where the sign of ``log(t_a / t_b)`` flips, the crossing T is interpolated
linearly in log-log space.

``exponent_changes`` compares the exponents of two runs on the sizes both
measured; ``suite.track.compare`` lists a form whose scaling changed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import combinations

import numpy as np

from suite.results import Row
from suite.stats import fit_power_law


@dataclass(frozen=True, order=True)
class GroupKey:
    """What stays fixed along one curve of time against T."""

    backend: str
    device: str
    form: str
    dtype: str
    precision: str
    input: str
    B: int
    C: int
    #: The variant in ``form`` (``cumsum[staged]``), "" for the idiom: a curve of its own,
    #: drawn on its form's figures beside the idiom (``figure_form``).
    variant: str = ""

    @property
    def figure_form(self) -> str:
        """The form whose figures draw this curve: ``form`` without its variant."""
        base, _, tags = self.form.partition("[")
        kept = [t for t in tags.rstrip("]").split(",") if t and t != self.variant]
        return f"{base}[{','.join(kept)}]" if kept else base

    def label(self) -> str:
        """``torch (cpu) cumsum B=2 C=8 float32``, with precision and input when not the default."""
        parts = [f"{self.backend} ({self.device or '?'})", self.form, f"B={self.B} C={self.C}", self.dtype]
        if self.precision != "ieee":
            parts.append(self.precision)
        if self.input != "normal":
            parts.append(self.input)
        return " ".join(parts)


def group_key(row: Row) -> GroupKey:
    # Each kernel of a form is a curve of its own: ``attention[flash]``, ``attention[math]``.
    # A variant too (``cumsum[staged]``), with its name kept apart to place it beside its idiom.
    form = row.case.form_kernel
    return GroupKey(row.backend, row.device, form, row.dtype, row.precision, row.input, row.B, row.C, row.variant)


def timed(row: Row) -> bool:
    """Whether a row has a usable time: status ok and a finite, positive median."""
    return row.status == "ok" and math.isfinite(row.median_s) and row.median_s > 0


@dataclass(frozen=True)
class ScalingFit:
    """``median_s ~= a * T**k`` for one group, from ``n_points`` rows at ``n_sizes`` sizes."""

    key: GroupKey
    a: float
    k: float
    #: Standard error of k from the least-squares fit; NaN with two sizes.
    k_stderr: float
    #: Slope between the two largest sizes (local exponent at the large end).
    k_tail: float
    n_points: int
    sizes: tuple[int, ...]
    #: Coefficient of determination of the log-log line (1 with two sizes).
    r2: float

    @property
    def t_min(self) -> int:
        return self.sizes[0]

    @property
    def t_max(self) -> int:
        return self.sizes[-1]

    def predict(self, T: float) -> float:
        """Fitted seconds per call at length T."""
        return float(self.a * T**self.k)

    def exponent(self) -> str:
        """``1.02±0.03``, or ``1.02`` when the error is unknown."""
        if math.isfinite(self.k_stderr):
            return f"{self.k:.2f}±{self.k_stderr:.2f}"
        return f"{self.k:.2f}"


def _groups(rows: Iterable[Row]) -> dict[GroupKey, list[Row]]:
    groups: dict[GroupKey, list[Row]] = defaultdict(list)
    for r in rows:
        if timed(r):
            groups[group_key(r)].append(r)
    return groups


def _fit_group(key: GroupKey, rows: Sequence[Row]) -> ScalingFit | None:
    sizes = tuple(sorted({r.T for r in rows}))
    if len(sizes) < 2:
        return None
    a, k, stderr, r2 = fit_power_law([r.T for r in rows], [r.median_s for r in rows])
    # Several rows at one size (runs merged) count through their median.
    top = [float(np.median([r.median_s for r in rows if r.T == T])) for T in sizes[-2:]]
    k_tail = math.log(top[1] / top[0]) / math.log(sizes[-1] / sizes[-2])
    return ScalingFit(key, a, k, stderr, k_tail, len(rows), sizes, r2)


def fit_scaling(rows: Iterable[Row]) -> list[ScalingFit]:
    """One fit per group with at least two distinct measured T, sorted by form then backend."""
    fits = [f for key, group in _groups(rows).items() if (f := _fit_group(key, group)) is not None]
    return sorted(fits, key=lambda f: (f.key.form, f.key.backend, f.key))


# -- crossovers ----------------------------------------------------------------------


@dataclass(frozen=True)
class Crossover:
    """Within ``key``, ``faster_above`` overtakes ``faster_below`` at length ``T``.

    ``key`` is the group of the slower-at-large-T curve with the varied field
    (form, or backend and device) blanked; ``between`` are the measured sizes the
    crossing lies between and ``seconds`` the interpolated time there.
    """

    key: GroupKey
    vary: str
    faster_below: str
    faster_above: str
    T: float
    between: tuple[int, int]
    seconds: float

    def describe(self) -> str:
        where = f"{self.key.backend} ({self.key.device or '?'})" if self.vary == "form" else self.key.form
        return (
            f"on {where}, {self.faster_above} overtakes {self.faster_below} at T ~ {self.T:.3g} "
            f"(between {self.between[0]} and {self.between[1]})"
        )


_VARY = ("form", "backend")


def _curve_name(key: GroupKey, vary: str) -> str:
    return key.form if vary == "form" else f"{key.backend} ({key.device or '?'})"


def _shared_key(key: GroupKey, vary: str) -> GroupKey:
    return replace(key, form="") if vary == "form" else replace(key, backend="", device="")


def _medians(rows: Sequence[Row]) -> dict[int, float]:
    by_t: dict[int, list[float]] = defaultdict(list)
    for r in rows:
        by_t[r.T].append(r.median_s)
    return {T: float(np.median(v)) for T, v in by_t.items()}


def _crossings(ta: dict[int, float], tb: dict[int, float]) -> list[tuple[float, tuple[int, int], float, bool]]:
    """Where curve a and b cross: (T, between, seconds, a_faster_above) for each sign flip."""
    common = sorted(set(ta) & set(tb))
    pts = [(math.log(T), math.log(ta[T]) - math.log(tb[T]), T) for T in common]
    out: list[tuple[float, tuple[int, int], float, bool]] = []
    last: int | None = None  # index of the last point where the curves differ
    for i, (_, d, _) in enumerate(pts):
        if d == 0:
            continue
        if last is not None and (pts[last][1] > 0) != (d > 0):
            a_faster_above = d < 0
            x0, d0, T0 = pts[last]
            x1, _, T1 = pts[i]
            if last == i - 1:
                x = x0 + (x1 - x0) * d0 / (d0 - d)
                T = math.exp(x)
                frac = (x - x0) / (x1 - x0)
                seconds = math.exp(math.log(ta[T0]) + frac * (math.log(ta[T1]) - math.log(ta[T0])))
                out.append((T, (T0, T1), seconds, a_faster_above))
            else:  # equal at the measured sizes in between: the first of them is the crossing
                Tz = pts[last + 1][2]
                out.append((float(Tz), (T0, T1), ta[Tz], a_faster_above))
        last = i
    return out


def find_crossovers(rows: Iterable[Row], vary: str = "form") -> list[Crossover]:
    """Every size at which one curve overtakes another, within the same B, C and variant.

    ``vary="form"``: forms compared on each backend. ``vary="backend"``: backends
    compared on each form. Only sizes both curves measured (status ok) count.
    """
    if vary not in _VARY:
        raise ValueError(f"vary must be one of {', '.join(_VARY)}; got {vary!r}")
    families: dict[GroupKey, dict[str, dict[int, float]]] = defaultdict(dict)
    for key, group in _groups(rows).items():
        families[_shared_key(key, vary)][_curve_name(key, vary)] = _medians(group)
    found: list[Crossover] = []
    for shared, curves in families.items():
        for a, b in combinations(sorted(curves), 2):
            for T, between, seconds, a_faster_above in _crossings(curves[a], curves[b]):
                below, above = (b, a) if a_faster_above else (a, b)
                found.append(Crossover(shared, vary, below, above, T, between, seconds))
    return sorted(found, key=lambda c: (c.key, c.T))


# -- exponents across runs -------------------------------------------------------------


@dataclass(frozen=True)
class ExponentChange:
    """The exponent of one group in a base run and a head run, fitted on the sizes both measured."""

    key: GroupKey
    base: ScalingFit
    head: ScalingFit

    @property
    def delta(self) -> float:
        return self.head.k - self.base.k

    @property
    def z(self) -> float:
        """Change in units of its combined standard error; NaN when an error is unknown."""
        se = math.hypot(self.base.k_stderr, self.head.k_stderr)
        return self.delta / se if se > 0 else math.nan

    def describe(self) -> str:
        return (
            f"{self.key.label()}: scaling exponent k {self.base.exponent()} -> {self.head.exponent()} "
            f"({self.delta:+.2f}) over T {self.base.t_min}..{self.base.t_max}"
        )


def exponent_changes(
    base_rows: Iterable[Row], head_rows: Iterable[Row], min_delta: float = 0.2
) -> list[ExponentChange]:
    """Groups whose exponent k moved by at least ``min_delta`` between two runs.

    Both runs are fitted on the sizes common to them (a different size range
    alone would change k); groups with fewer than two common sizes are left out.
    Where both fits have a standard error, a change within two combined
    standard errors is not reported either: it is noise, not a new scaling.
    """
    base, head = _groups(base_rows), _groups(head_rows)
    changes: list[ExponentChange] = []
    for key in sorted(set(base) & set(head)):
        common = {r.T for r in base[key]} & {r.T for r in head[key]}
        fb = _fit_group(key, [r for r in base[key] if r.T in common])
        fh = _fit_group(key, [r for r in head[key] if r.T in common])
        if fb is None or fh is None:
            continue
        change = ExponentChange(key, fb, fh)
        if abs(change.delta) < min_delta:
            continue
        if math.isfinite(change.z) and abs(change.z) < 2:
            continue
        changes.append(change)
    return changes
