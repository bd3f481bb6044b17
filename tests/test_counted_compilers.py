"""Counted runs of the compiling backends: Numba and torch.compile counted, JAX skipped with what was measured.

Numba compiles in the counted worker (outside the counted calls); torch.compile is
compiled natively first and loaded from Inductor's cache (``suite.count_prepare``). The
end-to-end test counts cumsum 2x8x4 on both in two runs started together (they overlap on
two free cores; about 3-4 minutes of CPU in all, most of it torch under valgrind; their
native pre-compiles take turns on the cache, ``count_prepare.cache_lock``) and asks the
issue's bar of them: the same counts within 0.1%. Like
tests/test_counting.py, it needs valgrind (required where ``CAUSAL_BENCH_REQUIRE_VALGRIND=1``)
and the backends (required where ``CAUSAL_BENCH_REQUIRE_BACKENDS`` names them).
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import subprocess
import sys

import pytest

from backends._probes import cache_dir
from suite.cases import Case, RunOptions
from suite.count_prepare import CACHE_NOTE, INDUCTOR_CACHE, check_cached, precompile_env, prepare
from suite.count_runner import NOT_COUNTED
from suite.counting import counting_env
from suite.results import Row, load_run
from tests.conftest import adapter_or_skip
from tests.test_counting import REQUIRE, ROOT

COUNTED = ("numba", "torch-compile")


def test_compiling_backends_counted_and_jax_skipped_with_what_was_measured() -> None:
    assert not set(COUNTED) & set(NOT_COUNTED)
    assert "instructions per call" in NOT_COUNTED["jax"] and "0.1%" in NOT_COUNTED["jax"]


def test_inductor_is_pinned_and_torch_compile_alone_shares_a_cache() -> None:
    env = counting_env({})
    assert env["TORCHINDUCTOR_CPP_MARCH"] == "haswell" and env["TORCHINDUCTOR_COMPILE_THREADS"] == "1"
    assert precompile_env("torch-compile") == {"TORCHINDUCTOR_CACHE_DIR": str(cache_dir() / INDUCTOR_CACHE)}
    assert precompile_env("numba") == {} and precompile_env("numpy") == {}


def case(backend: str, form: str = "cumsum") -> Case:
    return Case(backend, form, 2, 8, 4, "float32", "ieee", metric="instructions")


def test_a_counted_compile_not_served_from_the_cache_is_an_error() -> None:
    fresh = Row(case("torch-compile"), status="ok", reason="")
    check_cached(fresh)
    assert fresh.status == "error" and "compiled instead of loading" in fresh.reason
    cached = Row(case("torch-compile"), status="ok", reason=f"auto ran math; {CACHE_NOTE}")
    numba = Row(case("numba"), status="ok", reason="")
    for row in (cached, numba):
        check_cached(row)
    assert cached.status == numba.status == "ok"


def test_a_native_pre_run_that_goes_no_further_is_the_row() -> None:
    adapter_or_skip("numba")
    options = dataclasses.replace(RunOptions(), device="cpu", threads=1, isolate=True)
    env = {**counting_env(os.environ), "PYTHONPATH": str(ROOT)}
    row = prepare(case("numba", "matrix"), options, env, timeout=120)
    assert row is not None and row.status == "skipped" and "native pre-compile" in row.reason
    late = prepare(case("numba"), options, env, timeout=0.01)
    assert late is not None and late.status == "error" and "native pre-compile ran past" in late.reason


@pytest.fixture(scope="module")
def counted_twice(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Row]]:
    """cumsum 2x8x4 on numba, torch-compile and jax, counted by two runs started together."""
    if shutil.which("valgrind") is None or shutil.which("gcc") is None:
        if REQUIRE:
            pytest.fail("counting needs valgrind and gcc; CAUSAL_BENCH_REQUIRE_VALGRIND=1 requires them")
        pytest.skip("counting needs valgrind and gcc (apt-get install valgrind gcc)")
    for backend in COUNTED:
        adapter_or_skip(backend)
    base = tmp_path_factory.mktemp("compilers")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # one CAUSAL_BENCH_CACHE_DIR (conftest): one Inductor cache
    argv = [sys.executable, "-m", "suite", "run", "--metric", "instructions", "--sizes", "2x8x4", "--quiet"]
    argv += ["--variants", "none", "--forms", "cumsum", "--backends", ",".join((*COUNTED, "jax"))]
    runs = [
        subprocess.Popen([*argv, "--out", str(base / name)], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
        for name in ("first", "second")
    ]
    for run in runs:
        _, err = run.communicate(timeout=900)
        assert run.returncode == 0, err
    return [{r.backend: r for r in load_run(base / name)[1]} for name in ("first", "second")]


@pytest.mark.slow
@pytest.mark.parametrize("backend", COUNTED)
def test_a_compiled_case_counted_twice_agrees_within_a_tenth_of_a_percent(
    counted_twice: list[dict[str, Row]], backend: str
) -> None:
    a, b = (run[backend] for run in counted_twice)
    assert a.status == b.status == "ok", (a.reason, b.reason)
    assert b.instructions == pytest.approx(a.instructions, rel=1e-3)
    assert b.est_cycles == pytest.approx(a.est_cycles, rel=1e-3)
    assert a.machine == b.machine
    # Per call, the Python call path and the kernel: the compile (billions) is not counted.
    assert 1e3 < a.instructions < 1e6 and not math.isnan(a.compile_s)


@pytest.mark.slow
def test_torch_compile_counted_from_the_native_compile_and_jax_skipped(counted_twice: list[dict[str, Row]]) -> None:
    for run in counted_twice:
        assert CACHE_NOTE in run["torch-compile"].reason
        assert run["jax"].status == "skipped" and run["jax"].reason == NOT_COUNTED["jax"]
