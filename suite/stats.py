"""Every statistic the suite computes, in one place.

- :func:`median_ci`: distribution-free confidence interval of a median (the timer's
  stopping rule and every row's ``ci_low_s``/``ci_high_s``);
- :func:`relative_iqr`, :func:`within_spread` and :func:`between_spread`: the two
  spreads a row carries, noise inside one process (``within_spread``, what
  ``unstable`` judges) and the spread between processes (``round_spread``);
- :func:`mann_whitney_u` and :func:`bootstrap_ratio_ci`: the sample-level tests the
  compare gate uses for single-round rows (``suite.track.compare``), both
  ``scipy.stats``;
- :func:`two_level_ratio`: the round-level test for rows measured in rounds: a
  two-level bootstrap (rounds, then samples within each round), written out here
  because scipy has no hierarchical bootstrap; ``tests/test_stats.py`` checks it
  against ``scipy.stats.bootstrap`` where the two coincide (one sample per round);
- :func:`round_separation`, :func:`rank_p`, :func:`min_rank_p`, :func:`min_rounds`: the
  round-level decision of the gate: every round of one side beyond every round of the
  other by more than the threshold, on round medians, with the exact one-sided
  Mann-Whitney p of the round medians (``scipy.stats.mannwhitneyu(method="exact")``) and
  the fewest rounds that can reach a significance level (results/tuning/gate-statistics.md);
- :func:`pair_ratios`, :func:`signed_rank_p`, :func:`min_signed_rank_p`, :func:`min_pairs`:
  the paired decision for rounds measured interleaved (``suite ab``: base and head round
  ``i`` run back to back): the ratio of each pair's round medians, and the exact one-sided
  Wilcoxon signed-rank p of their logarithms (``scipy.stats.wilcoxon(method="exact")``);
  drift between pairs cancels, so only the noise inside a pair is left to beat;
- :func:`wilson`: the interval of a rate (the gate's false-alarm and detection
  rates, ``scripts/gatebench.py``);
- :func:`fit_power_law`: ``time = a * T^k`` by least squares (``suite.report.scaling``).

scipy is imported by the functions that need it (the ``track`` extra), never at
import time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

#: The standard normal quantile of a two-sided 95% interval.
Z95 = 1.959963984540054
#: Bootstrap resamples for the ratio's confidence interval, and their seed.
N_BOOT = 2000
BOOT_SEED = 20240611


def median_ci(sorted_samples: np.ndarray, z: float = Z95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median from order statistics.

    The rank of the sample median is binomial(n, 1/2); the normal approximation
    gives ranks ``n/2 -+ z*sqrt(n)/2``, clipped to the sample; with fewer than 8
    samples that is the whole range.
    """
    n = len(sorted_samples)
    if n == 0:
        return math.nan, math.nan
    half = z * math.sqrt(n) / 2
    lo = max(math.floor(n / 2 - half), 0)
    hi = min(math.ceil(n / 2 + half), n - 1)
    return float(sorted_samples[lo]), float(sorted_samples[hi])


def relative_iqr(samples: Sequence[float] | np.ndarray) -> float:
    """Interquartile range / median of one process's samples; NaN when empty or the median is not positive."""
    x = np.asarray(samples, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan
    mid = float(np.median(x))
    if not mid > 0:
        return math.nan
    q1, q3 = np.percentile(x, [25, 75])
    return float(q3 - q1) / mid


def within_spread(rounds: Sequence[Sequence[float] | np.ndarray]) -> float:
    """The noise inside a process: the median over rounds of each round's IQR / median.

    Each round is one process; the spread between their medians is left out on
    purpose (that is :func:`between_spread`). NaN when no round has samples.
    """
    spreads = [s for r in rounds if math.isfinite(s := relative_iqr(r))]
    return float(np.median(spreads)) if spreads else math.nan


def between_spread(medians: Sequence[float]) -> float:
    """The spread between processes: (max - min) / median of the round medians.

    The whole range, not a quantile: with the two or three rounds a sweep runs, a
    range is what there is, and a reader can check it by eye. NaN with fewer than
    two rounds.
    """
    m = [x for x in medians if math.isfinite(x)]
    if len(m) < 2:
        return math.nan
    mid = float(np.median(m))
    return (max(m) - min(m)) / mid if mid > 0 else math.nan


def _scipy_stats() -> Any:
    try:
        from scipy import stats
    except ImportError:
        raise ImportError("comparing runs needs scipy: pip install 'causal-bench[track]'") from None
    return stats


def mann_whitney_u(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test: (U of ``a``, p-value), by ``scipy.stats.mannwhitneyu``.

    The normal approximation with tie and continuity corrections (``method=
    "asymptotic"``, as R's ``wilcox.test(exact=FALSE)`` and asv). Returns p = 1 when
    either side is empty or every value is tied.
    """
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if len(x) == 0 or len(y) == 0:
        return math.nan, 1.0
    if np.all(np.concatenate([x, y]) == x[0]):
        return len(x) * len(y) / 2, 1.0
    res = _scipy_stats().mannwhitneyu(x, y, alternative="two-sided", method="asymptotic", use_continuity=True)
    p = float(res.pvalue)
    return float(res.statistic), 1.0 if math.isnan(p) else min(p, 1.0)


def _median_ratio(base: np.ndarray, head: np.ndarray, axis: int = -1) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.median(head, axis=axis) / np.median(base, axis=axis))


def bootstrap_ratio_ci(
    base: Sequence[float] | np.ndarray,
    head: Sequence[float] | np.ndarray,
    level: float = 0.95,
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``median(head) / median(base)``, by ``scipy.stats.bootstrap``.

    Both sample sets are resampled independently ``n_boot`` times with a fixed
    seed (the same inputs give the same interval on every machine).
    """
    x = np.asarray(base, dtype=float)
    y = np.asarray(head, dtype=float)
    if len(x) == 0 or len(y) == 0:
        return math.nan, math.nan
    if len(x) == 1 and len(y) == 1:  # nothing to resample
        r = float(_median_ratio(x, y))
        return r, r
    res = _scipy_stats().bootstrap(
        (x, y),
        lambda a, b, axis=-1: _median_ratio(a, b, axis),
        n_resamples=n_boot,
        confidence_level=level,
        method="percentile",
        vectorized=True,
        paired=False,
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _two_level_medians(rounds: Sequence[np.ndarray], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` resampled medians of round medians: rounds drawn with replacement,
    then each drawn round's samples drawn with replacement (afresh for every draw)."""
    k = len(rounds)
    pick = rng.integers(0, k, size=(n_boot, k))
    medians = np.empty((n_boot, k))
    for j, x in enumerate(rounds):
        where = pick == j
        draws = int(where.sum())
        if draws:
            medians[where] = np.median(x[rng.integers(0, len(x), size=(draws, len(x)))], axis=1)
    return np.asarray(np.median(medians, axis=1))


def two_level_ratio(
    base_rounds: Sequence[Sequence[float] | np.ndarray],
    head_rounds: Sequence[Sequence[float] | np.ndarray],
    level: float = 0.95,
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
) -> tuple[float, float, float, float]:
    """Head against base at the level of rounds: (ratio, CI low, CI high, p).

    The statistic is the ratio of the medians of round medians, ``head / base``.
    Its distribution comes from a two-level bootstrap: each side's rounds are
    resampled with replacement, then the samples within each drawn round, so
    the spread between rounds (processes, minutes, neighbours) enters the
    interval as it enters the truth. The interval is the percentile one; ``p`` is
    the two-sided bootstrap p-value of "ratio = 1": twice the smaller share of
    resampled ratios on either side of 1, with the usual +1 correction so it is
    never 0. Empty rounds are dropped; NaNs everywhere when a side has none.
    """
    b = [np.asarray(r, dtype=float) for r in base_rounds]
    h = [np.asarray(r, dtype=float) for r in head_rounds]
    b = [r[np.isfinite(r)] for r in b]
    h = [r[np.isfinite(r)] for r in h]
    b, h = [r for r in b if len(r)], [r for r in h if len(r)]
    if not b or not h:
        return math.nan, math.nan, math.nan, math.nan
    mb = float(np.median([np.median(r) for r in b]))
    mh = float(np.median([np.median(r) for r in h]))
    ratio = mh / mb if mb > 0 else math.nan
    rng = np.random.default_rng(seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = _two_level_medians(h, n_boot, rng) / _two_level_medians(b, n_boot, rng)
    tail = (1 - level) / 2 * 100
    lo, hi = np.nanpercentile(ratios, [tail, 100 - tail])
    below = int(np.sum(ratios <= 1))
    above = int(np.sum(ratios >= 1))
    p = min(1.0, 2 * (min(below, above) + 1) / (n_boot + 1))
    return ratio, float(lo), float(hi), p


def round_medians(rounds: Sequence[Sequence[float] | np.ndarray]) -> list[float]:
    """The median of each round's finite samples; empty rounds dropped."""
    out = []
    for r in rounds:
        x = np.asarray(r, dtype=float)
        x = x[np.isfinite(x)]
        if len(x):
            out.append(float(np.median(x)))
    return out


def round_separation(base: Sequence[float], head: Sequence[float], threshold: float) -> str:
    """``slower`` when every head round lies beyond every base round by more than ``threshold``
    (``min(head) > max(base) * (1 + threshold)``), ``faster`` for the mirror image, else "".

    ``base`` and ``head`` are round medians, so a lone slow sample inside a round moves
    nothing; one slow round on the wrong side breaks the separation, as it should.
    """
    if not base or not head:
        return ""
    up = 1 + threshold
    if min(head) > max(base) * up:
        return "slower"
    if max(head) * up < min(base):
        return "faster"
    return ""


def min_rank_p(n: int, m: int) -> float:
    """The smallest exact one-sided rank p of ``n`` against ``m`` rounds: complete separation,
    one arrangement of ``C(n + m, n)`` equally likely ones under "no difference"."""
    return 1.0 / math.comb(n + m, n) if n > 0 and m > 0 else 1.0


def min_rounds(alpha: float) -> int:
    """The fewest rounds a side whose exact one-sided rank p can reach ``alpha`` (p <= alpha).

    5 for alpha = 0.01 (1/252), 3 for 0.05 (1/20), 4 for 0.02 (1/70).
    """
    k = 1
    while min_rank_p(k, k) > alpha:
        k += 1
    return k


def rank_p(base: Sequence[float], head: Sequence[float], alternative: str) -> float:
    """Exact one-sided Mann-Whitney p of round medians, by ``scipy.stats.mannwhitneyu``.

    ``alternative`` is ``greater`` (head slower) or ``less`` (head faster). The exact
    distribution is the one valid for a handful of rounds; with ties scipy falls back to
    its asymptotic form. 1 when a side is empty.
    """
    if not base or not head:
        return 1.0
    res = _scipy_stats().mannwhitneyu(head, base, alternative=alternative, method="exact")
    p = float(res.pvalue)
    return 1.0 if math.isnan(p) else min(p, 1.0)


def pair_ratios(base: Sequence[float], head: Sequence[float]) -> np.ndarray:
    """``head[i] / base[i]`` for each pair of round medians measured back to back; pairs with a
    non-positive or missing figure dropped."""
    b = np.asarray(base, dtype=float)
    h = np.asarray(head, dtype=float)
    n = min(len(b), len(h))
    b, h = b[:n], h[:n]
    ok = np.isfinite(b) & np.isfinite(h) & (b > 0) & (h > 0)
    return np.asarray(h[ok] / b[ok], dtype=float)


def min_signed_rank_p(n: int) -> float:
    """The smallest exact one-sided signed-rank p of ``n`` pairs: all ``n`` pairs on one side,
    one of the ``2 ** n`` equally likely sign patterns under "no difference"."""
    return 2.0**-n if n > 0 else 1.0


def min_pairs(alpha: float) -> int:
    """The fewest interleaved pairs whose exact signed-rank p can reach ``alpha`` (p <= alpha).

    7 for alpha = 0.01 (1/128), 5 for 0.05 (1/32).
    """
    k = 1
    while min_signed_rank_p(k) > alpha:
        k += 1
    return k


#: How far the farthest pair must lie to be set aside (``set_aside_farthest``): its ``|log ratio|``
#: beyond this multiple of the median ``|log ratio|`` of all pairs.
OUTLIER_FACTOR = 1.5


def set_aside_farthest(ratios: Sequence[float] | np.ndarray, alpha: float) -> tuple[np.ndarray, float | None]:
    """The pairs the signed-rank test judges, and the one set aside (None when none is).

    When the pairs left after setting one aside can still reach ``alpha`` (``min_pairs``), the
    pair farthest from no change (the largest ``|log ratio|``) is set aside if it lies far from
    the rest: beyond ``OUTLIER_FACTOR`` times the median ``|log ratio|``. One process that was
    slow for its whole life (on the project's VM about 4% of NumPy cumsum processes ran 1.65x
    slower than their lockstep partners, results/tuning/gate-statistics.md) then cannot veto a
    verdict the other pairs agree on, while a farthest pair that is merely the largest of
    similar ones stays: setting it aside would take the strongest pair from the test and let
    one small contrary pair veto (two 10% slowdowns missed so, 1.12x and 1.09x,
    results/gatebench/power/lockstep-placed-load0.md). The test stays exact: under "no difference"
    each pair's sign is a fair coin independent of its magnitude, so choosing by magnitudes
    alone leaves the other pairs' signs fair and independent, and their signed-rank p is
    exact for the pairs judged.
    """
    q = np.asarray(ratios, dtype=float)
    if len(q) - 1 < min_pairs(alpha):
        return q, None
    size = np.abs(np.log(q))
    far = int(np.argmax(size))
    if size[far] <= OUTLIER_FACTOR * float(np.median(size)):
        return q, None
    return np.delete(q, far), float(q[far])


def signed_rank_p(ratios: Sequence[float] | np.ndarray, alternative: str) -> float:
    """Exact one-sided Wilcoxon signed-rank p of the pairs' log ratios, by ``scipy.stats.wilcoxon``.

    ``alternative`` is ``greater`` (head slower) or ``less`` (head faster). Pairs with a
    ratio of exactly 1 carry no sign and are dropped (``zero_method="wilcox"``); 1 when
    no pair is left.
    """
    logs = np.log(np.asarray(ratios, dtype=float))
    logs = logs[np.isfinite(logs) & (logs != 0)]
    if len(logs) == 0:
        return 1.0
    res = _scipy_stats().wilcoxon(logs, alternative=alternative, method="exact", zero_method="wilcox")
    p = float(res.pvalue)
    return 1.0 if math.isnan(p) else min(p, 1.0)


def paired_ratio_ci(ratios: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """The median pair ratio and its percentile-bootstrap interval over pairs (fixed seed)."""
    x = np.log(np.asarray(ratios, dtype=float))
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    centre = float(np.exp(np.median(x)))
    if len(x) < 2:
        return centre, math.nan, math.nan
    rng = np.random.default_rng(BOOT_SEED)
    boots = np.median(rng.choice(x, size=(N_BOOT, len(x)), replace=True), axis=1)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(boots, [tail, 100 - tail])
    return centre, float(np.exp(lo)), float(np.exp(hi))


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a rate ``k / n`` (95% by default); NaN for ``n = 0``."""
    if n == 0:
        return math.nan, math.nan
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def fit_power_law(T: ArrayLike, seconds: ArrayLike) -> tuple[float, float, float, float]:
    """Least-squares line through ``(log T, log seconds)``: (a, k, stderr of k, r2).

    The standard error is the textbook one, ``sqrt(RSS / (n - 2) / sum((log T -
    mean)^2))``; NaN with two points, where the line is exact. Raises ValueError
    with fewer than two distinct T or non-positive values.
    """
    t = np.asarray(T, dtype=float)
    s = np.asarray(seconds, dtype=float)
    if t.shape != s.shape:
        raise ValueError("T and seconds differ in length")
    if not (np.all(t > 0) and np.all(s > 0) and np.all(np.isfinite(s))):
        raise ValueError("T and seconds must be positive and finite")
    if len(np.unique(t)) < 2:
        raise ValueError("need at least two distinct T to fit an exponent")
    x, y = np.log(t), np.log(s)
    xm, ym = x.mean(), y.mean()
    sxx = float(((x - xm) ** 2).sum())
    k = float(((x - xm) * (y - ym)).sum() / sxx)
    log_a = float(ym - k * xm)
    resid = y - (log_a + k * x)
    rss = float((resid**2).sum())
    n = len(x)
    stderr = math.sqrt(rss / (n - 2) / sxx) if n > 2 else math.nan
    tss = float(((y - ym) ** 2).sum())
    r2 = 1.0 - rss / tss if tss > 0 else 1.0
    return math.exp(log_a), k, stderr, r2
