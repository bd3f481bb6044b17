"""compare, export, history: statistics, verdicts, thresholds, machines, exit codes, formats."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from suite import compare, export, history
from suite.__main__ import main
from suite.compare import (
    CompareConfig,
    CompareError,
    Thresholds,
    bootstrap_ratio_ci,
    compare_rows,
    load_config,
    mann_whitney_u,
    timing_verdict,
)
from suite.results import JSON_NAME, Row, write_json

MEDIAN_S = 1e-3


def samples(factor: float = 1.0, n: int = 40, seed: int = 0, sigma: float = 0.02) -> list[float]:
    """Per-call seconds around ``factor`` ms, log-normal noise of ``sigma``."""
    rng = np.random.default_rng(seed)
    return list(MEDIAN_S * factor * np.exp(rng.normal(0.0, sigma, n)))


def row(
    factor: float = 1.0,
    *,
    status: str = "ok",
    form: str = "cumsum",
    backend: str = "numpy",
    T: int = 64,
    seed: int = 0,
    n: int = 40,
) -> Row:
    s = samples(factor, n, seed) if status == "ok" else []
    return Row(
        backend=backend,
        form=form,
        B=4,
        T=T,
        C=8,
        dtype="float32",
        precision="ieee",
        input="normal",
        device="cpu",
        status=status,
        reason="" if status == "ok" else f"it went {status}",
        median_s=float(np.median(s)) if s else math.nan,
        ci_low_s=float(np.percentile(s, 40)) if s else math.nan,
        ci_high_s=float(np.percentile(s, 60)) if s else math.nan,
        iqr_s=float(np.subtract(*np.percentile(s, [75, 25]))) if s else math.nan,
        n_samples=len(s),
        calls_per_sample=10,
        samples_s=s,
        run_id="r1",
    )


def meta(fp: str = "abc123", started: str = "2026-01-01T00:00:00+00:00", run_id: str = "r") -> dict[str, Any]:
    return {
        "run_id": run_id,
        "started": started,
        "git_commit": "0123456789abcdef",
        "machine": {"fingerprint": fp, "cpu_model": "Test CPU", "cpu_count": 2},
    }


def write_run(folder: Path, rows: list[Row], m: dict[str, Any] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / JSON_NAME, m or meta(), rows)
    return folder


# -- statistics ---------------------------------------------------------------------------


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
    assert "different machines" in compare.render_markdown(cmp)
    unknown = compare_rows([row()], [row()], base_meta={}, head_meta=meta())
    assert "unknown for base" in unknown.warnings[0]


def test_cli_machine_mismatch_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = write_run(tmp_path / "base", [row()], meta("aaa"))
    head = write_run(tmp_path / "head", [row()], meta("bbb"))
    assert main(["compare", str(base), str(head), "--config", str(_config(tmp_path, ""))]) == 2
    assert "refusing to compare runs from different machines" in capsys.readouterr().err
    argv = ["compare", str(base), str(head), "--allow-other-machine", "--config", str(_config(tmp_path, ""))]
    assert main(argv) == 0
    assert "different machines" in capsys.readouterr().out


# -- the command line ---------------------------------------------------------------------------


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(text)
    return path


def _pair(tmp_path: Path, factor: float) -> tuple[Path, Path]:
    base = write_run(tmp_path / "base", [row(1.0, seed=10), row(1.0, T=128, seed=11, form="matrix")])
    head = write_run(tmp_path / "head", [row(factor, seed=12), row(1.0, T=128, seed=13, form="matrix")])
    return base, head


def test_cli_exit_codes_and_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    cfg = str(_config(tmp_path, ""))
    base, head = _pair(tmp_path, 1.3)
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

    faster_base, faster_head = _pair(tmp_path / "f", 0.7)
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


# -- thresholds from pyproject ----------------------------------------------------------------------


def test_threshold_overrides_per_backend_and_form(tmp_path: Path) -> None:
    cfg = load_config(
        _config(
            tmp_path,
            """
[tool.causal-bench.compare]
threshold = 0.05
alpha = 0.01
[tool.causal-bench.compare.backend.numpy]
threshold = 0.5
[tool.causal-bench.compare.form.matrix]
threshold = 0.2
alpha = 0.001
""",
        )
    )
    assert cfg.for_case("jax", "cumsum") == Thresholds(0.05, 0.01)
    assert cfg.for_case("numpy", "cumsum") == Thresholds(0.5, 0.01)
    assert cfg.for_case("numpy", "matrix") == Thresholds(0.2, 0.001)  # the form wins over the backend
    cli = cfg.with_cli(0.01, None)
    assert cli.for_case("numpy", "matrix") == Thresholds(0.01, 0.001)  # the command line wins over both
    assert "command line" in cli.source


def test_threshold_override_changes_the_verdict_and_exit_code(tmp_path: Path, capsys) -> None:
    base, head = _pair(tmp_path, 1.3)
    loose = _config(tmp_path, "[tool.causal-bench.compare.backend.numpy]\nthreshold = 0.5\n")
    assert main(["compare", str(base), str(head), "--config", str(loose)]) == 0
    assert "backend numpy: threshold 0.5" in capsys.readouterr().out
    assert main(["compare", str(base), str(head), "--config", str(loose), "--threshold", "0.1"]) == 1
    strict = _config(tmp_path, "[tool.causal-bench.compare]\nthreshold = 0.4\n")
    assert main(["compare", str(base), str(head), "--config", str(strict)]) == 0


def test_project_pyproject_config_is_valid() -> None:
    root = Path(__file__).resolve().parents[1]
    cfg = load_config(root / "pyproject.toml")
    assert cfg.default == Thresholds(compare.DEFAULT_THRESHOLD, compare.DEFAULT_ALPHA)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[tool.causal-bench.compare]\nthreshold = 'ten'\n", "must be a number"),
        ("[tool.causal-bench.compare]\nalpha = 1.5\n", "alpha must be in"),
        ("[tool.causal-bench.compare]\nthreshold = -0.1\n", "threshold must be"),
        ("[tool.causal-bench.compare]\ntreshold = 0.1\n", "unknown key 'treshold'"),
        ("[tool.causal-bench.compare.form.fft]\nthreshold = 0.1\n", "unknown name 'fft'"),
        ("[tool.causal-bench.compare.backend]\nnumpy = 3\n", "must be a table"),
        ("[tool.causal-bench.compare\n", "not valid TOML"),
    ],
)
def test_bad_config_is_a_usage_error(tmp_path: Path, text: str, message: str, capsys) -> None:
    base, head = _pair(tmp_path, 1.0)
    assert main(["compare", str(base), str(head), "--config", str(_config(tmp_path, text))]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_no_compare_table_means_defaults(tmp_path: Path) -> None:
    cfg = load_config(_config(tmp_path, "[project]\nname = 'x'\n"))
    assert cfg.default == Thresholds() and "built-in defaults" in cfg.source
    assert CompareConfig().for_case("numpy", "loop") == Thresholds()


# -- exporters ------------------------------------------------------------------------------------

# github-action-benchmark's BenchmarkResult (src/extract.ts): name, value, unit required; range, extra optional.
GAB_REQUIRED: dict[str, type | tuple[type, ...]] = {"name": str, "unit": str, "value": (int, float)}
GAB_OPTIONAL: dict[str, type] = {"range": str, "extra": str}
# Bencher Metric Format JSON schema (bencher.dev/docs/reference/bencher-metric-format): an object of
# benchmarks, each an object of measures, each an object with number "value" (required),
# "lower_value" and "upper_value" (numbers, optional).
BMF_METRIC_KEYS = {"value", "lower_value", "upper_value"}


def _export(tmp_path: Path, fmt: str) -> Any:
    rows = [row(1.0, seed=1), row(2.0, T=128, seed=2), row(status="mismatch", T=256), row(status="skipped", T=512)]
    src = write_run(tmp_path / "run", rows)
    out = tmp_path / f"{fmt}.json"
    assert main(["export", str(src), "--format", fmt, "--out", str(out)]) == 0
    return json.loads(out.read_text()), rows


def test_export_github_action_benchmark_fields(tmp_path: Path) -> None:
    doc, rows = _export(tmp_path, "github-action-benchmark")
    assert isinstance(doc, list) and len(doc) == 2  # the failed and skipped cases have no time
    for entry, r in zip(doc, rows[:2], strict=True):
        assert set(entry) <= set(GAB_REQUIRED) | set(GAB_OPTIONAL)
        for key, kind in GAB_REQUIRED.items():
            assert isinstance(entry[key], kind)
        for key, kind in GAB_OPTIONAL.items():
            assert key not in entry or isinstance(entry[key], kind)
        assert entry["name"] == r.key
        assert entry["unit"] == "ns"
        assert entry["value"] == pytest.approx(r.median_s * 1e9)
        assert entry["range"] == f"± {(r.ci_high_s - r.ci_low_s) / 2 * 1e9:.4g}"


def test_export_bencher_metric_format(tmp_path: Path) -> None:
    doc, rows = _export(tmp_path, "bencher")
    assert isinstance(doc, dict) and list(doc) == [rows[0].key, rows[1].key]
    for name, measures in doc.items():
        assert isinstance(name, str) and name and len(name) <= 1024
        assert isinstance(measures, dict) and list(measures) == ["latency"]
        for metric in measures.values():
            assert set(metric) <= BMF_METRIC_KEYS and "value" in metric
            assert all(isinstance(v, int | float) and math.isfinite(v) for v in metric.values())
            assert metric["lower_value"] <= metric["value"] <= metric["upper_value"]
    assert doc[rows[1].key]["latency"]["value"] == pytest.approx(rows[1].median_s * 1e9)


def test_export_to_stdout(tmp_path: Path, capsys) -> None:
    src = write_run(tmp_path / "run", [row()])
    assert main(["export", str(src), "--format", "bencher"]) == 0
    assert json.loads(capsys.readouterr().out) == export.bencher_metric_format([row()])


# -- history ----------------------------------------------------------------------------------------


def _history_runs(root: Path) -> None:
    factors = {"2026-01-01": 1.0, "2026-01-02": 1.01, "2026-01-03": 1.3, "2026-01-04": 1.3}
    # Written out of order: the history orders by start time, not by folder name.
    for i, (day, f) in enumerate(sorted(factors.items(), reverse=True)):
        rows = [row(f, seed=20 + i), row(1.0, T=128, seed=30 + i)]
        write_run(root / f"run-{i}", rows, meta(started=f"{day}T00:00:00+00:00", run_id=day))
    write_run(root / "other", [row(5.0)], meta(fp="elsewhere", started="2026-01-05T00:00:00+00:00"))
    (root / "broken").mkdir()


def test_history_flags_the_step_and_only_the_step(tmp_path: Path) -> None:
    _history_runs(tmp_path)
    h = history.build_history(tmp_path, fingerprint="abc123")
    assert [r.meta["run_id"] for r in h.runs] == ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]
    steps = h.steps()
    assert len(steps) == 1
    key, point = steps[0]
    assert key.startswith("numpy:cumsum:4x64x8") and point.run.meta["run_id"] == "2026-01-03"
    assert point.step == history.STEP_UP and point.ratio == pytest.approx(1.3 / 1.01, rel=0.03)
    assert h.other_machines == {"elsewhere": 1}
    assert any("broken" in s for s in h.skipped)


def test_history_defaults_to_the_newest_machine_and_cli_writes_files(tmp_path: Path, capsys) -> None:
    _history_runs(tmp_path / "runs")
    assert history.build_history(tmp_path / "runs").fingerprint == "elsewhere"
    out = tmp_path / "out"
    argv = ["history", str(tmp_path / "runs"), "--machine", "abc123", "--out", str(out), "--config", "none.toml"]
    assert main(argv) == 2  # a named config file must exist
    argv = [*argv[:-2], "--config", str(_config(tmp_path, ""))]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "### Step changes (1)" in printed and "step up" in printed
    lines = (out / "history.csv").read_text().splitlines()
    assert lines[0] == ",".join(history.CSV_COLUMNS)
    assert len(lines) == 1 + 2 * 4
    assert sum(line.endswith(",step up") for line in lines) == 1
    assert (out / "history.md").read_text() == printed
    assert main(["history", str(tmp_path / "runs"), "--machine", "nope"]) == 2


def test_a_form_whose_scaling_exponent_changed_gets_a_line_in_the_comparison():
    Ts = (64, 128, 256, 512)
    # base grows like T, head like T^2 (same time at T=64): a new quadratic term.
    base = [row(T / 64, T=T, seed=i) for i, T in enumerate(Ts)]
    head = [row((T / 64) ** 2, T=T, seed=10 + i) for i, T in enumerate(Ts)]
    cmp = compare_rows(base, head, CompareConfig(), meta(), meta())
    assert len(cmp.scaling) == 1
    line = cmp.scaling[0]
    assert "numpy" in line and "cumsum" in line and "k 1.00" in line and "-> 2.00" in line
    text = compare.render_markdown(cmp)
    assert "### Scaling changes (1)" in text and line in text
    assert json.loads(compare.render_json(cmp))["scaling_changes"] == [line]
    # The same scaling on both sides says nothing.
    assert compare_rows(base, base, CompareConfig(), meta(), meta()).scaling == []
