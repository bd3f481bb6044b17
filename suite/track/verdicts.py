"""The verdict figures of one timed case: sample level, round level, interleaved pairs.

``suite.track.compare`` documents the rules and uses these; ``suite.track.history``
and ``suite.track.power`` judge with them too. Counted rows are judged in
``suite.track.counted``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from suite.results import Row
from suite.rounds import round_samples
from suite.stats import (
    bootstrap_ratio_ci,
    mann_whitney_u,
    min_pairs,
    min_rank_p,
    min_rounds,
    min_signed_rank_p,
    pair_ratios,
    paired_ratio_ci,
    rank_p,
    round_medians,
    round_separation,
    set_aside_farthest,
    signed_rank_p,
    two_level_ratio,
)
from suite.track.config import Thresholds

__all__ = ["interleaved", "paired_verdict", "rounds_verdict", "timing_verdict"]


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
    if len(x) < 2 or len(y) < 2:  # no interval or test from one value (scipy's bootstrap refuses it)
        return {**out, "ratio": ratio, "verdict": "same", "note": "too few samples for a test"}
    lo, hi = bootstrap_ratio_ci(x, y)
    _, p = mann_whitney_u(x, y)
    out.update(ratio=ratio, ci_low=lo, ci_high=hi, p_value=p)
    up = 1 + limits.threshold
    if ratio > up and p < limits.alpha and lo > 1:
        return {**out, "verdict": "slower"}
    if ratio < 1 / up and p < limits.alpha and hi < 1:
        return {**out, "verdict": "faster"}
    note = ""
    if (ratio > up or ratio < 1 / up) and p >= limits.alpha:
        note = f"beyond the threshold but not significant (p = {p:.2g})"
    return {**out, "verdict": "same", "note": note}


def rounds_verdict(base: Row, head: Row, limits: Thresholds) -> dict[str, Any]:
    """Ratio, interval, p-value and verdict at the round level; the sample level when a side has one round.

    ``slower`` when every head round's median lies beyond every base round's median by
    more than the threshold and the exact one-sided rank test of the round medians gives
    ``p <= alpha``; ``faster`` the mirror image. With too few rounds to reach alpha
    (``suite.stats.min_rounds``: 5 a side for 0.01) the separation alone decides and the
    note says so. The interval (two-level bootstrap) is shown, not used.
    """
    b, h = round_samples(base), round_samples(head)
    if len(b) < 2 or len(h) < 2:
        figures = timing_verdict(base.samples_s, head.samples_s, limits)
        note = "one round a side: the variance between processes is not tested (run with --rounds 2 or more)"
        if len(b) >= 2 or len(h) >= 2:
            note = "one side has a single round: judged on its samples, not on rounds"
        figures["note"] = "; ".join(n for n in (figures.get("note", ""), note) if n)
        return figures
    ratio, lo, hi, _ = two_level_ratio(b, h)
    mb, mh = round_medians(b), round_medians(h)
    separated = round_separation(mb, mh, limits.threshold)
    leaning = separated or ("slower" if ratio >= 1 else "faster")
    p = rank_p(mb, mh, "greater" if leaning == "slower" else "less")
    floor = min_rank_p(len(mb), len(mh))
    out: dict[str, Any] = {
        "threshold": limits.threshold,
        "alpha": limits.alpha,
        "ratio": ratio,
        "ci_low": lo,
        "ci_high": hi,
        "p_value": p,
    }
    note = f"rounds {len(mb)} and {len(mh)}"
    if floor > limits.alpha:
        note += (
            f"; too few to reach alpha {limits.alpha:g} (smallest p {floor:.2g}, "
            f"{min_rounds(limits.alpha)} a side can): judged on the separation alone"
        )
    if separated and (p <= limits.alpha or floor > limits.alpha):
        return {**out, "verdict": separated, "note": note if floor > limits.alpha else ""}
    up = 1 + limits.threshold
    if ratio > up or ratio < 1 / up:
        note += "; beyond the threshold but the rounds overlap" if not separated else f"; p = {p:.2g}"
    return {**out, "verdict": "same", "note": note}


#: The designs whose rounds pair up: ``ABBA`` (round ``i`` of base and head back to back) and
#: ``lockstep`` (round ``i`` of both alive at once, sampling by turns: ``suite.lockstep``).
PAIRED_DESIGNS = ("ABBA", "lockstep")


def interleaved(base_meta: Mapping[str, Any], head_meta: Mapping[str, Any]) -> str:
    """How the two sides' rounds were measured in pairs ("" when they were not): the two sides
    of one ``suite ab`` job (the same ``ab.job`` in both metadata) and their design."""
    b, h = base_meta.get("ab") or {}, head_meta.get("ab") or {}
    job, design = b.get("job"), b.get("design")
    paired = bool(job) and job == h.get("job") and design == h.get("design") and design in PAIRED_DESIGNS
    return str(design) if paired else ""


def lockstep_ratios(base: Sequence[np.ndarray], head: Sequence[np.ndarray]) -> np.ndarray | None:
    """Per round of a lockstep job, the median over its samples of head's k-th sample over base's
    k-th (taken milliseconds apart); None when a round's sample counts differ (not in lockstep)."""
    if len(base) != len(head) or any(len(b) != len(h) or not len(b) for b, h in zip(base, head, strict=True)):
        return None
    return np.array([float(np.exp(np.median(np.log(h / b)))) for b, h in zip(base, head, strict=True)])


def paired_verdict(base: Row, head: Row, limits: Thresholds, design: str = "ABBA") -> dict[str, Any] | None:
    """The verdict of rounds measured in pairs (round ``i`` of base and head back to back, or in
    lockstep), or None when the rows cannot be paired (different numbers of rounds, fewer than 2).

    Each pair gives one ratio: of round medians (ABBA), or the median of the round's
    sample-by-sample ratios (``lockstep``: drift within the round cancels too). Drift between
    pairs (a neighbour that came, a clock that ramped) cancels, and one slow process moves one pair. ``slower``
    when the median pair ratio exceeds ``1 + threshold`` and the exact one-sided
    Wilcoxon signed-rank test of the pairs' log ratios gives ``p <= alpha`` (with one pair,
    the farthest from 1, set aside when it lies far from the rest and the rest can still reach alpha:
    ``suite.stats.set_aside_farthest``; 8 pairs or more for 0.01)
    (``suite.stats.signed_rank_p``); ``faster`` the mirror image. With too few pairs to
    reach alpha (``suite.stats.min_pairs``: 7 for 0.01) every pair must lie beyond the
    threshold, and the note says so. The interval (a bootstrap over pairs) is shown, not used.
    """
    if design == "lockstep":
        q_or_none = lockstep_ratios(round_samples(base), round_samples(head))
        if q_or_none is None:
            return None
        q = q_or_none
    else:
        b, h = round_medians(round_samples(base)), round_medians(round_samples(head))
        if len(b) < 2 or len(b) != len(h):
            return None
        q = pair_ratios(b, h)
    if len(q) < 2:
        return None
    ratio, lo, hi = paired_ratio_ci(q)
    up = 1 + limits.threshold
    leaning = "slower" if ratio >= 1 else "faster"
    judged, aside = set_aside_farthest(q, limits.alpha)
    p = signed_rank_p(judged, "greater" if leaning == "slower" else "less")
    out: dict[str, Any] = {
        "threshold": limits.threshold,
        "alpha": limits.alpha,
        "ratio": ratio,
        "ci_low": lo,
        "ci_high": hi,
        "p_value": p,
    }
    beyond = ratio > up if leaning == "slower" else ratio < 1 / up
    set_aside = f"the outlying pair ({aside:.3g}) set aside for the test" if aside is not None else ""
    how = "in lockstep" if design == "lockstep" else "interleaved"
    note = f"{len(q)} pairs, {how}" + (f"; {set_aside}" if set_aside else "")
    if min_signed_rank_p(len(q)) > limits.alpha:
        every = bool(np.all(q > up)) if leaning == "slower" else bool(np.all(q * up < 1))
        note += (
            f"; too few to reach alpha {limits.alpha:g} (smallest p {min_signed_rank_p(len(q)):.2g}, "
            f"{min_pairs(limits.alpha)} pairs can): every pair must lie beyond the threshold"
        )
        if every:
            return {**out, "verdict": leaning, "note": note}
        if beyond:
            note += "; beyond the threshold but not every pair"
        return {**out, "verdict": "same", "note": note}
    if beyond and p <= limits.alpha:
        return {**out, "verdict": leaning, "note": set_aside}
    if beyond:
        note += f"; beyond the threshold but p = {p:.2g}"
    return {**out, "verdict": "same", "note": note}
