"""The host cumsum forms as rewritten for issue 15: the row scan and the reused output buffers."""

from __future__ import annotations

import numpy as np
import pytest

from backends import get_backend
from backends.numpy_backend import ROW_SCAN_MIN_COLUMNS, cumsum


@pytest.mark.parametrize("shape", [(4, 300, 80), (1, 7, ROW_SCAN_MIN_COLUMNS), (2, 50, 3)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numpy_cumsum_rows_match_np_cumsum(shape: tuple[int, int, int], dtype: str) -> None:
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    expected = np.cumsum(x, axis=1) / np.arange(1, shape[1] + 1, dtype=dtype).reshape(1, -1, 1)
    got = cumsum(x)
    assert got.dtype == x.dtype and got.shape == x.shape
    # The same additions in the same order; only the division became a multiply by 1/(t+1).
    np.testing.assert_allclose(got, expected, rtol=4 * float(np.finfo(dtype).eps), atol=0)


@pytest.mark.parametrize("name", ["numpy", "numba"])
def test_cumsum_writes_one_buffer_and_every_call_is_right(name: str) -> None:
    adapter = get_backend(name, "auto")
    if not adapter.availability().ok:
        pytest.skip(adapter.availability().reason)
    x = np.random.default_rng(1).standard_normal((3, 64, 100)).astype(np.float32)
    built = adapter.build("cumsum", adapter.to_device(x, "float32"), "ieee")
    first = np.array(built.fn(), copy=True)
    again = built.fn()
    assert again is built.fn()  # no fresh output array per call
    np.testing.assert_array_equal(again, first)  # a reused buffer is rewritten in full
    ref = np.cumsum(x.astype(np.float64), axis=1) / np.arange(1, 65).reshape(1, -1, 1)
    np.testing.assert_allclose(first, ref, rtol=1e-5, atol=1e-6)
