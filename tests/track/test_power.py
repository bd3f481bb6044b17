"""The power table: comparisons from disjoint rounds, judged by the gate's rule, binned by measured slowdown."""

from __future__ import annotations

import pytest

from suite.cases import Case
from suite.track.config import Thresholds
from suite.track.power import (
    Counted,
    Judged,
    Round,
    aa_sets,
    bin_label,
    binned_table,
    count_table,
    detection_sets,
    form_table,
    judge,
    scenario_table,
)

CASE = Case("numpy", "cumsum", 8, 128, 32)


def rounds(medians: list[float], contended: bool = False) -> list[Round]:
    return [Round((m * 0.99, m, m * 1.01), contended) for m in medians]


def test_aa_sets_are_disjoint_and_alternate_within_a_window() -> None:
    rs = rounds([float(i) for i in range(1, 24)])  # 23 rounds: two windows of 10, three left over
    sets = aa_sets(rs, 5)
    assert len(sets) == 2
    assert [r.samples[1] for r in sets[0][0]] == [1, 3, 5, 7, 9] and [r.samples[1] for r in sets[0][1]] == [
        2,
        4,
        6,
        8,
        10,
    ]
    used = [r.samples[1] for a, b in sets for r in (*a, *b)]
    assert len(used) == len(set(used)) == 20


def test_detection_sets_pair_the_jth_groups() -> None:
    sets = detection_sets(rounds([1.0] * 12), rounds([2.0] * 7), 3)
    assert len(sets) == 2 and all(len(b) == len(h) == 3 for b, h in sets)


def test_judge_uses_the_gate_rule_and_keeps_the_measured_ratio() -> None:
    limits = Thresholds(0.05, 0.01)
    sep = judge(
        "10% planted", CASE, [(rounds([1.0, 1.01, 0.99, 1.0, 1.02]), rounds([1.2, 1.21, 1.19, 1.2, 1.22]))], limits
    )
    assert sep[0].verdict == "slower" and sep[0].measured == pytest.approx(1.2)
    overlap = judge("A/A", CASE, [(rounds([1.0, 1.1, 0.9]), rounds([1.05, 0.95, 1.0]))], limits)
    assert overlap[0].verdict == "same"
    busy = judge("A/A", CASE, [(rounds([1.0, 1.0], contended=True), rounds([2.0, 2.0]))], limits)
    assert busy[0].verdict == "inconclusive"


def test_bins_and_tables_format_the_rates() -> None:
    assert (bin_label(0.97), bin_label(1.07), bin_label(1.10), bin_label(1.5)) == (
        "<1.00",
        "1.05-1.10",
        "1.10-1.15",
        ">=1.30",
    )
    judged = [Judged("A/A", "k", 1.0, "same")] * 3 + [Judged("A/A", "k", 1.0, "inconclusive")]
    judged += [Judged("10% planted", "k", 1.12, "slower"), Judged("10% planted", "k", 1.11, "same")]
    judged += [Judged("25% planted", "k", 1.26, "slower")]
    table = "\n".join(scenario_table(judged))
    assert "| A/A | 4 | 1 | 0/3 = 0.0% [0.0%, 56.1%] |" in table
    assert "| 10% planted | 2 | 0 | 1/2 = 50.0% [9.5%, 90.5%] |" in table
    binned = "\n".join(binned_table(judged))
    assert "| 1.10-1.15 | 2 | 1/2 = 50.0% [9.5%, 90.5%] |" in binned and "| 1.20-1.30 | 1 | 1/1" in binned
    assert "A/A" not in binned and "<1.00" not in binned  # planted trials only, empty bins left out


def test_count_table_counts_false_alarms_catches_and_the_agreement() -> None:
    counted = [Counted("A/A", f"k{i}", 1e6, 1e6 + i * 100) for i in range(4)]  # 0 .. 0.03%
    counted += [Counted("A/A, CPU hog on the other core", "k", 1e6, 1.0015e6, True)]
    counted += [Counted("1% planted", "k", 1e6, 1.01e6), Counted("1% planted", "j", 1e6, 1.004e6)]
    text = "\n".join(count_table(counted, 0.005))
    assert "| A/A | 4 | 0/4 = 0.0%" in text and "| 1% planted | 2 | 1/2 = 50.0%" in text
    assert "Same case counted twice: 4/5 within 0.1%, largest difference 0.1500%." in text


def test_form_table_keeps_each_form_apart() -> None:
    judged = [
        Judged("A/A", "numpy:cumsum:8x32x256:float32:ieee:normal", 1.01, "same"),
        Judged("A/A", "numpy:loop:8x32x256:float32:ieee:normal", 1.30, "slower"),
        Judged("10% planted", "numpy:cumsum:8x32x256:float32:ieee:normal", 1.12, "slower"),
        Judged("10% planted", "numpy:loop:8x32x256:float32:ieee:normal", 0.90, "same"),
        Judged("10% planted", "numpy:loop:8x128x256:float32:ieee:normal", 1.20, "inconclusive"),
    ]
    lines = form_table(judged)
    assert lines[0].startswith("| form | A/A: slower; measured ratios | 10% planted: slower")
    cumsum = next(line for line in lines if line.startswith("| cumsum"))
    loop = next(line for line in lines if line.startswith("| loop"))
    assert "0/1 = 0.0%" in cumsum and "1/1 = 100.0%" in cumsum and "1.12-1.12" in cumsum
    # the inconclusive loop trial is left out of its rate and its ratios
    assert "1/1 = 100.0%" in loop.split("|")[2] and "0/1 = 0.0%" in loop.split("|")[3]
    assert "0.90-0.90" in loop
