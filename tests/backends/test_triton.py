"""The Triton backend: availability without a GPU, and the kernel under TRITON_INTERPRET=1.

Triton reads TRITON_INTERPRET when ``triton.language`` is imported (its own jitted
helpers such as ``tl.cumsum`` are defined then), so the interpreter checks run in
a fresh process with the variable set, the way a worker of ``suite run`` would.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from backends import get_backend
from backends.triton_backend import INTERPRET_ENV
from tests.conftest import REQUIRED

if importlib.util.find_spec("triton") is None or importlib.util.find_spec("torch") is None:
    if "triton" in REQUIRED:  # nox -s tests_triton: a broken install fails, never skips
        pytest.fail("triton is required here but triton or torch is not installed", pytrace=False)
    pytest.skip(
        "triton and torch are not installed: pip install '.[triton]' (nox -s tests_triton)", allow_module_level=True
    )

ROOT = Path(__file__).resolve().parents[2]

CASES = [
    # (shape, input kind, dtype)
    ((4, 8, 2), "normal", "float32"),
    ((2, 1000, 4), "offset", "float32"),  # T not a multiple of the tile, large offset
    ((1, 257, 40), "offset", "float32"),  # C not a multiple of the column tile
    ((3, 1, 5), "normal", "float32"),
    ((2, 100, 3), "normal", "float64"),  # float64 scan, float64 carry
    ((2, 64, 4), "normal", "bfloat16"),
]

CHILD = """
import json, sys
from backends import get_backend
from suite.cases import Case, RunOptions
from suite.runner import run_case
adapter = get_backend("triton")
options = RunOptions(measure=False, isolate=False)
out = {"available": adapter.availability().ok, "device": adapter.device(), "rows": []}
for shape, kind, dtype in json.loads(sys.argv[1]):
    row = run_case(Case("triton", "cumsum", *shape, dtype=dtype, input=kind), adapter, options)
    out["rows"].append([row.status, row.reason, row.rel_err, row.tol])
for form in ("loop", "matrix", "softmax", "chunked"):
    row = run_case(Case("triton", form, 2, 8, 2), adapter, options)
    out["rows"].append([row.status, row.reason, row.rel_err, row.tol])
print(json.dumps(out))
"""


def gpu_present() -> bool:
    import torch

    return bool(torch.cuda.is_available())


@pytest.fixture(scope="module")
def interpreted() -> dict[str, Any]:
    """Rows of the agreement cases, computed by the kernel in Triton's CPU interpreter."""
    if gpu_present():
        pytest.skip("a GPU is present: the GPU test covers the compiled kernel")
    env = {**os.environ, INTERPRET_ENV: "1"}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(CASES)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_unavailable_without_gpu_or_interpreter(monkeypatch) -> None:
    if gpu_present():
        pytest.skip("a GPU is present")
    monkeypatch.delenv(INTERPRET_ENV, raising=False)
    avail = get_backend("triton").availability()
    assert not avail.ok
    assert "CUDA GPU" in avail.reason and f"{INTERPRET_ENV}=1" in avail.reason
    assert not get_backend("triton", "gpu").availability().ok


@pytest.mark.slow
def test_kernel_agrees_in_the_interpreter(interpreted) -> None:
    assert interpreted["available"]
    assert interpreted["device"] == "cpu (triton interpreter)"
    for (shape, kind, dtype), (status, reason, rel_err, tol) in zip(
        CASES, interpreted["rows"][: len(CASES)], strict=True
    ):
        assert status == "ok", f"{shape} {kind} {dtype}: {reason}"
        assert rel_err <= tol
        if dtype == "float32":
            # The float64 carry keeps a long float32 scan well inside the tolerance.
            assert rel_err < tol / 10, f"{shape} {kind}: {rel_err:.2e} vs {tol:.2e}"


@pytest.mark.slow
def test_other_forms_are_skipped_with_a_reason(interpreted) -> None:
    others = interpreted["rows"][len(CASES) :]
    assert len(others) == 4
    for form, (status, reason, _, _) in zip(("loop", "matrix", "softmax", "chunked"), others, strict=True):
        assert status == "skipped"
        assert f"does not implement {form}" in reason


@pytest.mark.gpu
def test_kernel_agrees_on_the_gpu() -> None:
    if not gpu_present():
        pytest.skip("no CUDA GPU")
    from suite.cases import Case, RunOptions
    from suite.runner import run_case

    adapter = get_backend("triton", "gpu")
    assert adapter.availability().ok
    options = RunOptions(measure=False, isolate=False)
    for shape, kind in (((8, 4096, 1024), "offset"), ((1, 4097, 3), "offset"), ((2, 64, 1000), "normal")):
        row = run_case(Case("triton", "cumsum", *shape, input=kind), adapter, options)
        assert row.status == "ok", row.reason
        assert row.rel_err <= row.tol
