"""Thresholds: the TOML table, its overrides and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from suite.cli import main
from suite.track import config
from suite.track.config import CompareConfig, Thresholds, load_config
from tests.stored_runs import config_file, run_pair


def test_threshold_overrides_per_backend_and_form(tmp_path: Path) -> None:
    cfg = load_config(
        config_file(
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
    base, head = run_pair(tmp_path, 1.3)
    loose = config_file(tmp_path, "[tool.causal-bench.compare.backend.numpy]\nthreshold = 0.5\n")
    assert main(["compare", str(base), str(head), "--config", str(loose)]) == 0
    assert "backend numpy: threshold 0.5" in capsys.readouterr().out
    assert main(["compare", str(base), str(head), "--config", str(loose), "--threshold", "0.1"]) == 1
    strict = config_file(tmp_path, "[tool.causal-bench.compare]\nthreshold = 0.4\n")
    assert main(["compare", str(base), str(head), "--config", str(strict)]) == 0


def test_project_pyproject_config_is_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    cfg = load_config(root / "pyproject.toml")
    assert cfg.default == Thresholds(config.DEFAULT_THRESHOLD, config.DEFAULT_ALPHA)


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
    base, head = run_pair(tmp_path, 1.0)
    assert main(["compare", str(base), str(head), "--config", str(config_file(tmp_path, text))]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_no_compare_table_means_defaults(tmp_path: Path) -> None:
    cfg = load_config(config_file(tmp_path, "[project]\nname = 'x'\n"))
    assert cfg.default == Thresholds() and "built-in defaults" in cfg.source
    assert CompareConfig().for_case("numpy", "loop") == Thresholds()


def test_rounds_warning_names_the_minimum_rounds() -> None:
    line = config.rounds_warning(3, 0.01)
    assert line.startswith("warning: 3 rounds a side cannot reach alpha 0.01") and "5 rounds or more can" in line
    assert "0.05" in line and "\n" not in line  # the smallest p of 3 against 3
    assert config.rounds_warning(5, 0.01) == "" and config.rounds_warning(3, 0.05) == ""
    assert "7 rounds or more" in config.rounds_warning(5, 0.001)


def test_count_threshold_and_the_strictest_alpha_come_from_the_table() -> None:
    cfg = config.config_from_table(
        {"count_threshold": 0.01, "form": {"loop": {"alpha": 0.001}}}, "x.toml", forms=("loop", "cumsum")
    )
    assert cfg.for_case("numpy", "cumsum").count_threshold == 0.01
    assert cfg.strictest_alpha() == 0.001 and config.CompareConfig().strictest_alpha() == config.DEFAULT_ALPHA
    with pytest.raises(config.CompareError, match="count_threshold must be a fraction"):
        config.config_from_table({"count_threshold": -1}, "x.toml")
