"""``import suite`` and ``import backends`` need NumPy alone; frameworks load lazily."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Makes the frameworks and pandas unimportable, then imports every module of the suite.
BLOCKED = """
import importlib.abc, sys
BLOCKED_NAMES = {"torch", "jax", "jaxlib", "pandas", "numba", "llvmlite", "triton", "scipy", "ray", "matplotlib",
                 "plotly"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED_NAMES:
            raise ImportError(f"blocked {name}")
        return None
sys.meta_path.insert(0, Block())
"""

# Every module of both packages, found by walking them, so that a new module is covered
# the day it is added; the list is printed so the test can check it is complete.
IMPORT_ALL = """
import importlib, pkgutil
import backends, suite
names = []
for pkg in (backends, suite):
    names.append(pkg.__name__)
    names += [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]
for name in names:
    importlib.import_module(name)
frameworks = ("torch", "jax", "jaxlib", "pandas", "numba", "llvmlite", "triton", "scipy", "ray", "matplotlib", "plotly")
loaded = sorted(m for m in frameworks if m in sys.modules)
assert not loaded, loaded
print(" ".join(names))
print("clean")
"""


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_importing_the_suite_loads_no_framework() -> None:
    done = run_python("import sys\n" + IMPORT_ALL)
    assert done.returncode == 0, done.stderr
    names, verdict = done.stdout.strip().splitlines()
    assert verdict == "clean"
    # The walk reached the wings and the core alike.
    for module in ("suite.cli.run", "suite.report.markdown", "suite.track.compare", "suite.stats", "suite.session"):
        assert module in names.split()


def test_import_works_with_frameworks_blocked() -> None:
    done = run_python(BLOCKED + IMPORT_ALL)
    assert done.returncode == 0, done.stderr


def test_numpy_backend_runs_with_frameworks_blocked() -> None:
    code = (
        BLOCKED
        + """
import numpy as np
from backends import get_backend
from suite.cases import Case, RunOptions
from suite.runner import run_case
b = get_backend("numpy")
row = run_case(Case("numpy", "matrix", 2, 16, 3), b, RunOptions(measure=False, isolate=False))
assert row.status == "ok", row.reason
print(row.status)
"""
    )
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@pytest.mark.parametrize(
    ("name", "extra"),
    [("torch", "torch"), ("torch-compile", "torch"), ("jax", "jax"), ("numba", "numba"), ("triton", "torch")],
)
def test_missing_framework_is_reported_with_install_hint(name: str, extra: str) -> None:
    """find_spec sees no framework: availability says how to install it, imports nothing."""
    code = f"""
import importlib.util, sys
real = importlib.util.find_spec
blocked = ("torch", "jax", "numba", "triton")
importlib.util.find_spec = lambda n, *a: None if n.split(".")[0] in blocked else real(n, *a)
from backends import get_backend
avail = get_backend({name!r}).availability()
assert not avail.ok
assert not [m for m in blocked if m in sys.modules]
print(avail.reason)
"""
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert f"pip install '.[{extra}]'" in done.stdout
    assert "not installed" in done.stdout
