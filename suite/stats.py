"""Every statistic the suite computes, in one place; NumPy only.

- :func:`median_ci`: distribution-free confidence interval of a median (the timer's
  stopping rule and every row's ``ci_low_s``/``ci_high_s``);
- :func:`mann_whitney_u` and :func:`bootstrap_ratio_ci`: the two tests the compare
  gate combines (``suite.track.compare``);
- :func:`wilson`: the interval of a rate (the gate's false-alarm and detection
  rates, ``scripts/gatebench.py``);
- :func:`fit_power_law`: ``time = a * T^k`` by least squares (``suite.report.scaling``).

scipy is not a dependency, so these are written out; ``tests/test_stats.py`` checks
them against ``scipy.stats`` where it is installed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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
    """Percentile-bootstrap interval of ``median(head) / median(base)``.

    Both sample sets are resampled with replacement ``n_boot`` times with a fixed
    seed (the same inputs give the same interval on every machine); the ratio of
    the resampled medians is taken each time and its percentiles bound it.
    """
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
