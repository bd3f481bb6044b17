"""The gate's power: comparisons formed from disjoint sets of stored rounds, judged, tabled.

``scripts/gatebench.py`` measures many interleaved rounds once per condition (no extra
work, 10% planted, 25% planted) and this module forms the comparisons from them: an
A/A comparison takes ``2r`` consecutive base rounds and gives the even ones to one side,
the odd ones to the other; a detection trial takes ``r`` base rounds and ``r`` planted
rounds. Within one scenario no round is used twice, so its comparisons are independent.
Each is judged by the gate's own rule (``suite.track.compare.rounds_verdict``), and the
slowdown it actually measured (the ratio of medians of round medians) is kept beside
the verdict, so detection is tabled by measured slowdown, not by the nominal one.
Rounds measured in pairs (``gatebench --mode pairs``: every condition's round ``i`` seconds
apart, as ``suite ab`` measures base and head) are judged by the gate's paired rule
(``suite.track.verdicts.paired_verdict``) in :func:`judge_pairs`.
Counted comparisons (instructions) are tabled by :func:`count_table`.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from suite.cases import Case
from suite.format import markdown_table
from suite.results import Row
from suite.stats import wilson
from suite.track.config import Thresholds
from suite.track.verdicts import paired_verdict, rounds_verdict

#: Edges of the measured-slowdown bins of the detection table (head/base ratio).
BINS = (1.0, 1.02, 1.05, 1.10, 1.15, 1.20, 1.30)


@dataclass(frozen=True)
class Round:
    """One round of one case: its per-call samples and whether it ran under contention."""

    samples: tuple[float, ...]
    contended: bool = False


@dataclass(frozen=True)
class Judged:
    """One comparison's outcome."""

    scenario: str
    case: str
    measured: float  # head/base ratio the comparison saw
    verdict: str


def pooled_row(case: Case, rounds: Sequence[Round]) -> Row:
    """A row holding ``rounds`` as the gate reads them (samples tagged with their round)."""
    samples = [s for r in rounds for s in r.samples]
    labels = [k for k, r in enumerate(rounds) for _ in r.samples]
    return Row(
        case,
        status="ok",
        samples_s=samples,
        samples_round=labels,
        rounds=len(rounds),
        contended=any(r.contended for r in rounds),
    )


def aa_sets(rounds: Sequence[Round], r: int) -> list[tuple[list[Round], list[Round]]]:
    """Disjoint A/A pairs of ``r`` rounds a side: each window of ``2r`` consecutive rounds, even against odd."""
    return [
        (list(rounds[i : i + 2 * r : 2]), list(rounds[i + 1 : i + 2 * r : 2]))
        for i in range(0, len(rounds) - 2 * r + 1, 2 * r)
    ]


def detection_sets(base: Sequence[Round], planted: Sequence[Round], r: int) -> list[tuple[list[Round], list[Round]]]:
    """Disjoint trials: the j-th ``r`` base rounds against the j-th ``r`` planted rounds."""
    n = min(len(base), len(planted)) // r
    return [(list(base[j * r : (j + 1) * r]), list(planted[j * r : (j + 1) * r])) for j in range(n)]


def judge(
    scenario: str, case: Case, sets: Sequence[tuple[list[Round], list[Round]]], limits: Thresholds
) -> list[Judged]:
    """Each (base rounds, head rounds) pair judged by the gate's round-level rule."""
    out = []
    for b, h in sets:
        base, head = pooled_row(case, b), pooled_row(case, h)
        figures = rounds_verdict(base, head, limits)
        verdict = "inconclusive" if base.contended or head.contended else figures["verdict"]
        out.append(Judged(scenario, case.key, float(figures.get("ratio", math.nan)), verdict))
    return out


def judge_pairs(
    scenario: str, case: Case, base: Sequence[Round], head: Sequence[Round], limits: Thresholds, design: str = "ABBA"
) -> Judged:
    """One comparison of rounds measured in pairs (``base[i]`` beside ``head[i]``, ABBA or in lockstep),
    by the paired rule."""
    b, h = pooled_row(case, base), pooled_row(case, head)
    figures = paired_verdict(b, h, limits, design) or rounds_verdict(b, h, limits)
    verdict = "inconclusive" if b.contended or h.contended else figures["verdict"]
    return Judged(scenario, case.key, float(figures.get("ratio", math.nan)), verdict)


def _rate(k: int, n: int) -> str:
    if not n:
        return "-"
    lo, hi = wilson(k, n)
    return f"{k}/{n} = {k / n:.1%} [{lo:.1%}, {hi:.1%}]"


def _judged(js: Sequence[Judged]) -> list[Judged]:
    return [j for j in js if j.verdict != "inconclusive"]


def scenario_table(judged: Sequence[Judged]) -> list[str]:
    """Per scenario: comparisons, inconclusive, slower (false alarm or catch) and any change, measured ratios."""
    body = []
    for name in dict.fromkeys(j.scenario for j in judged):
        js = [j for j in judged if j.scenario == name]
        ok = _judged(js)
        ratios = [j.measured for j in ok if math.isfinite(j.measured)]
        spread = f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})" if ratios else "-"
        body.append(
            [
                name,
                str(len(js)),
                str(len(js) - len(ok)),
                _rate(sum(j.verdict == "slower" for j in ok), len(ok)),
                _rate(sum(j.verdict in ("slower", "faster") for j in ok), len(ok)),
                spread,
            ]
        )
    header = ["scenario", "comparisons", "inconclusive", "slower [Wilson 95%]", "any change", "measured ratio"]
    return markdown_table(header, body)


def bin_label(ratio: float) -> str:
    """The measured-slowdown bin of a ratio: ``<1.00``, ``1.05-1.10``, ..., ``>=1.30``."""
    if ratio < BINS[0]:
        return f"<{BINS[0]:.2f}"
    for lo, hi in itertools.pairwise(BINS):
        if ratio < hi:
            return f"{lo:.2f}-{hi:.2f}"
    return f">={BINS[-1]:.2f}"


def binned_table(judged: Sequence[Judged]) -> list[str]:
    """Detection of planted slowdowns by the slowdown each trial measured (A/A left out)."""
    ok = [j for j in _judged(judged) if j.scenario != "A/A" and math.isfinite(j.measured)]
    labels = [f"<{BINS[0]:.2f}"] + [f"{lo:.2f}-{hi:.2f}" for lo, hi in itertools.pairwise(BINS)]
    labels.append(f">={BINS[-1]:.2f}")
    body = []
    for label in labels:
        js = [j for j in ok if bin_label(j.measured) == label]
        if js:
            body.append([label, str(len(js)), _rate(sum(j.verdict == "slower" for j in js), len(js))])
    return markdown_table(["measured slowdown (head/base)", "trials", "caught (slower)"], body)


def form_of(key: str) -> str:
    """The form of a case key (``numpy:cumsum:8x32x256:...`` -> ``cumsum``; a variant keeps its brackets)."""
    parts = key.split(":")
    return parts[1] if len(parts) > 1 else key


def form_table(judged: Sequence[Judged]) -> list[str]:
    """Per form: each scenario's slower rate (false alarms in A/A, catches otherwise) and the
    spread of the ratios it measured, so a form the machine cannot time is seen apart from one it can."""
    scenarios = list(dict.fromkeys(j.scenario for j in judged))
    body = []
    for form in dict.fromkeys(form_of(j.case) for j in judged):
        cells = [form]
        for name in scenarios:
            ok = _judged([j for j in judged if j.scenario == name and form_of(j.case) == form])
            ratios = [j.measured for j in ok if math.isfinite(j.measured)]
            rate = _rate(sum(j.verdict == "slower" for j in ok), len(ok))
            cells.append(f"{rate}; {min(ratios):.2f}-{max(ratios):.2f}" if ratios else rate)
        body.append(cells)
    return markdown_table(["form", *(f"{s}: slower; measured ratios" for s in scenarios)], body)


@dataclass(frozen=True)
class Counted:
    """One counted comparison: instructions per call of the base and the head."""

    scenario: str
    case: str
    base: float
    head: float
    hog: bool = False

    @property
    def ratio(self) -> float:
        return self.head / self.base if self.base > 0 else math.nan


def count_table(counted: Sequence[Counted], threshold: float) -> list[str]:
    """Per scenario: comparisons, slower beyond ``threshold`` (false alarm or catch), the measured change;
    then how far A/A counts of one case differ (the 0.1% agreement)."""
    body = []
    for name in dict.fromkeys(c.scenario for c in counted):
        cs = [c for c in counted if c.scenario == name and math.isfinite(c.ratio)]
        slower = sum(c.ratio > 1 + threshold for c in cs)
        changes = [c.ratio - 1 for c in cs]
        shown = f"{statistics.median(changes):+.3%} ({min(changes):+.3%} to {max(changes):+.3%})" if cs else "-"
        body.append([name, str(len(cs)), _rate(slower, len(cs)), shown])
    lines = markdown_table(["scenario", "comparisons", f"slower (beyond {threshold:.1%})", "measured change"], body)
    aa = [abs(c.ratio - 1) for c in counted if c.scenario.startswith("A/A") and math.isfinite(c.ratio)]
    if aa:
        within = sum(d <= 0.001 for d in aa)
        lines += ["", f"Same case counted twice: {within}/{len(aa)} within 0.1%, largest difference {max(aa):.4%}."]
    return lines
