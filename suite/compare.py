"""Base against head: match cases, test their timings, give verdicts, render them.

Reads stored runs only (``suite.results.load_run``); nothing here runs a benchmark.

**Matching.** Rows are matched by ``Row.key`` (backend, form, shape, dtype,
precision, input). A key only in head is ``new``, only in base ``gone``.

**Correctness first.** A case whose head row failed (``mismatch``, ``error``,
``timeout``) while its base row did not is ``broken``: always a failure,
whatever the timings. The reverse is ``fixed``; failing on both sides is
``failing`` (not a new failure); a skip on either side is ``skipped``.

**Timings** (both rows ``ok``), from the raw per-call samples ``Row.samples_s``:

- the ratio of medians ``head / base`` (above 1: head is slower);
- its 95% confidence interval by a percentile bootstrap: both sample sets are
  resampled with replacement ``N_BOOT`` times with a fixed seed (the same
  inputs give the same interval on every machine), the ratio of the resampled
  medians is taken each time, and the 2.5th and 97.5th percentiles bound it;
- a two-sided Mann-Whitney U test of "the two samples come from one
  distribution", as asv uses: normal approximation with a correction for ties
  and a continuity correction (:func:`mann_whitney_u`; no scipy needed).

A case is ``slower`` only when all three agree: the ratio exceeds
``1 + threshold``, the test gives ``p < alpha``, and the interval's lower bound
is above 1; ``faster`` is the mirror image (ratio below ``1 / (1 + threshold)``,
``p < alpha``, upper bound below 1). Anything else is ``same``. The threshold
guards against what the test cannot see: samples of one process share its
luck (memory layout, frequency, neighbours on a shared runner), so two runs of
the same code differ by more than their within-run spread suggests, and a
significance test alone fires on that. ``alpha`` keeps tiny noisy samples from
passing on the ratio alone.

**Thresholds** come from ``[tool.causal-bench.compare]`` in ``pyproject.toml``
(see :func:`load_config`), per backend and per form, a form's setting winning
over a backend's, which wins over the default.

**Machines.** Runs whose machine fingerprints differ are refused
(:class:`CompareError`) unless the caller allows it; the output says either way.
"""

from __future__ import annotations

import csv
import io
import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from suite.report import format_seconds
from suite.results import FAILED_STATUSES, Row
from suite.scaling import exponent_changes

#: Default regression threshold: a case must be more than this fraction slower.
#: 5%, not 10%: a gate meant to catch 10% slowdowns must flag ratios well below
#: 1.10, or half of them slip under (measured: at 10% only 44-72% of injected 10%
#: slowdowns were flagged). With ``suite ab`` on the project's 2-core CPU the A/A
#: ratio fell within 0.96-1.03 (5th-95th percentile) when the machine was quiet,
#: 0.88-1.11 when neighbours were busy; see ``suite.gatebench``.
DEFAULT_THRESHOLD = 0.05
#: Default significance level of the Mann-Whitney test. It mostly guards small
#: sample counts (3 against 3 samples can never reach it); for many samples the
#: threshold does the work, since samples of one process are not independent.
DEFAULT_ALPHA = 0.01
#: Bootstrap resamples for the ratio's confidence interval, and their seed.
N_BOOT = 2000
BOOT_SEED = 20240611
#: Verdicts that fail the gate.
REGRESSIONS = ("broken", "slower")
IMPROVEMENTS = ("fixed", "faster")
VERDICTS = ("broken", "slower", "fixed", "faster", "same", "new", "gone", "failing", "skipped")

COMPARE_SCHEMA = "causal-bench/compare"
COMPARE_VERSION = 1
MD_NAME, CSV_NAME, JSON_NAME = "compare.md", "compare.csv", "compare.json"


class CompareError(Exception):
    """The runs cannot be compared (other machines) or the configuration is bad."""


# -- statistics ---------------------------------------------------------------------


def rank_average(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1-based ranks with ties given their average rank, and the size of each tie group."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)  # rank of the last member of each group
    average = upper - (counts - 1) / 2.0
    return average[inverse].astype(float), counts


def mann_whitney_u(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test: (U of ``a``, p-value).

    Normal approximation with tie correction and continuity correction (as
    ``scipy.stats.mannwhitneyu(method="asymptotic")`` and R's ``wilcox.test(exact=
    FALSE)``): ``U = R_a - n_a (n_a + 1) / 2``, mean ``n_a n_b / 2``, variance
    ``n_a n_b / 12 * ((n + 1) - sum(t^3 - t) / (n (n - 1)))`` over tie groups of
    size ``t``. Returns p = 1 when either side is empty or every value is tied.
    """
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        return math.nan, 1.0
    n = n1 + n2
    ranks, ties = rank_average(np.concatenate([x, y]))
    u1 = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2)
    mean = n1 * n2 / 2
    tie_term = float((ties**3 - ties).sum()) / (n * (n - 1)) if n > 1 else 0.0
    var = n1 * n2 / 12 * ((n + 1) - tie_term)
    if var <= 0:
        return u1, 1.0
    z = (abs(u1 - mean) - 0.5) / math.sqrt(var)
    p = math.erfc(max(z, 0.0) / math.sqrt(2))
    return u1, min(p, 1.0)


def bootstrap_ratio_ci(
    base: Sequence[float] | np.ndarray,
    head: Sequence[float] | np.ndarray,
    level: float = 0.95,
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``median(head) / median(base)`` (fixed seed)."""
    x = np.asarray(base, dtype=float)
    y = np.asarray(head, dtype=float)
    if len(x) == 0 or len(y) == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    mx = np.median(x[rng.integers(0, len(x), size=(n_boot, len(x)))], axis=1)
    my = np.median(y[rng.integers(0, len(y), size=(n_boot, len(y)))], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = my / mx
    tail = (1 - level) / 2 * 100
    lo, hi = np.nanpercentile(ratios, [tail, 100 - tail])
    return float(lo), float(hi)


# -- configuration --------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    """When a timing difference counts: ratio beyond ``1 + threshold`` and ``p < alpha``."""

    threshold: float = DEFAULT_THRESHOLD
    alpha: float = DEFAULT_ALPHA


@dataclass(frozen=True)
class CompareConfig:
    """The default thresholds and their per-backend and per-form overrides.

    Each override table may set ``threshold``, ``alpha`` or both; what it leaves
    out comes from the level below (form over backend over default).
    """

    default: Thresholds = field(default_factory=Thresholds)
    backend: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    form: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    source: str = "built-in defaults"

    def for_case(self, backend: str, form: str) -> Thresholds:
        t = self.default
        for table in (self.backend.get(backend, {}), self.form.get(form, {})):
            t = replace(t, **table)
        return t

    def with_cli(self, threshold: float | None, alpha: float | None) -> CompareConfig:
        """The command line wins over every level of the file."""
        if threshold is None and alpha is None:
            return self
        given = {k: v for k, v in (("threshold", threshold), ("alpha", alpha)) if v is not None}

        def strip(tables: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
            return {name: {k: v for k, v in t.items() if k not in given} for name, t in tables.items()}

        return CompareConfig(
            replace(self.default, **given), strip(self.backend), strip(self.form), self.source + " + command line"
        )

    def describe(self) -> str:
        d = self.default
        parts = [f"slower/faster beyond {d.threshold:.0%} and Mann-Whitney p < {d.alpha:g}"]
        for kind, tables in (("backend", self.backend), ("form", self.form)):
            for name, t in sorted(tables.items()):
                if t:
                    parts.append(f"{kind} {name}: " + ", ".join(f"{k} {v:g}" for k, v in sorted(t.items())))
        return "; ".join(parts) + f" ({self.source})"


def _check_value(where: str, key: str, value: Any) -> float:
    if key not in ("threshold", "alpha"):
        raise CompareError(f"{where}: unknown key {key!r} (expected threshold, alpha, backend, form)")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CompareError(f"{where}: {key} must be a number, got {value!r}")
    if key == "threshold" and not 0 <= value < 10:
        raise CompareError(f"{where}: threshold must be a fraction in [0, 10) (0.1 means 10%), got {value!r}")
    if key == "alpha" and not 0 < value < 1:
        raise CompareError(f"{where}: alpha must be in (0, 1), got {value!r}")
    return float(value)


def _overrides(where: str, table: Any, known: Sequence[str] | None) -> dict[str, dict[str, float]]:
    if not isinstance(table, dict):
        raise CompareError(f"{where} must be a table")
    out: dict[str, dict[str, float]] = {}
    for name, sub in table.items():
        if known is not None and name not in known:
            raise CompareError(f"{where}: unknown name {name!r}; choose from {', '.join(known)}")
        if not isinstance(sub, dict):
            raise CompareError(f"{where}.{name} must be a table")
        out[name] = {k: _check_value(f"{where}.{name}", k, v) for k, v in sub.items()}
    return out


def config_from_table(
    table: Mapping[str, Any],
    source: str,
    backends: Sequence[str] | None = None,
    forms: Sequence[str] | None = None,
) -> CompareConfig:
    """Validate a ``[tool.causal-bench.compare]`` table; raise CompareError naming what is wrong."""
    where = f"{source}: [tool.causal-bench.compare]"
    base = {k: _check_value(where, k, v) for k, v in table.items() if k not in ("backend", "form")}
    return CompareConfig(
        default=Thresholds(**base),
        backend=_overrides(f"{where} backend", table.get("backend", {}), backends),
        form=_overrides(f"{where} form", table.get("form", {}), forms),
        source=source,
    )


def load_config(
    path: str | Path | None,
    backends: Sequence[str] | None = None,
    forms: Sequence[str] | None = None,
) -> CompareConfig:
    """Thresholds from a TOML file's ``[tool.causal-bench.compare]`` table.

    ``path`` None means ``./pyproject.toml`` when there is one (and built-in
    defaults otherwise); a given path must exist. For example::

        [tool.causal-bench.compare]
        threshold = 0.05          # 5%
        alpha = 0.01
        [tool.causal-bench.compare.backend.jax]
        threshold = 0.20
        [tool.causal-bench.compare.form.loop]
        threshold = 0.15

    ``backends`` and ``forms``, where given, are the names an override may use.
    """
    if path is None:
        path = Path("pyproject.toml")
        if not path.is_file():
            return CompareConfig()
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise CompareError(f"cannot read config {p}: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise CompareError(f"config {p} is not valid TOML: {e}") from None
    tool = doc.get("tool", {})
    table = tool.get("causal-bench", {}).get("compare") if isinstance(tool, dict) else None
    if table is None:
        return CompareConfig(source=f"{p} (no [tool.causal-bench.compare]; built-in defaults)")
    if not isinstance(table, dict):
        raise CompareError(f"{p}: [tool.causal-bench.compare] must be a table")
    return config_from_table(table, str(p), backends, forms)


# -- verdicts ---------------------------------------------------------------------------


@dataclass
class CaseComparison:
    """One case's verdict and the figures behind it."""

    key: str
    verdict: str
    base: Row | None
    head: Row | None
    ratio: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    p_value: float = math.nan
    threshold: float = math.nan
    alpha: float = math.nan
    note: str = ""

    @property
    def row(self) -> Row:
        r = self.head or self.base
        assert r is not None
        return r

    def to_dict(self) -> dict[str, Any]:
        r = self.row
        b, h = self.base, self.head
        return {
            "key": self.key,
            "backend": r.backend,
            "form": r.form,
            "size": f"{r.B}x{r.T}x{r.C}",
            "dtype": r.dtype,
            "precision": r.precision,
            "input": r.input,
            "verdict": self.verdict,
            "base_status": b.status if b else "",
            "head_status": h.status if h else "",
            "base_median_s": b.median_s if b else math.nan,
            "head_median_s": h.median_s if h else math.nan,
            "ratio": self.ratio,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": self.p_value,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "base_n": len(b.samples_s) if b else 0,
            "head_n": len(h.samples_s) if h else 0,
            "note": self.note,
        }


def timing_verdict(base: Sequence[float], head: Sequence[float], limits: Thresholds) -> dict[str, Any]:
    """Ratio, interval, p-value and verdict for two sets of per-call samples."""
    x = np.asarray(base, dtype=float)
    y = np.asarray(head, dtype=float)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    out: dict[str, Any] = {"threshold": limits.threshold, "alpha": limits.alpha}
    if len(x) == 0 or len(y) == 0:
        return {**out, "verdict": "same", "note": "no samples to compare"}
    mx, my = float(np.median(x)), float(np.median(y))
    ratio = my / mx if mx > 0 else math.nan
    lo, hi = bootstrap_ratio_ci(x, y)
    _, p = mann_whitney_u(x, y)
    out.update(ratio=ratio, ci_low=lo, ci_high=hi, p_value=p)
    up = 1 + limits.threshold
    if ratio > up and p < limits.alpha and lo > 1:
        return {**out, "verdict": "slower"}
    if ratio < 1 / up and p < limits.alpha and hi < 1:
        return {**out, "verdict": "faster"}
    note = ""
    if len(x) < 2 or len(y) < 2:
        note = "too few samples for a test"
    elif (ratio > up or ratio < 1 / up) and p >= limits.alpha:
        note = f"beyond the threshold but not significant (p = {p:.2g})"
    return {**out, "verdict": "same", "note": note}


def compare_case(key: str, base: Row | None, head: Row | None, config: CompareConfig) -> CaseComparison:
    """The verdict for one case key (either row may be missing)."""
    if base is None or head is None:
        assert base or head
        return CaseComparison(key, "new" if base is None else "gone", base, head)
    if head.status in FAILED_STATUSES and base.status not in FAILED_STATUSES:
        return CaseComparison(key, "broken", base, head, note=f"{base.status} -> {head.status}: {head.reason}")
    if base.status in FAILED_STATUSES:
        if head.status == "ok":
            return CaseComparison(key, "fixed", base, head, note=f"{base.status} -> ok")
        verdict = "failing" if head.status in FAILED_STATUSES else "skipped"
        return CaseComparison(key, verdict, base, head, note=f"{base.status} -> {head.status}: {head.reason}")
    if base.status != "ok" or head.status != "ok":
        side = "head" if head.status != "ok" else "base"
        reason = (head if side == "head" else base).reason
        return CaseComparison(key, "skipped", base, head, note=f"{side} skipped: {reason}")
    limits = config.for_case(head.backend, head.form)
    figures = timing_verdict(base.samples_s, head.samples_s, limits)
    notes = [figures.pop("note", "")]
    if base.unstable or head.unstable:
        notes.append("unstable (IQR > 10% of median)")
    return CaseComparison(key, base=base, head=head, note="; ".join(n for n in notes if n), **figures)


@dataclass
class Comparison:
    """All verdicts of base against head, and what the reader must know about them."""

    cases: list[CaseComparison]
    config: CompareConfig
    base_meta: dict[str, Any]
    head_meta: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    #: One line per backend and form whose scaling exponent k in T moved (a form
    #: that turned from linear to quadratic is news even where no size regressed).
    #: Informational: it does not change the exit status.
    scaling: list[str] = field(default_factory=list)

    @property
    def regressed(self) -> bool:
        return any(c.verdict in REGRESSIONS for c in self.cases)

    def counts(self) -> dict[str, int]:
        return {v: n for v in VERDICTS if (n := sum(c.verdict == v for c in self.cases))}

    def exit_code(self) -> int:
        return 1 if self.regressed else 0


def machine_fingerprint(meta: Mapping[str, Any]) -> str | None:
    m = meta.get("machine")
    fp = m.get("fingerprint") if isinstance(m, dict) else None
    return str(fp) if fp else None


def check_machines(base_meta: Mapping[str, Any], head_meta: Mapping[str, Any], allow_other: bool) -> list[str]:
    """Warnings about the machines; CompareError when they differ and that is not allowed."""
    fb, fh = machine_fingerprint(base_meta), machine_fingerprint(head_meta)
    if fb is None or fh is None:
        missing = " and ".join(s for s, f in (("base", fb), ("head", fh)) if f is None)
        return [f"machine fingerprint unknown for {missing} (no run metadata): cannot check it is one machine"]
    if fb == fh:
        return []
    what = f"base ran on machine {fb} ({_machine_name(base_meta)}), head on {fh} ({_machine_name(head_meta)})"
    if not allow_other:
        raise CompareError(
            f"refusing to compare runs from different machines: {what}; pass --allow-other-machine to compare anyway"
        )
    return [f"different machines: {what}; compared anyway (--allow-other-machine), timings may not be comparable"]


def _machine_name(meta: Mapping[str, Any]) -> str:
    m = meta.get("machine") or {}
    gpu = f", {m['gpu_name']}" if m.get("gpu_name") else ""
    return f"{m.get('cpu_model', '?')}, {m.get('cpu_count', '?')} cores{gpu}"


def compare_rows(
    base_rows: Sequence[Row],
    head_rows: Sequence[Row],
    config: CompareConfig | None = None,
    base_meta: Mapping[str, Any] | None = None,
    head_meta: Mapping[str, Any] | None = None,
    allow_other_machine: bool = False,
) -> Comparison:
    """Match rows by key and judge each case. Raises CompareError for other machines."""
    config = config or CompareConfig()
    bm, hm = dict(base_meta or {}), dict(head_meta or {})
    warnings = check_machines(bm, hm, allow_other_machine)
    base = {r.key: r for r in base_rows}
    head = {r.key: r for r in head_rows}
    keys = list(dict.fromkeys([*base, *head]))
    cases = [compare_case(k, base.get(k), head.get(k), config) for k in keys]
    scaling = [c.describe() for c in exponent_changes(base_rows, head_rows)]
    return Comparison(cases, config, bm, hm, warnings, scaling)


# -- rendering ----------------------------------------------------------------------------


def _fmt_ratio(c: CaseComparison) -> str:
    if math.isnan(c.ratio):
        return "-"
    ci = "" if math.isnan(c.ci_low) else f" [{c.ci_low:.3f}, {c.ci_high:.3f}]"
    return f"{c.ratio:.3f}{ci}"


def _fmt_p(p: float) -> str:
    return "-" if math.isnan(p) else f"{p:.2g}"


def _time(r: Row | None) -> str:
    if r is None:
        return "-"
    return format_seconds(r.median_s) if r.status == "ok" else f"*{r.status}*"


def _table(cases: Sequence[CaseComparison]) -> list[str]:
    lines = [
        "| case | verdict | base | head | head/base [95% CI] | p | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in cases:
        cells = [
            f"`{c.key}`",
            f"**{c.verdict}**" if c.verdict in REGRESSIONS else c.verdict,
            _time(c.base),
            _time(c.head),
            _fmt_ratio(c),
            _fmt_p(c.p_value),
            c.note,
        ]
        lines.append("| " + " | ".join(" ".join(s.split()).replace("|", "\\|") for s in cells) + " |")
    return lines


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
    status = "regression" if cmp.regressed else "no regression"
    lines = [f"## {title}: {status}", ""]
    lines.append(", ".join(f"{n} {v}" for v, n in counts.items()) or "no cases")
    lines += ["", _run_line("base", cmp.base_meta) + "  ", _run_line("head", cmp.head_meta) + "  "]
    lines.append(f"Rule: {cmp.config.describe()}; the ratio's 95% CI must exclude 1.")
    for w in cmp.warnings:
        lines += ["", f"> **Warning:** {w}"]
    regress, improve, rest = _ordered(cmp)
    if regress:
        lines += ["", f"### Regressions ({len(regress)})", "", *_table(regress)]
    if improve:
        lines += ["", f"### Improvements ({len(improve)})", "", *_table(improve)]
    if cmp.scaling:
        lines += ["", f"### Scaling changes ({len(cmp.scaling)})", ""]
        lines += [f"- {line}" for line in cmp.scaling]
    if rest:
        what = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts and v not in REGRESSIONS + IMPROVEMENTS)
        lines += ["", f"<details><summary>Other cases ({what})</summary>", "", *_table(rest), "", "</details>"]
    return "\n".join(lines) + "\n"


CSV_COLUMNS = tuple(CaseComparison("", "", None, Row("", "", 1, 1, 1, "", "", "")).to_dict())


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    return str(v)


def render_csv(cmp: Comparison) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    regress, improve, rest = _ordered(cmp)
    for c in (*regress, *improve, *rest):
        d = c.to_dict()
        w.writerow([_cell(d[k]) for k in CSV_COLUMNS])
    return buf.getvalue()


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def render_json(cmp: Comparison) -> str:
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
