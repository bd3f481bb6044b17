"""The Numba backend: compiled loops that agree with the reference, threads, compile time."""

from __future__ import annotations

import numpy as np
import pytest

from backends import get_backend
from backends.numba_backend import CACHED_NOTE, MIN_TILE, NumbaBackend, column_tile
from suite.cases import Case, RunOptions
from suite.reference import make_input, reference
from suite.runner import run_case
from tests.conftest import adapter_or_skip

CHECK_ONLY = RunOptions(measure=False, isolate=False)


@pytest.fixture
def adapter():
    # Fails, not skips, where numba is required (nox -s tests): a broken install is a failure.
    return adapter_or_skip("numba")


@pytest.mark.parametrize("form", ["cumsum", "loop"])
@pytest.mark.parametrize(
    ("shape", "kind", "dtype"),
    [
        ((4, 8, 2), "normal", "float32"),
        ((2, 1000, 4), "offset", "float32"),  # 1e4 offset: float64 running sums keep float32 accuracy
        ((1, 4097, 3), "offset", "float32"),  # B=1: the rows are split over the threads
        ((3, 1, 5), "normal", "float32"),
        ((2, 100, 70), "normal", "float64"),
    ],
)
def test_compiled_loops_agree(adapter, form: str, shape: tuple[int, int, int], kind: str, dtype: str) -> None:
    row = run_case(Case("numba", form, *shape, dtype=dtype, input=kind), adapter, CHECK_ONLY)
    assert row.status == "ok", row.reason
    assert row.rel_err <= row.tol
    # Float64 accumulation: far inside the float32 tolerance, not just under it.
    if dtype == "float32":
        assert row.rel_err < row.tol / 10


def test_one_pass_loop_is_the_causal_mean_exactly(adapter) -> None:
    x = make_input((3, 50, 7))
    built = adapter.build("cumsum", adapter.to_device(x, "float64"), "ieee")
    y = built.fn()
    np.testing.assert_allclose(y, reference(x), rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(y[:, 0], x[:, 0])


def test_a_build_that_compiles_nothing_says_so(adapter) -> None:
    x = adapter.to_device(make_input((2, 16, 4)), "float32")
    adapter.build("cumsum", x, "ieee")  # compiles, unless an earlier test of this process did
    again = adapter.build("cumsum", x, "ieee")  # compiled for float32 arrays already
    assert np.isnan(again.compile_s) and again.notes == CACHED_NOTE
    row = run_case(Case("numba", "cumsum", 2, 24, 4), adapter, CHECK_ONLY)
    assert row.status == "ok" and np.isnan(row.compile_s) and row.reason == CACHED_NOTE
    # (The first build of a fresh process is tested in test_compile_time.py.)


@pytest.mark.parametrize(("form", "why"), sorted(NumbaBackend.unimplemented_forms.items()))
def test_other_forms_are_skipped_with_a_reason(adapter, form, why) -> None:
    row = run_case(Case("numba", form, 2, 8, 2), adapter, CHECK_ONLY)
    assert row.status == "skipped"
    assert row.reason == f"numba does not implement {form}: {why}"


def test_low_precision_dtypes_are_refused(adapter) -> None:
    row = run_case(Case("numba", "cumsum", 2, 8, 2, dtype="float16"), adapter, CHECK_ONLY)
    assert row.status == "skipped" and "float16" in row.reason


def test_threads_are_settable(adapter) -> None:
    import numba

    before = numba.get_num_threads()
    try:
        assert adapter.set_threads(1) == 1
        row = run_case(Case("numba", "cumsum", 2, 64, 8), adapter, CHECK_ONLY, threads=1)
        assert row.status == "ok"
        # More than the pool holds is capped, not an error.
        assert adapter.set_threads(10_000) == int(vars(numba.config)["NUMBA_NUM_THREADS"])
    finally:
        adapter.set_threads(before)


@pytest.mark.parametrize(
    ("B", "C", "threads", "tile"),
    [
        (8, 256, 2, 256),  # enough rows: whole rows per task
        (1, 256, 2, 128),  # one row, two threads: halves
        (1, 8, 4, 8),  # too few columns to split below MIN_TILE
        (3, 100, 16, 17),  # 6 splits of 100 columns
    ],
)
def test_column_tile(B, C, threads, tile) -> None:
    assert column_tile(B, C, threads) == tile
    assert column_tile(B, C, threads) >= min(C, MIN_TILE)


def test_unavailable_on_gpu_request() -> None:
    avail = get_backend("numba", "gpu").availability()
    assert not avail.ok and "CPU only" in avail.reason
