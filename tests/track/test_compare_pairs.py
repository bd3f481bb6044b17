"""Rounds measured in pairs (``suite ab``): drift between pairs cancels, the signed-rank test decides."""

from __future__ import annotations

import numpy as np
import pytest

from suite.cases import Case
from suite.results import Row
from suite.rounds import merge_rows, round_samples
from suite.stats import (
    OUTLIER_FACTOR,
    min_pairs,
    min_signed_rank_p,
    pair_ratios,
    set_aside_farthest,
    signed_rank_p,
)
from suite.track.compare import compare_rows
from suite.track.config import Thresholds, rounds_warning
from suite.track.verdicts import interleaved, lockstep_ratios, paired_verdict, rounds_verdict

CASE = Case("numpy", "cumsum", 8, 256, 64)
LIMITS = Thresholds(0.05, 0.01)


def paired_rows(drift: list[float], slowdown: float, seed: int, pair_noise: float = 0.01) -> tuple[Row, Row]:
    """Base and head rows whose round ``i`` share the machine's speed ``drift[i]``; inside a pair,
    each round wanders by a seeded ``pair_noise``."""
    rng = np.random.default_rng(seed)
    sides = []
    for scale in (1.0, slowdown):
        parts = []
        for d in drift:
            level = 1e-4 * scale * d * (1 + pair_noise * rng.standard_normal())
            samples = level * (1 + 0.005 * rng.standard_normal(20))
            parts.append(Row(CASE, status="ok", samples_s=[float(s) for s in samples], calls_per_sample=10))
        sides.append(merge_rows(parts))
    return sides[0], sides[1]


#: A machine whose speed wanders by 30% between pairs: no round separation survives it.
DRIFT = [1.0, 1.3, 0.9, 1.2, 1.0, 1.25, 0.95]


@pytest.mark.parametrize("seed", range(5))
def test_a_ten_percent_slowdown_under_drift_is_slower_in_pairs_and_not_by_separation(seed: int) -> None:
    base, head = paired_rows(DRIFT, 1.10, seed)
    assert rounds_verdict(base, head, LIMITS)["verdict"] == "same"  # drift hides it from the unpaired rule
    figures = paired_verdict(base, head, LIMITS)
    assert figures is not None and figures["verdict"] == "slower", figures
    assert 1.06 < figures["ratio"] < 1.14 and figures["p_value"] <= 0.01


@pytest.mark.parametrize("seed", range(5))
def test_a_a_under_drift_is_same_in_pairs(seed: int) -> None:
    base, head = paired_rows(DRIFT, 1.0, seed)
    figures = paired_verdict(base, head, LIMITS)
    assert figures is not None and figures["verdict"] == "same", figures


def test_a_small_consistent_shift_below_the_threshold_is_same() -> None:
    base, head = paired_rows(DRIFT, 1.03, 0, pair_noise=0.002)
    figures = paired_verdict(base, head, LIMITS)
    assert figures is not None
    assert figures["p_value"] <= 0.01 and figures["verdict"] == "same"  # significant but below 5%


def test_faster_is_the_mirror_image() -> None:
    base, head = paired_rows(DRIFT, 0.85, 3)
    figures = paired_verdict(base, head, LIMITS)
    assert figures is not None and figures["verdict"] == "faster"


def test_one_pair_on_the_wrong_side_blocks_alpha_with_seven_pairs() -> None:
    base, head = paired_rows(DRIFT, 1.10, 0, pair_noise=0.0)
    b = [float(x) for x in base.samples_s]
    # The first head round a little faster than its partner (the smallest |log ratio|, rank 1):
    # 6 of 7 pairs slower, W+ = 27, p = 2/128 > 0.01.
    rounds = list(head.samples_round)
    h = [s * (0.9 if r == 0 else 1.0) for s, r in zip(head.samples_s, rounds, strict=True)]
    head = Row(CASE, status="ok", samples_s=h, samples_round=rounds, rounds=7, calls_per_sample=10)
    base = Row(CASE, status="ok", samples_s=b, samples_round=list(base.samples_round), rounds=7, calls_per_sample=10)
    figures = paired_verdict(base, head, LIMITS)
    assert figures is not None and figures["verdict"] == "same"
    assert figures["p_value"] == pytest.approx(2 / 128)
    assert "beyond the threshold but p" in figures["note"]


def test_too_few_pairs_need_every_pair_beyond_the_threshold() -> None:
    base, head = paired_rows(DRIFT[:5], 1.10, 1)
    figures = paired_verdict(base, head, LIMITS)
    assert figures is not None and figures["verdict"] == "slower"
    assert "7 pairs can" in figures["note"] and "every pair must lie beyond" in figures["note"]
    base, head = paired_rows(DRIFT[:5], 1.04, 1, pair_noise=0.0)
    figures = paired_verdict(base, head, LIMITS)
    assert figures is not None and figures["verdict"] == "same"


def test_rows_that_do_not_pair_fall_back() -> None:
    base, _ = paired_rows(DRIFT, 1.0, 0)
    _, head = paired_rows(DRIFT[:5], 1.0, 0)
    assert paired_verdict(base, head, LIMITS) is None


def test_signed_rank_statistics() -> None:
    assert min_pairs(0.01) == 7 and min_pairs(0.05) == 5
    assert min_signed_rank_p(7) == pytest.approx(1 / 128)
    assert signed_rank_p([1.1] * 7, "greater") == pytest.approx(1 / 128)
    assert signed_rank_p([0.9] * 7, "greater") == pytest.approx(1.0)
    assert signed_rank_p([1.0, 1.0], "greater") == 1.0  # no pair carries a sign
    assert list(pair_ratios([1.0, 2.0, 0.0], [1.5, 2.0, 1.0])) == [1.5, 1.0]


def test_only_the_two_sides_of_one_ab_job_are_paired() -> None:
    job = {"job": "j1", "design": "ABBA"}
    assert interleaved({"ab": {"side": "base", **job}}, {"ab": {"side": "head", **job}})
    assert not interleaved({"ab": {**job}}, {"ab": {**job, "job": "j2"}})
    assert not interleaved({}, {})
    assert not interleaved({"ab": {"job": "j1"}}, {"ab": {"job": "j1"}})  # older ab files: no design recorded
    base, head = paired_rows(DRIFT, 1.10, 0)
    (apart,) = compare_rows([base], [head]).cases
    (paired,) = compare_rows([base], [head], base_meta={"ab": job}, head_meta={"ab": job}).cases
    assert apart.verdict == "same" and paired.verdict == "slower"
    assert "pairs" not in apart.note


def test_the_warning_counts_pairs_for_ab() -> None:
    assert rounds_warning(7, 0.01, paired=True) == ""
    assert "5 interleaved pairs cannot reach alpha 0.01" in rounds_warning(5, 0.01, paired=True)
    assert rounds_warning(5, 0.01) == ""  # unpaired: 5 a side reach 0.01


def lockstep_rows(slowdown: float, seed: int, rounds: int = 7, samples: int = 30) -> tuple[Row, Row]:
    """Base and head rows measured in lockstep on a machine whose speed jumps *within* each round
    between two levels 1.8x apart (as one NumPy worker's did on the project's VM): sample ``k`` of
    both sides shares the level of that moment."""
    rng = np.random.default_rng(seed)
    sides: list[list[Row]] = [[], []]
    for _ in range(rounds):
        levels = np.where(rng.random(samples) < 0.5, 1.0, 1.8)
        for side, scale in enumerate((1.0, slowdown)):
            s = 1e-4 * scale * levels * (1 + 0.01 * rng.standard_normal(samples))
            sides[side].append(Row(CASE, status="ok", samples_s=[float(v) for v in s], calls_per_sample=10))
    return merge_rows(sides[0]), merge_rows(sides[1])


@pytest.mark.parametrize("seed", range(5))
def test_lockstep_pairs_samples_so_speed_jumps_within_a_round_cancel(seed: int) -> None:
    base, head = lockstep_rows(1.10, seed)
    stepped = paired_verdict(base, head, LIMITS, "lockstep")
    assert stepped is not None and stepped["verdict"] == "slower", stepped
    assert 1.08 < stepped["ratio"] < 1.12 and stepped["p_value"] <= 0.01 and stepped["note"] == ""
    aa_base, aa_head = lockstep_rows(1.0, seed + 100)
    same = paired_verdict(aa_base, aa_head, LIMITS, "lockstep")
    assert same is not None and same["verdict"] == "same" and abs(same["ratio"] - 1) < 0.02


def test_lockstep_ratios_need_equal_samples_in_every_round() -> None:
    b = [np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0])]
    assert list(lockstep_ratios(b, [2 * x for x in b])) == [2.0, 2.0]  # type: ignore[arg-type]
    assert lockstep_ratios(b, [np.array([1.0, 2.0]), np.array([1.0, 1.0])]) is None
    assert lockstep_ratios(b, b[:1]) is None
    base, head = lockstep_rows(1.10, 0)
    short = Row(CASE, status="ok", samples_s=list(head.samples_s[:-1]), samples_round=list(head.samples_round[:-1]))
    assert paired_verdict(base, short, LIMITS, "lockstep") is None  # then compare falls back to the rounds rule


def test_a_lockstep_job_is_paired_as_lockstep() -> None:
    job = {"job": "j1", "design": "lockstep"}
    assert interleaved({"ab": job}, {"ab": job}) == "lockstep"
    assert interleaved({"ab": job}, {"ab": {**job, "design": "ABBA"}}) == ""
    assert interleaved({"ab": {**job, "design": "other"}}, {"ab": {**job, "design": "other"}}) == ""
    base, head = lockstep_rows(1.10, 1)
    (case,) = compare_rows([base], [head], base_meta={"ab": job}, head_meta={"ab": job}).cases
    assert case.verdict == "slower"


def test_one_slow_process_cannot_veto_a_verdict_the_other_pairs_agree_on() -> None:
    # Eight lockstep pairs of a 10% slowdown; in one, the base process was slow all its life
    # (1.65x its partner, as about 4% of NumPy cumsum processes were on the project's VM).
    q = [1.10, 1.11, 1.09, 1.10, 1 / 1.5, 1.12, 1.10, 1.09]
    judged, aside = set_aside_farthest(q, 0.01)
    assert aside == pytest.approx(1 / 1.5) and len(judged) == 7 and np.all(judged > 1)
    assert signed_rank_p(judged, "greater") == pytest.approx(1 / 128)
    assert signed_rank_p(q, "greater") > 0.05  # judged on all eight, the one process vetoes it
    # With 7 pairs none is set aside (6 cannot reach 0.01); with a laxer alpha, 6 pairs can.
    assert set_aside_farthest(q[:7], 0.01)[1] is None
    assert set_aside_farthest(q[:7], 0.02)[1] == pytest.approx(1 / 1.5)
    # Two such processes still block it: the rule sets one aside, not every inconvenient pair.
    two = [*q[:3], 1 / 1.5, 1 / 1.6, *q[5:]]
    kept, _ = set_aside_farthest(two, 0.01)
    assert signed_rank_p(kept, "greater") > 0.01


def test_the_largest_of_similar_pairs_stays_so_one_small_contrary_pair_cannot_veto() -> None:
    # Two 10% slowdowns from a power run (results/gatebench/power/lockstep-placed-load0.md, matrix
    # 8x128x256): one round each where the base process ran a little slow. Setting the largest
    # pair aside took the strongest pair away and left p = 2/128; judged on all eight, 2/256.
    for q in (
        [1.096, 1.119, 1.065, 0.989, 1.106, 1.092, 1.106, 1.078],
        [1.104, 1.109, 1.065, 1.085, 0.976, 1.111, 1.115, 1.071],
    ):
        judged, aside = set_aside_farthest(q, 0.01)
        assert aside is None and len(judged) == 8
        assert signed_rank_p(judged, "greater") == pytest.approx(2 / 256)
        assert signed_rank_p(np.delete(q, np.argmax(np.abs(np.log(q)))), "greater") > 0.01
    # The farthest pair goes only when it lies beyond OUTLIER_FACTOR times the median distance.
    far = np.array([1.10] * 7 + [1.10 ** (OUTLIER_FACTOR * 1.01)])
    assert set_aside_farthest(far, 0.01)[1] == pytest.approx(far[-1])
    far[-1] = 1.10 ** (OUTLIER_FACTOR * 0.99)
    assert set_aside_farthest(far, 0.01)[1] is None


def test_setting_the_farthest_pair_aside_keeps_the_test_exact_under_no_change() -> None:
    """Under "no difference" (sign-symmetric pairs), the false alarm rate stays at or below alpha."""
    rng = np.random.default_rng(21)
    alarms = 0
    trials = 4000
    for _ in range(trials):
        logs = rng.standard_t(2, 8) * 0.05  # heavy tails: the case the rule is for
        kept, _ = set_aside_farthest(np.exp(logs), 0.01)
        alarms += signed_rank_p(kept, "greater") <= 0.01
    assert alarms / trials <= 0.01 + 3 * (0.01 * 0.99 / trials) ** 0.5  # 1/128 = 0.0078 expected


def test_eight_pairs_with_one_wild_base_process_are_slower_with_the_pair_named() -> None:
    base, head = lockstep_rows(1.10, 3, rounds=8)
    rounds = round_samples(base)
    rounds[4] = rounds[4] * 1.65  # the fifth base process ran slow all its life
    base = Row(
        CASE, status="ok", samples_s=[float(v) for r in rounds for v in r], samples_round=list(base.samples_round)
    )
    figures = paired_verdict(base, head, LIMITS, "lockstep")
    assert figures is not None and figures["verdict"] == "slower", figures
    assert "outlying pair (0.66" in figures["note"] and "set aside" in figures["note"]
