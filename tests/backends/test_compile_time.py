"""compile_s in a fresh process: the compile is inside the timed build, or NaN with a reason.

Each backend runs in a new interpreter, so nothing was compiled before its first
case (in the test process Numba may have compiled the kernel long ago). Asserts
an order of magnitude, not a timing: a compile is milliseconds to seconds, a call
of these tiny cases microseconds.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import adapter_or_skip

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

SCRIPT = """
import json, sys
from backends import get_backend
from suite.cases import Case, RunOptions
from suite.runner import run_case
from suite.timing import TimerConfig

name = sys.argv[1]
adapter = get_backend(name)
options = RunOptions(timer=TimerConfig(budget_s=0.05, warmup_s=0.01, min_sample_s=1e-3), isolate=False)
rows = []
for T, dtype in ((16, "float32"), (32, "float32"), (16, "float64")):
    row = run_case(Case(name, "cumsum", 2, T, 4, dtype), adapter, options)
    rows.append({"status": row.status, "compile_s": row.compile_s, "median_s": row.median_s, "reason": row.reason})
print(json.dumps(rows))
"""


def fresh_rows(name: str) -> list[dict[str, object]]:
    adapter_or_skip(name)  # fails where the backend is required, skips elsewhere
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, name], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows: list[dict[str, object]] = json.loads(done.stdout.strip().splitlines()[-1].replace("NaN", "null"))
    assert all(r["status"] == "ok" for r in rows), rows
    return rows


def test_numba_compiles_in_the_timed_first_call_and_says_when_it_did_not() -> None:
    first, same_types, new_dtype = fresh_rows("numba")
    assert first["compile_s"] > 10 * first["median_s"]  # type: ignore[operator]
    # Same argument types (float32, 3-d, C order): the dispatcher compiled nothing.
    assert same_types["compile_s"] is None and "compile_s: cached" in str(same_types["reason"])
    assert new_dtype["compile_s"] > 10 * new_dtype["median_s"]  # type: ignore[operator]


def test_jax_compiles_in_the_timed_build() -> None:
    rows = fresh_rows("jax")
    # jit compiles once per input shape and dtype: each case here is a new one.
    for r in rows:
        assert r["compile_s"] is not None and math.isfinite(r["compile_s"])  # type: ignore[arg-type]
        assert r["compile_s"] > 10 * r["median_s"]  # type: ignore[operator]
