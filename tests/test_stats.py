"""Every statistic in suite.stats: textbook values, and scipy.stats where it is installed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from suite.stats import (
    Z95,
    between_spread,
    bootstrap_ratio_ci,
    fit_power_law,
    mann_whitney_u,
    median_ci,
    min_rank_p,
    min_rounds,
    rank_p,
    relative_iqr,
    round_medians,
    round_separation,
    two_level_ratio,
    wilson,
    within_spread,
)
from tests.stored_runs import samples

# -- mann_whitney_u and bootstrap_ratio_ci ---------------------------------------------------


def test_mann_whitney_matches_the_textbook_value() -> None:
    # 1:3 against 4:6: U = 0, z = (4.5 - 0.5) / sqrt(5.25); R's wilcox.test(exact=FALSE) gives 0.08086.
    u, p = mann_whitney_u([1, 2, 3], [4, 5, 6])
    assert u == 0
    assert p == pytest.approx(0.0808556, rel=1e-5)


def test_mann_whitney_tie_correction_and_degenerate_inputs() -> None:
    # Tie groups {1,1} {2,2,2} {3}: variance 2*5/12 * (8 - (6+24)/42); U_a = 2.5.
    a, b = [1, 1, 2], [2, 2, 3, 3][:4]
    u, p = mann_whitney_u(a, b)
    ranks = {1: 1.5, 2: 4.0, 3: 6.5}
    assert u == pytest.approx(sum(ranks[v] for v in a) - 3 * 4 / 2)
    n1, n2, n = 3, 4, 7
    var = n1 * n2 / 12 * ((n + 1) - (2**3 - 2 + 3**3 - 3 + 2**3 - 2) / (n * (n - 1)))
    z = (abs(u - n1 * n2 / 2) - 0.5) / math.sqrt(var)
    assert p == pytest.approx(math.erfc(z / math.sqrt(2)))
    assert mann_whitney_u([5, 5, 5], [5, 5])[1] == 1.0  # every value tied
    assert mann_whitney_u([], [1.0])[1] == 1.0


def test_mann_whitney_agrees_with_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(7)
    for n1, n2 in ((5, 5), (30, 41), (8, 100)):
        a = np.round(rng.normal(10, 1, n1), 1)  # rounding makes ties
        b = np.round(rng.normal(10.4, 1, n2), 1)
        ref = stats.mannwhitneyu(a, b, method="asymptotic", use_continuity=True)
        u, p = mann_whitney_u(a, b)
        assert u == pytest.approx(float(ref.statistic))
        assert p == pytest.approx(float(ref.pvalue), rel=1e-9)


def test_bootstrap_interval_is_reproducible_and_covers_the_true_ratio() -> None:
    base, head = samples(1.0, 60, seed=1), samples(1.2, 60, seed=2)
    lo, hi = bootstrap_ratio_ci(base, head)
    assert (lo, hi) == bootstrap_ratio_ci(base, head)  # fixed seed
    assert lo < 1.2 < hi
    assert hi - lo < 0.05  # 2% noise, 60 samples a side: a tight interval


# -- median_ci -----------------------------------------------------------------------


def _expected_indices(n: int, z: float = Z95) -> tuple[int, int]:
    half = z * math.sqrt(n) / 2
    return max(math.floor(n / 2 - half), 0), min(math.ceil(n / 2 + half), n - 1)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_median_ci_of_fewer_than_six_samples_is_the_whole_range(n):
    data = np.sort(np.random.default_rng(n).normal(size=n))
    assert median_ci(data) == (float(data[0]), float(data[-1]))


def test_median_ci_of_no_samples_is_nan():
    lo, hi = median_ci(np.array([]))
    assert math.isnan(lo)
    assert math.isnan(hi)


def test_median_ci_of_100_samples_uses_ranks_40_and_60():
    data = np.arange(100, dtype=float) * 0.5  # value = index / 2
    lo_i, hi_i = _expected_indices(100)
    # n/2 -+ 1.96 * sqrt(100) / 2 = 50 -+ 9.8: floor 40.2 -> 40, ceil 59.8 -> 60.
    assert (lo_i, hi_i) == (40, 60)
    assert median_ci(data) == (20.0, 30.0)


@pytest.mark.parametrize(("n", "expected"), [(8, (1, 7)), (20, (5, 15)), (1000, (469, 531))])
def test_median_ci_indices_follow_the_binomial_formula(n, expected):
    data = np.arange(n, dtype=float)
    assert _expected_indices(n) == expected
    assert median_ci(data) == (float(expected[0]), float(expected[1]))


def test_median_ci_with_another_z():
    data = np.arange(100, dtype=float)
    # z = 1: 50 -+ 5 exactly.
    assert median_ci(data, z=1.0) == (45.0, 55.0)


# -- wilson -----------------------------------------------------------------------------


def test_wilson_gives_the_intervals_the_committed_gatebench_figures_quote() -> None:
    # results/gatebench/session3.md: "8/18 = 44.4% [24.6%, 66.3%]", "18/18 = 100.0% [82.4%, 100.0%]".
    assert [round(x, 3) for x in wilson(8, 18)] == [0.246, 0.663]
    assert [round(x, 3) for x in wilson(18, 18)] == [0.824, 1.0]
    # No successes: the upper bound is z^2 / (n + z^2).
    lo, hi = wilson(0, 48)
    assert lo == pytest.approx(0.0, abs=1e-12)
    assert hi == pytest.approx(Z95**2 / (48 + Z95**2))
    assert all(math.isnan(x) for x in wilson(0, 0))


def test_wilson_agrees_with_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    for k, n in ((0, 1), (0, 48), (1, 48), (3, 48), (7, 132), (8, 18), (18, 18), (50, 54)):
        ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        lo, hi = wilson(k, n)
        assert lo == pytest.approx(float(ref.low), abs=1e-12)
        assert hi == pytest.approx(float(ref.high), abs=1e-12)


# -- fit_power_law ------------------------------------------------------------------------


def test_fit_power_law_is_exact_on_a_noiseless_power_law():
    a, k, se, r2 = fit_power_law([10, 100, 1000], [3e-6 * 10**2, 3e-6 * 100**2, 3e-6 * 1000**2])
    assert k == pytest.approx(2.0, abs=1e-12)
    assert a == pytest.approx(3e-6, rel=1e-9)
    assert se == pytest.approx(0.0, abs=1e-9)
    assert r2 == pytest.approx(1.0)


def test_fit_power_law_standard_error_matches_the_textbook_formula():
    T = np.array([8.0, 32, 128, 512])
    s = np.array([1.0, 3.5, 17.0, 60.0])
    _, k, se, _ = fit_power_law(T, s)
    x, y = np.log(T), np.log(s)
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    expected = math.sqrt((resid**2).sum() / 2 / ((x - x.mean()) ** 2).sum())
    assert k == pytest.approx(slope)
    assert se == pytest.approx(expected)


@pytest.mark.parametrize(
    ("T", "s", "message"),
    [([100, 100], [1.0, 2.0], "two distinct"), ([1, 2], [0.0, 1.0], "positive"), ([1, 2], [1.0, math.nan], "finite")],
)
def test_fit_power_law_refuses_what_it_cannot_fit(T, s, message):
    with pytest.raises(ValueError, match=message):
        fit_power_law(T, s)


# -- two_level_ratio -----------------------------------------------------------------


def _rounds(centre: float, shifts: list[float], n: int, seed: int) -> list[np.ndarray]:
    """Rounds of ``n`` samples with 1% noise, each round shifted by its own factor."""
    rng = np.random.default_rng(seed)
    return [centre * (1 + s) * (1 + 0.01 * rng.standard_normal(n)) for s in shifts]


def test_two_level_ratio_agrees_with_scipy_bootstrap_on_one_sample_rounds() -> None:
    # One sample per round: resampling rounds is resampling samples, and the statistic
    # is the median of the samples: scipy's percentile bootstrap of the ratio of medians.
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    base, head = rng.lognormal(0, 0.05, 40), rng.lognormal(0.08, 0.05, 35)
    ratio, lo, hi, p = two_level_ratio([[v] for v in base], [[v] for v in head], n_boot=8000)
    ref = stats.bootstrap(
        (base, head),
        lambda a, b, axis=-1: np.median(b, axis=axis) / np.median(a, axis=axis),
        n_resamples=8000,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(4),
    ).confidence_interval
    assert ratio == pytest.approx(np.median(head) / np.median(base))
    assert lo == pytest.approx(ref.low, rel=0.01) and hi == pytest.approx(ref.high, rel=0.01)
    assert p < 0.01  # an 8% shift on 5% noise, 35+ samples a side


def test_two_level_ratio_sees_the_spread_between_rounds() -> None:
    # The same samples within each round, but rounds that wander by +-5%: the interval
    # must be wide enough to hold that wander, which pooling the samples would hide.
    base = _rounds(1.0, [0.05, -0.05, 0.0, 0.04, -0.03], 50, seed=1)
    head = _rounds(1.0, [-0.04, 0.05, 0.02, -0.05, 0.0], 50, seed=2)
    ratio, lo, hi, p = two_level_ratio(base, head)
    assert lo < 1 < hi and p > 0.05
    pooled_lo, pooled_hi = bootstrap_ratio_ci(np.concatenate(base), np.concatenate(head))
    assert hi - lo > 2 * (pooled_hi - pooled_lo)
    assert two_level_ratio(base, head) == (ratio, lo, hi, p)  # fixed seed
    assert all(math.isnan(v) for v in two_level_ratio([], head))


# -- the round-level decision: separation, exact rank p, the rounds alpha needs ---------------


def test_round_separation_needs_every_round_beyond_every_round_by_the_threshold() -> None:
    base, head = [85e-6, 88e-6, 94e-6], [110e-6, 113e-6, 110e-6]  # issue 21's rounds
    assert round_separation(base, head, 0.05) == "slower"  # 110 > 94 * 1.05 = 98.7
    assert round_separation(head, base, 0.05) == "faster"
    assert (
        round_separation(base, head, 0.171) == "" and round_separation(base, head, 0.17) == "slower"
    )  # 110/94 = 1.1702
    assert round_separation([1.0, 1.2], [1.1, 1.3], 0.0) == ""  # overlapping rounds
    assert round_separation([], [1.0], 0.0) == ""


def test_min_rank_p_and_min_rounds_are_the_exact_counts() -> None:
    assert min_rank_p(3, 3) == pytest.approx(0.05) and min_rank_p(5, 5) == pytest.approx(1 / 252)
    assert min_rank_p(4, 4) == pytest.approx(1 / 70)
    assert (min_rounds(0.01), min_rounds(0.05), min_rounds(0.02), min_rounds(0.001)) == (5, 3, 4, 7)
    stats = pytest.importorskip("scipy.stats")
    for n in (2, 3, 4, 5):  # complete separation gives scipy's smallest exact p
        res = stats.mannwhitneyu(list(range(10, 10 + n)), list(range(n)), alternative="greater", method="exact")
        assert res.pvalue == pytest.approx(min_rank_p(n, n))


def test_rank_p_is_one_sided_and_exact() -> None:
    pytest.importorskip("scipy.stats")
    base, head = [1.0, 1.1, 1.2, 1.3, 1.4], [2.0, 2.1, 2.2, 2.3, 2.4]
    assert rank_p(base, head, "greater") == pytest.approx(1 / 252)
    assert rank_p(base, head, "less") == pytest.approx(1.0)
    # One swap (U = 24 of 25): two arrangements as extreme or more.
    assert rank_p([1.0, 1.1, 1.2, 1.3, 2.05], [2.0, 2.1, 2.2, 2.3, 2.4], "greater") == pytest.approx(2 / 252)
    assert rank_p([], head, "greater") == 1.0


def test_round_medians_drop_empty_rounds_and_ignore_a_lone_outlier() -> None:
    assert round_medians([[1.0, 1.0, 9.0], [], [2.0, float("nan"), 2.0]]) == [1.0, 2.0]


def test_relative_iqr_is_iqr_over_median() -> None:
    assert relative_iqr([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(2.0 / 3.0)
    assert math.isnan(relative_iqr([])) and math.isnan(relative_iqr([0.0, 0.0]))


def test_within_spread_is_the_median_of_each_rounds_relative_iqr() -> None:
    rounds = [[1.0, 2.0, 3.0], [10.0, 10.0, 10.0], [1.0, 1.1, 1.2, 1.3]]
    expected = [1.0 / 2.0, 0.0, 0.15 / 1.15]
    assert within_spread(rounds) == pytest.approx(float(np.median(expected)))
    assert math.isnan(within_spread([[], []]))


def test_between_spread_ignores_the_noise_within_rounds() -> None:
    assert between_spread([1.0, 1.2, 1.1]) == pytest.approx(0.2 / 1.1)
    assert math.isnan(between_spread([1.0, math.nan]))
