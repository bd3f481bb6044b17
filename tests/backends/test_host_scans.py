"""The host cumsum kernels of issue 15 (NumPy's staged row scan, ``cumsum[staged]``) and their reused buffers."""

from __future__ import annotations

import numpy as np
import pytest

from backends import get_backend
from backends.numpy_backend import ROW_SCAN_MIN_COLUMNS, aligned_like, staged_cumsum


@pytest.mark.parametrize("shape", [(4, 300, 80), (1, 7, ROW_SCAN_MIN_COLUMNS), (2, 50, 3)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numpy_staged_rows_match_np_cumsum(shape: tuple[int, int, int], dtype: str) -> None:
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    expected = np.cumsum(x, axis=1) / np.arange(1, shape[1] + 1, dtype=dtype).reshape(1, -1, 1)
    got = staged_cumsum(x)
    assert got.dtype == x.dtype and got.shape == x.shape
    # The same additions in the same order; only the division became a multiply by 1/(t+1).
    np.testing.assert_allclose(got, expected, rtol=4 * float(np.finfo(dtype).eps), atol=0)


@pytest.mark.parametrize(
    ("shape", "stage_rows"),
    [
        ((3, 50, 100), 7),  # seven blocks of 7 and a ragged last block of 1
        ((2, 33, 128), 1),  # a stage smaller than one row still moves a row at a time
        ((2, 40, 128), 40),  # one block holds all of T
        ((2, 40, 128), 1000),  # a stage larger than x
    ],
)
def test_staged_row_scan_carries_sums_across_blocks(shape: tuple[int, int, int], stage_rows: int) -> None:
    B, T, C = shape
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    expected = np.cumsum(x, axis=1) / np.arange(1, T + 1, dtype=np.float32).reshape(1, -1, 1)
    out = np.full_like(x, np.nan)  # every element must be written
    got = staged_cumsum(x, out=out, stage_bytes=stage_rows * B * C * x.itemsize)
    assert got is out
    np.testing.assert_allclose(got, expected, rtol=4 * float(np.finfo(np.float32).eps), atol=0)


@pytest.mark.parametrize("offset", [0, 1, 2, 3, 5])
def test_aligned_like_matches_the_offset_within_a_cache_line(offset: int) -> None:
    base = np.zeros(1000, dtype=np.float32)
    like = base[offset : offset + 600].reshape(2, 3, 100)
    got = aligned_like((4, 2, 100), like)
    assert got.shape == (4, 2, 100) and got.dtype == like.dtype and got.flags.c_contiguous
    assert got.ctypes.data % 64 == like.ctypes.data % 64


@pytest.mark.parametrize(("name", "variant"), [("numpy", "staged"), ("numba", ""), ("numba", "parallel")])
def test_cumsum_writes_one_buffer_and_every_call_is_right(name: str, variant: str) -> None:
    adapter = get_backend(name, "auto")
    if not adapter.availability().ok:
        pytest.skip(adapter.availability().reason)
    x = np.random.default_rng(1).standard_normal((3, 64, 100)).astype(np.float32)
    built = adapter.build_case("cumsum", adapter.to_device(x, "float32"), "ieee", variant=variant)
    first = np.array(built.fn(), copy=True)
    again = built.fn()
    assert again is built.fn()  # no fresh output array per call
    np.testing.assert_array_equal(again, first)  # a reused buffer is rewritten in full
    ref = np.cumsum(x.astype(np.float64), axis=1) / np.arange(1, 65).reshape(1, -1, 1)
    np.testing.assert_allclose(first, ref, rtol=1e-5, atol=1e-6)
