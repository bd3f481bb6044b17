"""compare: verdicts, machines, exit codes, the three renderings, scaling changes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from suite.cli import main
from suite.track import render
from suite.track.compare import CompareError, compare_rows, timing_verdict
from suite.track.config import CompareConfig, Thresholds
from tests.stored_runs import config_file, meta, row, run_pair, samples, write_run

# -- verdicts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factor", "verdict"),
    [(1.25, "slower"), (1.10, "slower"), (0.80, "faster"), (1.0, "same"), (1.02, "same"), (0.98, "same")],
)
def test_timing_verdicts_on_known_differences(factor: float, verdict: str) -> None:
    figures = timing_verdict(samples(1.0, seed=3), samples(factor, seed=4), Thresholds(0.05, 0.01))
    assert figures["verdict"] == verdict
    assert figures["ratio"] == pytest.approx(factor, rel=0.03)
    if verdict != "same":
        assert figures["p_value"] < 1e-6


def test_a_large_difference_on_too_few_samples_is_not_significant() -> None:
    # 3 against 3 samples: the smallest two-sided p the test can give is about 0.08.
    figures = timing_verdict(samples(1.0, n=3, seed=5), samples(1.5, n=3, seed=6), Thresholds(0.05, 0.01))
    assert figures["ratio"] > 1.4
    assert figures["p_value"] > 0.05
    assert figures["verdict"] == "same"
    assert "not significant" in figures["note"]


def test_a_significant_change_below_the_threshold_is_same() -> None:
    base, head = samples(1.0, n=200, seed=8, sigma=0.005), samples(1.03, n=200, seed=9, sigma=0.005)
    figures = timing_verdict(base, head, Thresholds(0.05, 0.01))
    assert figures["p_value"] < 1e-10
    assert figures["verdict"] == "same"
    assert timing_verdict(base, head, Thresholds(0.02, 0.01))["verdict"] == "slower"


def test_correctness_verdicts() -> None:
    base = [
        row(T=1),
        row(T=2, status="mismatch"),
        row(T=3, status="error"),
        row(T=4),
        row(T=5),
        row(T=6, status="skipped"),
        row(T=7),
    ]
    head = [
        row(T=1, status="mismatch"),
        row(T=2),
        row(T=3, status="timeout"),
        row(T=4, status="skipped"),
        row(T=6, status="error"),
        row(T=7),
        row(T=8),
    ]
    verdicts = {c.row.T: c.verdict for c in compare_rows(base, head).cases}
    assert verdicts == {
        1: "broken",
        2: "fixed",
        3: "failing",
        4: "skipped",
        5: "gone",
        6: "broken",
        7: "same",
        8: "new",
    }
    cmp = compare_rows(base, head)
    assert cmp.regressed and cmp.exit_code() == 1
    assert compare_rows(base[1:2], head[1:2]).exit_code() == 0  # fixed is no regression


# -- machines ---------------------------------------------------------------------------------


def test_other_machines_are_refused_unless_allowed() -> None:
    with pytest.raises(CompareError, match="different machines"):
        compare_rows([row()], [row()], base_meta=meta("aaa"), head_meta=meta("bbb"))
    cmp = compare_rows([row()], [row()], base_meta=meta("aaa"), head_meta=meta("bbb"), allow_other_machine=True)
    assert any("different machines" in w for w in cmp.warnings)
    assert "different machines" in render.render_markdown(cmp)
    unknown = compare_rows([row()], [row()], base_meta={}, head_meta=meta())
    assert "unknown for base" in unknown.warnings[0]


def test_cli_machine_mismatch_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = write_run(tmp_path / "base", [row()], meta("aaa"))
    head = write_run(tmp_path / "head", [row()], meta("bbb"))
    assert main(["compare", str(base), str(head), "--config", str(config_file(tmp_path, ""))]) == 2
    assert "refusing to compare runs from different machines" in capsys.readouterr().err
    argv = ["compare", str(base), str(head), "--allow-other-machine", "--config", str(config_file(tmp_path, ""))]
    assert main(argv) == 0
    assert "different machines" in capsys.readouterr().out


# -- the command line ---------------------------------------------------------------------------


def test_cli_exit_codes_and_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    cfg = str(config_file(tmp_path, ""))
    base, head = run_pair(tmp_path, 1.3)
    out = tmp_path / "cmp"
    assert main(["compare", str(base), str(head), "--out", str(out), "--config", cfg]) == 1
    printed = capsys.readouterr().out
    assert printed.index("### Regressions") < printed.index("<details>")
    assert "numpy:cumsum:4x64x8" in printed.split("<details>")[0]
    assert summary.read_text().startswith("earlier step\n## causal-bench compare: regression")
    doc = json.loads((out / "compare.json").read_text())
    assert doc["regressed"] is True
    assert doc["counts"] == {"slower": 1, "same": 1}
    slower = doc["cases"][0]
    assert slower["verdict"] == "slower"
    assert slower["ratio"] == pytest.approx(1.3, rel=0.03)
    assert slower["ci_low"] > 1.2
    csv_lines = (out / "compare.csv").read_text().splitlines()
    assert csv_lines[0].startswith("key,backend,form,size")
    assert csv_lines[1].split(",")[7] == "slower"
    assert (out / "compare.md").read_text() == printed

    faster_base, faster_head = run_pair(tmp_path / "f", 0.7)
    assert main(["compare", str(faster_base), str(faster_head), "--config", cfg]) == 0
    printed = capsys.readouterr().out
    assert printed.index("### Improvements") < printed.index("<details>")


@pytest.mark.parametrize(
    "argv",
    [
        ["compare", "{tmp}/nowhere", "{tmp}/base"],
        ["compare", "{tmp}/base", "{tmp}/base", "--threshold", "-1"],
        ["compare", "{tmp}/base", "{tmp}/base", "--alpha", "1.5"],
        ["compare", "{tmp}/base", "{tmp}/base", "--config", "{tmp}/missing.toml"],
        ["compare", "{tmp}/base"],
        ["export", "{tmp}/base", "--format", "csv"],
        ["history", "{tmp}/nowhere"],
    ],
)
def test_cli_bad_arguments_exit_2(tmp_path: Path, argv: list[str], capsys) -> None:
    write_run(tmp_path / "base", [row()])
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


def test_unreadable_results_file_exit_2(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "causal-bench/results", "schema_version": 1, "rows": [')
    assert main(["compare", str(bad), str(bad)]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_a_form_whose_scaling_exponent_changed_gets_a_line_in_the_comparison():
    Ts = (64, 128, 256, 512)
    # base grows like T, head like T^2 (same time at T=64): a new quadratic term.
    base = [row(T / 64, T=T, seed=i) for i, T in enumerate(Ts)]
    head = [row((T / 64) ** 2, T=T, seed=10 + i) for i, T in enumerate(Ts)]
    cmp = compare_rows(base, head, CompareConfig(), meta(), meta())
    assert len(cmp.scaling) == 1
    line = cmp.scaling[0]
    assert "numpy" in line and "cumsum" in line and "k 1.00" in line and "-> 2.00" in line
    text = render.render_markdown(cmp)
    assert "### Scaling changes (1)" in text and line in text
    assert json.loads(render.render_json(cmp))["scaling_changes"] == [line]
    # The same scaling on both sides says nothing.
    assert compare_rows(base, base, CompareConfig(), meta(), meta()).scaling == []


# -- the interval decides ----------------------------------------------------------------------


def _bimodal(low: float, n: int, seed: int) -> list[float]:
    """Half the samples near ``low`` x, half (plus one) at 2x: a median that can land on either mode."""
    return samples(low, n=n // 2, seed=seed) + samples(2.0, n=n // 2 + 1, seed=seed + 1)


def test_ratio_and_test_say_slower_but_the_interval_reaches_1_so_same() -> None:
    # Head's median sits on the slow mode (ratio ~1.9) and the test is significant, but a
    # resampled median lands on the fast mode often enough that the interval reaches 1.
    base, head = samples(1.0, n=400, seed=1), _bimodal(0.97, 400, seed=2)
    limits = Thresholds(0.05, 0.01)
    slower = timing_verdict(base, head, limits)
    assert slower["ratio"] > 1.5 and slower["p_value"] < 0.01
    assert slower["ci_low"] <= 1 < slower["ci_high"]
    assert slower["verdict"] == "same"
    faster = timing_verdict(head, base, limits)  # the mirror image
    assert faster["ratio"] < 1 / 1.5 and faster["p_value"] < 0.01
    assert faster["ci_low"] < 1 <= faster["ci_high"]
    assert faster["verdict"] == "same"


@pytest.mark.parametrize(("threshold", "verdict"), [(0.24, "slower"), (0.26, "same")])
def test_the_threshold_is_a_strict_bound_on_the_ratio(threshold: float, verdict: str) -> None:
    figures = timing_verdict(samples(1.0, n=200, seed=3), samples(1.25, n=200, seed=4), Thresholds(threshold, 0.01))
    assert figures["ratio"] == pytest.approx(1.25, rel=0.01)
    assert figures["verdict"] == verdict
    mirror = timing_verdict(samples(1.25, n=200, seed=4), samples(1.0, n=200, seed=3), Thresholds(threshold, 0.01))
    assert mirror["verdict"] == {"slower": "faster", "same": "same"}[verdict]


@pytest.mark.parametrize(("alpha", "verdict"), [(0.01, "slower"), (0.005, "same")])
def test_alpha_decides_a_borderline_p_value(alpha: float, verdict: str) -> None:
    # Ten evenly spread samples, head shifted by a quarter: ratio 1.20, CI above 1, p = 0.0051.
    base = [1.0 + 0.05 * i for i in range(10)]
    head = [v + 0.25 for v in base]
    figures = timing_verdict(base, head, Thresholds(0.05, alpha))
    assert figures["ratio"] > 1.05 and figures["ci_low"] > 1
    assert 0.005 < figures["p_value"] < 0.01
    assert figures["verdict"] == verdict
    mirror = timing_verdict(head, base, Thresholds(0.05, alpha))
    assert mirror["verdict"] == {"slower": "faster", "same": "same"}[verdict]


# -- cases that stopped running fail the gate ------------------------------------------------------


def test_cases_ok_in_base_but_gone_or_skipped_in_head_fail_unless_allowed() -> None:
    base = [row(T=1), row(T=2), row(T=3), row(T=4, status="skipped"), row(T=5, status="error")]
    head = [row(T=1), row(T=2, status="skipped"), row(T=4), row(T=5, status="skipped")]
    cmp = compare_rows(base, head)
    assert not cmp.regressed
    assert sorted(c.row.T for c in cmp.missing) == [2, 3]
    assert cmp.exit_code() == 1
    assert any("2 cases ok in the base did not run in the head (1 gone, 1 skipped)" in w for w in cmp.warnings)
    assert "cases missing" in render.render_markdown(cmp).splitlines()[0]
    allowed = compare_rows(base, head, allow_missing=True)
    assert allowed.exit_code() == 0
    assert any("allowed (--allow-missing)" in w for w in allowed.warnings)
    # A case not ok in the base (skipped or failed there) may vanish: it never ran.
    assert compare_rows(base[3:], head[2:3]).exit_code() == 0


def test_cli_fails_on_missing_cases_and_allow_missing_passes(tmp_path: Path, capsys) -> None:
    cfg = str(config_file(tmp_path, ""))
    base = write_run(tmp_path / "base", [row(T=1, seed=1), row(T=2, seed=2)])
    head = write_run(tmp_path / "head", [row(T=1, seed=3), row(T=2, status="skipped")])
    assert main(["compare", str(base), str(head), "--config", cfg]) == 1
    out = capsys.readouterr().out
    assert "1 cases ok in the base did not run in the head (0 gone, 1 skipped)" in out
    assert main(["compare", str(base), str(head), "--config", cfg, "--allow-missing"]) == 0


# -- the bounds of each condition ---------------------------------------------------------------


def test_each_condition_is_strict_at_its_bound() -> None:
    limits = Thresholds(0.05, 0.01)
    # The ratio exactly at 1 + threshold (and at its inverse) is not beyond it.
    at = timing_verdict([1.0] * 20, [1.05] * 20, limits)
    assert at["ratio"] == 1 + limits.threshold and at["p_value"] < 0.01 and at["ci_low"] > 1
    assert at["verdict"] == "same"
    mirror = timing_verdict([1.05] * 20, [1.0] * 20, limits)
    assert mirror["ratio"] == 1 / (1 + limits.threshold) and mirror["verdict"] == "same"
    # An interval whose bound is exactly 1 does not exclude 1.
    base = [1.0 + 0.05 * i for i in range(10)]
    head = [v + 0.2 for v in base]
    edge = timing_verdict(base, head, Thresholds(0.05, 0.05))
    assert edge["ratio"] > 1.05 and edge["p_value"] < 0.05 and edge["ci_low"] == 1.0
    assert edge["verdict"] == "same"
    edge_mirror = timing_verdict(head, base, Thresholds(0.05, 0.05))
    assert edge_mirror["ci_high"] == 1.0 and edge_mirror["verdict"] == "same"
    # p exactly at alpha is not below it.
    p = timing_verdict(base, [v + 0.25 for v in base], limits)["p_value"]
    assert timing_verdict(base, [v + 0.25 for v in base], Thresholds(0.05, p))["verdict"] == "same"
    assert timing_verdict([v + 0.25 for v in base], base, Thresholds(0.05, p))["verdict"] == "same"
    assert timing_verdict(base, [v + 0.25 for v in base], Thresholds(0.05, p * 1.0001))["verdict"] == "slower"


def test_degenerate_samples_are_same_with_a_note() -> None:
    limits = Thresholds(0.05, 0.01)
    none = timing_verdict([], samples(2.0), limits)
    assert none["verdict"] == "same" and none["note"] == "no samples to compare"
    assert timing_verdict(samples(1.0), [math.nan], limits)["note"] == "no samples to compare"
    for one_side in (([1.0], samples(2.0)), (samples(1.0), [2.0])):
        few = timing_verdict(*one_side, limits)
        assert few["verdict"] == "same" and few["note"] == "too few samples for a test"
    two = timing_verdict([1.0, 1.01], [2.0, 2.01], limits)  # two each: a test, not significant
    assert two["note"].startswith("beyond the threshold but not significant")
    zero = timing_verdict([0.0] * 5, [1.0] * 5, limits)  # a zero base median has no ratio
    assert math.isnan(zero["ratio"]) and zero["verdict"] == "same"
    quiet = timing_verdict(samples(1.0, seed=1), samples(1.0, seed=2), limits)
    assert quiet["verdict"] == "same" and quiet["note"] == ""


def test_each_verdict_keeps_its_key_rows_and_why() -> None:
    base = [row(T=1), row(T=2, status="mismatch"), row(T=3, status="error"), row(T=4), row(T=5, status="skipped")]
    head = [row(T=1, status="timeout"), row(T=2), row(T=3, status="skipped"), row(T=4, status="skipped"), row(T=5)]
    base.append(row(T=6, seed=1))
    head.append(row(T=6, seed=2))  # both timed: a timing verdict
    cases = {c.row.T: c for c in compare_rows(base, head, allow_missing=True).cases}
    for b, h in zip(base, head, strict=True):
        c = cases[b.T]
        assert c.key == b.key and c.base is b and c.head is h
    assert cases[1].verdict == "broken" and cases[1].note == "ok -> timeout: it went timeout"
    assert cases[2].verdict == "fixed" and cases[2].note == "mismatch -> ok"
    # Failed in the base, skipped in the head: a skip, not a failure carried on.
    assert cases[3].verdict == "skipped" and cases[3].note == "error -> skipped: it went skipped"
    assert cases[4].verdict == "skipped" and cases[4].note == "head skipped: it went skipped"
    assert cases[5].verdict == "skipped" and cases[5].note == "base skipped: it went skipped"


def test_an_unstable_side_is_noted() -> None:
    base, head = row(seed=1), row(seed=2)
    head.unstable = True
    (case,) = compare_rows([base], [head]).cases
    assert case.verdict == "same" and case.note.endswith("unstable (IQR within a process > 10% of median)")
    (steady,) = compare_rows([base], [row(seed=2)]).cases
    assert "unstable" not in steady.note


def test_a_case_is_judged_by_its_backend_and_form_thresholds() -> None:
    base, head = [row(1.0, seed=1)], [row(1.3, seed=2)]
    assert compare_rows(base, head).cases[0].verdict == "slower"
    by_backend = CompareConfig(backend={"numpy": {"threshold": 0.5}})
    assert compare_rows(base, head, by_backend).cases[0].verdict == "same"
    assert compare_rows(base, head, by_backend).cases[0].threshold == 0.5
    by_form = CompareConfig(form={"cumsum": {"threshold": 0.5}})
    assert compare_rows(base, head, by_form).cases[0].verdict == "same"
    other = CompareConfig(backend={"torch": {"threshold": 0.5}}, form={"matrix": {"threshold": 0.5}})
    assert compare_rows(base, head, other).cases[0].verdict == "slower"


def test_the_missing_warning_says_whether_the_gate_fails() -> None:
    base, head = [row(T=1), row(T=2)], [row(T=1)]
    (warning,) = [w for w in compare_rows(base, head).warnings if "did not run" in w]
    assert warning.endswith(": the gate fails; pass --allow-missing if that is meant")
    (allowed,) = [w for w in compare_rows(base, head, allow_missing=True).warnings if "did not run" in w]
    assert allowed.endswith(": allowed (--allow-missing)")
