"""compare: verdicts, machines, exit codes, the three renderings, scaling changes."""

from __future__ import annotations

import json
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
