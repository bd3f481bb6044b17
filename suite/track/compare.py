"""Base against head: match cases, test their timings, give verdicts.

Reads stored runs only (``suite.results.load_run``); nothing here runs a benchmark.
``suite.track.config`` holds the thresholds, ``suite.track.render`` writes the
verdicts as markdown, CSV and JSON.

**Matching.** Rows are matched by ``Row.key`` (backend, form, shape, dtype,
precision, input). A key only in head is ``new``, only in base ``gone``.

**Correctness first.** A case whose head row failed (``mismatch``, ``error``,
``timeout``) while its base row did not is ``broken``: always a failure,
whatever the timings. The reverse is ``fixed``; failing on both sides is
``failing`` (not a new failure); a skip on either side is ``skipped``.

**Timings** (both rows ``ok``), from the raw per-call samples ``Row.samples_s``
(the statistics are in ``suite.stats``):

- the ratio of medians ``head / base`` (above 1: head is slower);
- its 95% confidence interval by a percentile bootstrap with a fixed seed
  (:func:`~suite.stats.bootstrap_ratio_ci`: the same inputs give the same
  interval on every machine);
- a two-sided Mann-Whitney U test of "the two samples come from one
  distribution", as asv uses: normal approximation with a correction for ties
  and a continuity correction (:func:`~suite.stats.mann_whitney_u`).

**Rounds.** Rows measured in rounds (``suite run --rounds R``, ``suite ab``:
each round a fresh process) are judged at the round level, where the variance
between processes lives, on round medians (a lone slow warm-up sample inside a
round moves nothing): ``slower`` when every head round lies beyond every base
round by more than the threshold and the exact one-sided Mann-Whitney test of
the round medians gives ``p <= alpha`` (:func:`rounds_verdict`). Complete
separation of n against n rounds has p = 1 / C(2n, n), so alpha = 0.01 needs 5
rounds a side; with fewer the separation alone decides and the note says so
(``suite ab`` and the gate warn before running). The ratio is that of the medians
of round medians; its 95% interval (two-level bootstrap,
:func:`~suite.stats.two_level_ratio`) is shown for the reader and does not decide.
**Interleaved pairs.** The two sides of one ``suite ab`` job (the same ``ab.job`` in
both metadata) ran round ``i`` of base and head back to back (ABBA) or in lockstep (both
alive, one sample each by turns: the pair's ratio is the median of its sample ratios), so
each round pairs with its partner and drift between pairs cancels (:func:`paired_verdict`):
``slower`` when the median pair ratio exceeds ``1 + threshold`` and the exact one-sided
Wilcoxon signed-rank p of the pairs' log ratios is ``<= alpha``; all n pairs on one side
give ``p = 2 ** -n``, so alpha = 0.01 needs 7 pairs (with 8 or more, the pair farthest
from 1 is set aside before the test), and with fewer every pair must lie
beyond the threshold. Runs measured apart (``compare`` of two ``suite run``) are never
paired: a shift shared by a whole run would read as a consistent effect.
Why these rules: results/tuning/gate-statistics.md. Rows with one round on either
side fall back to the sample-level figures below, with a note: samples of one
process cannot show the variance between processes. A run with rounds is never
compared with an old file that has no round information (``CompareError``:
re-measure the base).

**Counts.** Rows of metric ``instructions`` (per-call counts under valgrind) are
deterministic: ``slower`` when the head's instructions per call exceed the base's
by more than ``count_threshold`` (0.5% by default), with no test and no
contention check (:func:`count_verdict`).

**Contention and drift.** A row measured while other processes competed for its
cores (``Row.contended``, ``suite.contention``) or while the machine canary had
drifted (``Row.drifted``, ``suite.canary``) on either side gives ``inconclusive``:
neither ``slower`` nor ``faster`` can be trusted. The gate does not fail on it,
but says how many there were.

With one round a side, a case is ``slower`` only when all three agree: the ratio exceeds
``1 + threshold``, the test gives ``p < alpha``, and the interval's lower bound
is above 1; ``faster`` is the mirror image (ratio below ``1 / (1 + threshold)``,
``p < alpha``, upper bound below 1). Anything else is ``same``. The threshold
guards against what the test cannot see: samples of one process share its
luck (memory layout, frequency, neighbours on a shared runner), so two runs of
the same code differ by more than their within-run spread suggests, and a
significance test alone fires on that. ``alpha`` keeps tiny noisy samples from
passing on the ratio alone.

**Missing cases.** A case ``ok`` in the base that the head did not time (``gone``,
or ``skipped`` there) fails the gate too, counted in a warning: a gate that passes
when half the suite stopped running is no gate. ``allow_missing`` (``compare
--allow-missing``) is for the runs that drop cases on purpose. A case that
failed in the head is ``broken`` already.

**Machines.** Runs whose machine fingerprints differ are refused
(:class:`CompareError`) unless the caller allows it; the output says either way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from suite.counting import COUNTED
from suite.machine import machine_fingerprint
from suite.report.scaling import exponent_changes
from suite.results import FAILED_STATUSES, Row
from suite.track.config import CompareConfig, CompareError
from suite.track.counted import check_metrics, check_simulated_machines, count_verdict, is_counted
from suite.track.verdicts import interleaved, paired_verdict, rounds_verdict, timing_verdict

__all__ = [
    "IMPROVEMENTS",
    "REGRESSIONS",
    "VERDICTS",
    "CaseComparison",
    "CompareError",
    "Comparison",
    "check_machines",
    "compare_case",
    "compare_rows",
    "count_verdict",
    "interleaved",
    "paired_verdict",
    "rounds_verdict",
    "timing_verdict",
]

#: Verdicts that fail the gate.
REGRESSIONS = ("broken", "slower")
IMPROVEMENTS = ("fixed", "faster")
VERDICTS = ("broken", "slower", "fixed", "faster", "same", "inconclusive", "new", "gone", "failing", "skipped")


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
    #: Counted cases that got slower: the functions whose own instructions per call grew
    #: most, (name, base, head) (``suite.track.counted.add_grown_functions``).
    functions: list[tuple[str, float, float]] = field(default_factory=list)

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
            # Spread within a process and between processes (suite.stats), each side.
            "base_within_spread": b.within_spread if b else math.nan,
            "head_within_spread": h.within_spread if h else math.nan,
            "base_round_spread": b.round_spread if b else math.nan,
            "head_round_spread": h.round_spread if h else math.nan,
            "base_drifted": bool(b and b.drifted),
            "head_drifted": bool(h and h.drifted),
            "note": self.note,
        }


def compare_case(
    key: str, base: Row | None, head: Row | None, config: CompareConfig, paired: str = ""
) -> CaseComparison:
    """The verdict for one case key (either row may be missing); ``paired``: the design in which the
    rows' rounds were measured in pairs (``interleaved``: ABBA or lockstep), judged by
    :func:`paired_verdict`."""
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
    if head.metric == COUNTED:  # deterministic counts: the relative threshold alone
        return CaseComparison(key, base=base, head=head, **count_verdict(base, head, limits))
    figures = (paired_verdict(base, head, limits, paired) if paired else None) or rounds_verdict(base, head, limits)
    notes = [figures.pop("note", "")]
    for flag, what in (("drifted", "while the machine had drifted (canary)"), ("contended", "under contention")):
        if getattr(base, flag) or getattr(head, flag):
            sides = " and ".join(n for n, r in (("base", base), ("head", head)) if getattr(r, flag))
            figures["verdict"] = "inconclusive"
            notes.insert(0, f"measured {what} in the {sides}")
    if base.unstable or head.unstable:
        notes.append("unstable (IQR within a process > 10% of median)")
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
    #: Whether cases ``ok`` in the base may be gone or skipped in the head without failing.
    allow_missing: bool = False

    @property
    def regressed(self) -> bool:
        return any(c.verdict in REGRESSIONS for c in self.cases)

    @property
    def missing(self) -> list[CaseComparison]:
        """Cases ``ok`` in the base that the head did not run: ``gone`` or ``skipped`` there."""
        return [
            c for c in self.cases if c.verdict in ("gone", "skipped") and c.base is not None and c.base.status == "ok"
        ]

    @property
    def missing_fails(self) -> bool:
        return bool(self.missing) and not self.allow_missing

    def counts(self) -> dict[str, int]:
        return {v: n for v in VERDICTS if (n := sum(c.verdict == v for c in self.cases))}

    def exit_code(self) -> int:
        return 1 if self.regressed or self.missing_fails else 0


def _has_rounds(rows: Sequence[Row]) -> bool | None:
    """Whether timed rows carry round information (schema 3 runs do); None without timed rows."""
    timed = [r for r in rows if r.status == "ok" and r.samples_s]
    return None if not timed else any(r.rounds >= 1 for r in timed)


def check_round_levels(base_rows: Sequence[Row], head_rows: Sequence[Row]) -> None:
    """CompareError when one side has rounds and the other is an old file without round information."""
    b, h = _has_rounds(base_rows), _has_rounds(head_rows)
    multi = any(r.rounds >= 2 for r in (*base_rows, *head_rows))
    if b is None or h is None or b == h or not multi:
        return
    old = "base" if not b else "head"
    raise CompareError(
        f"the {old} is an old results file without rounds (schema 2 or earlier) and the other side was measured "
        f"in rounds: their variances are not comparable; re-measure the {old} with this causal-bench"
    )


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
    allow_missing: bool = False,
) -> Comparison:
    """Match rows by key and judge each case. Raises CompareError for other machines."""
    config = config or CompareConfig()
    bm, hm = dict(base_meta or {}), dict(head_meta or {})
    check_metrics(base_rows, head_rows)
    if is_counted(base_rows) and is_counted(head_rows):  # the simulated machine is what counts
        warnings = check_simulated_machines(base_rows, head_rows, allow_other_machine)
    else:
        warnings = check_machines(bm, hm, allow_other_machine)
    check_round_levels(base_rows, head_rows)
    base = {r.key: r for r in base_rows}
    head = {r.key: r for r in head_rows}
    keys = list(dict.fromkeys([*base, *head]))
    paired = interleaved(bm, hm)
    cases = [compare_case(k, base.get(k), head.get(k), config, paired) for k in keys]
    scaling = [c.describe() for c in exponent_changes(base_rows, head_rows)]
    cmp = Comparison(cases, config, bm, hm, warnings, scaling, allow_missing)
    if n := sum(c.verdict == "inconclusive" for c in cases):
        cmp.warnings.append(
            f"{n} cases inconclusive: measured under contention (other processes competing for their cores) "
            "or while the machine had drifted (the canary's speed moved); not judged: re-run them on a quiet machine"
        )
    if missing := cmp.missing:
        gone = sum(c.verdict == "gone" for c in missing)
        what = (
            f"{len(missing)} cases ok in the base did not run in the head ({gone} gone, {len(missing) - gone} skipped)"
        )
        how = "allowed (--allow-missing)" if allow_missing else "the gate fails; pass --allow-missing if that is meant"
        cmp.warnings.append(f"{what}: {how}")
    return cmp
