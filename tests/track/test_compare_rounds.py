"""Compare at the round level: seeded synthetic rounds with a shift between rounds; contention."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from suite.cases import Case
from suite.cli import main
from suite.results import Row, write_json
from suite.rounds import merge_rows
from suite.track.compare import CompareError, compare_rows, timing_verdict
from suite.track.config import CompareConfig, Thresholds

CASE = Case("numpy", "cumsum", 8, 256, 64)


def rounds_row(scale: float, seed: int, n_rounds: int = 5, per_round: int = 30, width: float = 0.03, **fields) -> Row:
    """A pooled row whose rounds each wander by a seeded +-``width`` and whose samples carry 1% noise."""
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(n_rounds):
        shift = 1 + rng.uniform(-width, width)
        samples = 1e-4 * scale * shift * (1 + 0.01 * rng.standard_normal(per_round))
        parts.append(Row(CASE, status="ok", samples_s=[float(s) for s in samples], calls_per_sample=10, **fields))
    return merge_rows(parts)


# Seeds whose A/A rounds wander +-10% so that the pooled samples differ significantly
# beyond the 5% threshold: the sample-level test calls them slower or faster.
AA_SEEDS = (2, 6, 10, 14, 18)


@pytest.mark.parametrize("seed", AA_SEEDS)
def test_a_a_with_a_shift_between_rounds_is_same(seed: int) -> None:
    base, head = rounds_row(1.0, seed, width=0.1), rounds_row(1.0, 100 + seed, width=0.1)
    pooled = timing_verdict(base.samples_s, head.samples_s, Thresholds(0.05, 0.01))
    assert pooled["verdict"] in ("slower", "faster")  # what a test on pooled samples says
    (case,) = compare_rows([base], [head]).cases
    assert case.verdict == "same", case
    assert "rounds 5 and 5" in case.note


@pytest.mark.parametrize("seed", range(6))
def test_a_true_ten_percent_slowdown_is_slower(seed: int) -> None:
    # Rounds within +-2%: every head round (>= 1.078) lies beyond every base round (<= 1.02) by 5%.
    base, head = rounds_row(1.0, seed, width=0.02), rounds_row(1.10, 100 + seed, width=0.02)
    cmp = compare_rows([base], [head])
    (case,) = cmp.cases
    assert case.verdict == "slower", case
    assert case.ci_low > 1 and 1.03 < case.ratio < 1.17
    assert cmp.exit_code() == 1


def test_contended_rows_are_inconclusive_and_the_gate_counts_them() -> None:
    base = rounds_row(1.0, 1)
    head = rounds_row(1.5, 2, contended=True, foreign_cpu=1.2)
    cmp = compare_rows([base], [head])
    (case,) = cmp.cases
    assert case.verdict == "inconclusive" and "contention in the head" in case.note
    assert cmp.exit_code() == 0
    assert any(w.startswith("1 cases inconclusive") for w in cmp.warnings)


def test_single_rounds_fall_back_to_samples_with_a_note() -> None:
    base = Row(CASE, status="ok", samples_s=[1.0] * 5 + [1.01] * 5, rounds=1, samples_round=[0] * 10)
    head = Row(CASE, status="ok", samples_s=[1.0] * 5 + [1.01] * 5, rounds=1, samples_round=[0] * 10)
    (case,) = compare_rows([base], [head]).cases
    assert case.verdict == "same" and "variance between processes is not tested" in case.note


def test_an_old_file_against_rounds_is_refused() -> None:
    old = Row(CASE, status="ok", samples_s=[1.0, 1.1, 1.2])  # schema 2: no round information
    with pytest.raises(CompareError, match="the base is an old results file without rounds"):
        compare_rows([old], [rounds_row(1.0, 3)])


def test_cli_old_against_new_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    write_json(tmp_path / "old.json", {}, [Row(CASE, status="ok", samples_s=[1.0, 1.1, 1.2])])
    write_json(tmp_path / "new.json", {}, [rounds_row(1.0, 4)])
    assert main(["compare", str(tmp_path / "old.json"), str(tmp_path / "new.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: the base is an old results file")


def test_the_round_level_figures_reach_the_json(tmp_path: Path, capsys) -> None:
    write_json(tmp_path / "base.json", {}, [rounds_row(1.0, 5)])
    write_json(tmp_path / "head.json", {}, [rounds_row(1.1, 6)])
    code = main(["compare", str(tmp_path / "base.json"), str(tmp_path / "head.json"), "--out", str(tmp_path / "c")])
    assert code == 1
    (case,) = json.loads((tmp_path / "c" / "compare.json").read_text())["cases"]
    assert case["verdict"] == "slower" and case["p_value"] < 0.01


# -- the round-level rule: every round beyond every round, exact rank p, counted rows -------------


def row_of_rounds(rounds: list[list[float]], case: Case = CASE) -> Row:
    return merge_rows([Row(case, status="ok", samples_s=r, calls_per_sample=1, rounds=1) for r in rounds])


def issue_rounds(us: list[float], outlier: float | None = None) -> list[list[float]]:
    """Rounds of 9 samples around each round median (us), the first round's first sample ``outlier``."""
    out = [[m * 1e-6 * (1 + d) for d in (-0.01, 0.0, 0.01) * 3] for m in us]
    if outlier is not None:
        out[0][0] = outlier * 1e-6
    return out


def test_issue_21_rounds_that_do_not_overlap_are_slower() -> None:
    # Base 85, 88, 94 us against head 110, 113, 110 us: judged `same` at p = 0.061 by the bootstrap.
    base, head = row_of_rounds(issue_rounds([85, 88, 94])), row_of_rounds(issue_rounds([110, 113, 110]))
    (case,) = compare_rows([base], [head]).cases
    assert case.verdict == "slower", case
    assert case.p_value == pytest.approx(0.05)  # the smallest exact p of 3 against 3
    assert "too few to reach alpha 0.01" in case.note and "5 a side can" in case.note
    (mirror,) = compare_rows([head], [base]).cases
    assert mirror.verdict == "faster"


def test_a_lone_slow_warm_up_sample_does_not_blur_the_separation() -> None:
    # A 400 us first sample in the head's first round: the round's median moves by one rank only.
    base = row_of_rounds(issue_rounds([85, 88, 94, 86, 90]))
    head = row_of_rounds(issue_rounds([110, 113, 110, 111, 112], outlier=400))
    (case,) = compare_rows([base], [head]).cases
    assert case.verdict == "slower" and case.p_value == pytest.approx(1 / 252) and case.note == ""
    # The same outlier in the base's rounds: still nothing moves.
    base_out = row_of_rounds(issue_rounds([85, 88, 94, 86, 90], outlier=400))
    assert compare_rows([base_out], [head]).cases[0].verdict == "slower"


def test_one_overlapping_round_is_same_with_a_note() -> None:
    base = row_of_rounds(issue_rounds([85, 88, 94, 86, 90]))
    head = row_of_rounds(issue_rounds([110, 113, 110, 111, 95]))  # 95 < 94 * 1.05
    (case,) = compare_rows([base], [head]).cases
    assert case.verdict == "same" and "the rounds overlap" in case.note
    assert case.ratio == pytest.approx(110 / 88, rel=1e-3)  # medians of round medians


def test_counted_rows_are_judged_by_the_count_threshold_alone() -> None:
    counted = Case("numpy", "cumsum", 8, 256, 64, metric="instructions")
    base = Row(counted, status="ok", instructions=1_000_000.0)
    for head_count, verdict in ((1_006_000.0, "slower"), (1_004_000.0, "same"), (994_000.0, "faster")):
        head = Row(counted, status="ok", instructions=head_count, contended=True)  # contention does not matter
        (case,) = compare_rows([base], [head]).cases
        assert case.verdict == verdict and case.ratio == pytest.approx(head_count / 1e6)
    config = CompareConfig(Thresholds(count_threshold=0.01))
    head = Row(counted, status="ok", instructions=1_006_000.0)
    assert compare_rows([base], [head], config).cases[0].verdict == "same"
    assert compare_rows([base], [Row(counted, status="ok")]).cases[0].note == "no counts to compare"


def test_drifted_rows_are_inconclusive_like_contended_ones() -> None:
    base = rounds_row(1.0, 1, drifted=True, canary_copy=0.8)
    head = rounds_row(1.5, 2)
    cmp = compare_rows([base], [head])
    (case,) = cmp.cases
    assert case.verdict == "inconclusive" and "drifted (canary) in the base" in case.note
    assert cmp.exit_code() == 0
    assert any(w.startswith("1 cases inconclusive") for w in cmp.warnings)
    assert case.to_dict()["base_drifted"] is True and case.to_dict()["head_drifted"] is False


def test_compare_shows_both_spreads_of_each_side_in_markdown_and_csv() -> None:
    from suite.format import format_spread
    from suite.track import render

    base, head = rounds_row(1.0, 1, width=0.1), rounds_row(1.0, 2, width=0.02)
    (case,) = compare_rows([base], [head]).cases
    d = case.to_dict()
    assert d["base_round_spread"] == pytest.approx(base.round_spread) and base.round_spread > 0.05
    assert d["head_within_spread"] == pytest.approx(head.within_spread) and 0 < head.within_spread < 0.05
    cmp = compare_rows([base], [head])
    md = render.render_markdown(cmp)
    header = next(line for line in md.splitlines() if line.startswith("| case"))
    assert "spread base → head" in header
    line = next(line for line in md.splitlines() if "numpy:cumsum" in line)
    cell = line.split(" | ")[header.split(" | ").index("spread base → head")]
    spreads = [format_spread(r.within_spread, r.round_spread) for r in (base, head)]
    assert cell == " → ".join(spreads) and spreads[0].endswith(f"/{base.round_spread:.1%}")
    rows = render.render_csv(cmp).splitlines()
    cols = rows[0].split(",")
    values = dict(zip(cols, rows[1].split(","), strict=True))
    assert float(values["base_round_spread"]) == pytest.approx(base.round_spread)
    assert float(values["head_within_spread"]) == pytest.approx(head.within_spread)
