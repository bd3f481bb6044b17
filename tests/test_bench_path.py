"""The pytest-benchmark path (tests/bench): the device wait, and runs under pytest in both modes.

Plain ``pytest`` does not collect tests/bench (``norecursedirs``); these tests run
a slice of it in a subprocess, as a user would: once with ``--benchmark-disable``
(what CI does for all of it) and once with ``--benchmark-only`` writing JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backends import Built
from backends.numpy_backend import NumpyBackend
from suite.cases import PRESETS, Case
from suite.forms import FORM_NAMES
from suite.reference import compare, reference
from tests.bench.prepared import PreparedCase, bench_sizes

pytest.importorskip("pytest_benchmark")

ROOT = Path(__file__).resolve().parents[1]


class RecordingBackend(NumpyBackend):
    """NumPy, with every call to ``sync`` written down."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Any] = []

    def sync(self, result: Any) -> None:
        self.events.append(("sync", result))


def test_a_timed_call_waits_for_its_own_result():
    adapter = RecordingBackend()
    x = np.ones((1, 4, 2))
    outputs = iter([np.full((1, 4, 2), 1.0), np.full((1, 4, 2), 2.0)])

    def fn() -> Any:
        adapter.events.append("fn")
        return next(outputs)

    ref = reference(x)
    case = PreparedCase(Case("numpy", "cumsum", 1, 4, 2), adapter, Built(fn), ref, compare(x, ref, 1e-6))
    first = case()
    second = case()
    assert adapter.events == ["fn", ("sync", first), "fn", ("sync", second)]
    assert float(second[0, 0, 0]) == 2.0
    assert case.info()["synced"] is True and case.info()["T"] == 4


def test_bench_sizes_default_and_override(monkeypatch):
    monkeypatch.delenv("CAUSAL_BENCH_SIZES", raising=False)
    assert bench_sizes() == [(4, 8, 2), (4, 8, 16), (4, 32, 16), (4, 128, 16)]
    monkeypatch.setenv("CAUSAL_BENCH_SIZES", "2x16x4,seed,2x16x4")
    assert bench_sizes() == [(2, 16, 4), (4, 8, 2)]


def _pytest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "tests/bench", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CAUSAL_BENCH_SIZES": "seed,small"},
    )


def test_bench_cases_run_once_each_with_benchmark_disable():
    done = _pytest("--benchmark-disable", "-k", "numpy-")
    assert done.returncode == 0, done.stdout + done.stderr
    # NumPy runs every form it implements at each distinct size of seed and small, once.
    sizes = {*PRESETS["seed"], *PRESETS["small"]}
    implemented = [f for f in FORM_NAMES if f in NumpyBackend.forms]
    assert "attention" not in implemented and len(implemented) >= 5
    assert f"{len(implemented) * len(sizes)} passed" in done.stdout
    assert "skipped" not in done.stdout


def test_benchmark_only_writes_pytest_benchmark_json(tmp_path):
    out = tmp_path / "bench.json"
    done = _pytest(
        "--benchmark-only",
        "-k",
        "numpy-cumsum-4x8x2 or numpy-matrix-4x8x2",
        f"--benchmark-json={out}",
        "--benchmark-max-time=0.05",
        "--benchmark-min-rounds=3",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(out.read_text())
    benches = {b["name"]: b for b in doc["benchmarks"]}
    assert set(benches) == {"test_case[numpy-cumsum-4x8x2]", "test_case[numpy-matrix-4x8x2]"}
    cumsum = benches["test_case[numpy-cumsum-4x8x2]"]
    assert cumsum["group"] == "cumsum 4x8x2"
    info = cumsum["extra_info"]
    assert (info["backend"], info["form"], info["B"], info["T"], info["C"]) == ("numpy", "cumsum", 4, 8, 2)
    assert info["synced"] is True and 0 <= info["rel_err"] <= info["tol"]
    assert cumsum["stats"]["rounds"] >= 3 and cumsum["stats"]["median"] > 0
