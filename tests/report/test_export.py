"""Exporters: github-action-benchmark and Bencher Metric Format, checked against their schemas."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from suite.cli import main
from suite.report import export
from tests.stored_runs import row, write_run

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
