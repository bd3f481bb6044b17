"""The cost model: one place, consistent numbers."""

from __future__ import annotations

import pytest

from suite.forms import FORM_NAMES, FORMS, get_form


def test_forms_match_the_backends_vocabulary() -> None:
    assert tuple(FORMS) == FORM_NAMES


@pytest.mark.parametrize(
    ("name", "flops"),
    [
        # B=2, T=4, C=3: loop adds 1+2+3+4 rows of C and divides C per (b, t).
        ("loop", 2 * 3 * (10 + 4)),
        ("matrix", 2 * 2 * 4 * 4 * 3 + 2 * 16),
        ("softmax", 2 * 2 * 4 * 4 * 3 + 5 * 16),
        ("cumsum", 2 * 2 * 4 * 3),
        # An add inside the block, the block's offset and the division per element.
        ("chunked", 3 * 2 * 4 * 3),
    ],
)
def test_flops(name: str, flops: float) -> None:
    assert get_form(name).flops(2, 4, 3, 4) == flops


def test_bytes_count_weights_only_where_built() -> None:
    io = 2 * 2 * 4 * 3 * 4
    assert get_form("cumsum").min_bytes(2, 4, 3, 4) == io
    assert get_form("loop").min_bytes(2, 4, 3, 4) == io
    assert get_form("matrix").min_bytes(2, 4, 3, 4) == io + 16 * 4
    assert get_form("softmax").min_bytes(2, 4, 3, 4) == io + 16 * 4


def test_quadratic_forms_grow_with_t_squared_and_cumsum_linearly() -> None:
    for name in ("loop", "matrix", "softmax"):
        ratio = get_form(name).flops(8, 2048, 64, 4) / get_form(name).flops(8, 1024, 64, 4)
        assert 3.9 < ratio < 4.1
    assert get_form("cumsum").flops(8, 2048, 64, 4) / get_form("cumsum").flops(8, 1024, 64, 4) == 2


def test_peak_memory_includes_the_weights() -> None:
    T = 4096
    assert get_form("matrix").peak_bytes(1, T, 1, 4) >= 2 * T * T * 4
    # input, output, the prefix sums and the counts: 4 arrays of T floats
    assert get_form("cumsum").peak_bytes(1, T, 1, 4) == 4 * T * 4


def test_intensity_and_matmul_flags() -> None:
    assert get_form("matrix").uses_matmul and get_form("softmax").uses_matmul
    assert not get_form("cumsum").uses_matmul and not get_form("loop").uses_matmul
    assert get_form("cumsum").intensity(8, 1024, 256, 4) == pytest.approx(0.25)
    assert get_form("loop").python_steps(4, 8) == 32
    assert get_form("matrix").python_steps(4, 8) == 0


def test_chunked_is_costed_as_a_scan() -> None:
    """The block matmul is full precision whatever the mode, and the form is judged as an O(BTC) scan."""
    chunked = get_form("chunked")
    assert not chunked.uses_matmul
    assert chunked.intensity(8, 1024, 256, 4) == pytest.approx(3 / 8)
    assert chunked.min_bytes(2, 4, 3, 4) == get_form("cumsum").min_bytes(2, 4, 3, 4)
    # Padding, block sums and totals: more working memory than cumsum, linear in B*T*C.
    assert chunked.peak_bytes(8, 1024, 256, 4) > get_form("cumsum").peak_bytes(8, 1024, 256, 4)
    ratio = chunked.extra_bytes(8, 4096, 256, 4) / chunked.extra_bytes(8, 1024, 256, 4)
    assert 3 < ratio < 4.1  # linear, plus a padding allowance of one maximal block


def test_unknown_form() -> None:
    with pytest.raises(KeyError, match="choose from loop, matrix, softmax, cumsum, chunked"):
        get_form("fft")
