"""Reference, tolerances, precision modes and input validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from suite.reference import InputError, compare, load_input, make_input, reference, tolerance, validate_input


def test_reference_is_the_causal_mean() -> None:
    x = make_input((3, 7, 2), seed=5)
    ref = reference(x)
    for t in range(7):
        np.testing.assert_allclose(ref[:, t], x[:, : t + 1].mean(axis=1), rtol=1e-14)


def test_inputs_are_seeded_and_offset() -> None:
    a, b = make_input((2, 3, 4), seed=9), make_input((2, 3, 4), seed=9)
    np.testing.assert_array_equal(a, b)
    off = make_input((2, 3, 4), "offset", seed=9)
    np.testing.assert_allclose(off - a, 1e4)
    with pytest.raises(InputError, match="unknown input kind"):
        make_input((1, 1, 1), "uniform")


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.array([[[np.nan]]]), "NaN"),
        (np.array([[[np.inf, 1.0]]]), "Inf"),
        (np.zeros((2, 3)), "shape"),
        (np.zeros((2, 0, 3)), "empty"),
        (np.zeros((1, 2, 3), dtype=np.int64), "floating"),
    ],
)
def test_bad_inputs_are_refused(x: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=message):
        validate_input(x)


def test_load_input_refuses_nan_files(tmp_path) -> None:
    path = tmp_path / "x.npy"
    x = make_input((1, 4, 2))
    x[0, 2, 1] = np.nan
    np.save(path, x)
    with pytest.raises(InputError, match="1 non-finite values"):
        load_input(path)
    with pytest.raises(InputError, match="cannot load"):
        load_input(tmp_path / "missing.npy")


def test_float32_tolerance_grows_with_sqrt_t_and_stays_below_tf32() -> None:
    eps = float(np.finfo(np.float32).eps)
    assert tolerance("float32", "ieee", 8) == pytest.approx(5 * eps * math.sqrt(8))
    assert tolerance("float32", "ieee", 4096) == pytest.approx(4 * tolerance("float32", "ieee", 256))
    # TF32's typical error (about 3e-4 on an H100) must fail every float32 tolerance we use.
    assert tolerance("float32", "ieee", 16384) < 3e-4 < tolerance("float32", "tf32", 16384)


def test_each_mode_has_its_own_tolerance() -> None:
    T = 1024
    tols = {
        ("float64", "ieee"): tolerance("float64", "ieee", T),
        ("float32", "ieee"): tolerance("float32", "ieee", T),
        ("float32", "tf32"): tolerance("float32", "tf32", T),
        ("float16", "ieee"): tolerance("float16", "ieee", T),
        ("bfloat16", "ieee"): tolerance("bfloat16", "ieee", T),
    }
    ordered = [tols[k] for k in sorted(tols, key=tols.__getitem__)]
    assert ordered == sorted(tols.values())
    assert tols[("float64", "ieee")] < 1e-12 < tols[("float32", "ieee")] < tols[("float32", "tf32")]
    assert tols[("float32", "tf32")] < tols[("float16", "ieee")] < tols[("bfloat16", "ieee")]
    with pytest.raises(ValueError, match="no tolerance"):
        tolerance("float64", "tf32", T)


def _round_mantissa(x: np.ndarray, bits: int) -> np.ndarray:
    """Round float32 values to ``bits`` explicit mantissa bits (TF32 keeps 10)."""
    as_int = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    drop = 23 - bits
    rounded = ((as_int + (1 << (drop - 1))) >> drop) << drop
    return rounded.astype(np.uint32).view(np.float32)


def test_a_tf32_result_fails_float32_and_passes_tf32() -> None:
    """TF32 is never passed under a float32 tolerance: emulate TF32 inputs to a matmul."""
    T = 512
    x = make_input((2, T, 16)).astype(np.float32)
    wei = np.tril(np.ones((T, T), dtype=np.float32))
    wei /= wei.sum(1, keepdims=True)
    tf32_out = _round_mantissa(wei, 10).astype(np.float64) @ _round_mantissa(x, 10).astype(np.float64)
    agreement = compare(tf32_out, reference(x), tolerance("float32", "ieee", T))
    assert not agreement.passed
    assert 5e-5 < agreement.rel_err < 2e-3
    assert compare(tf32_out, reference(x), tolerance("float32", "tf32", T)).passed


def test_compare_counts_nonfinite_and_measures_errors() -> None:
    ref = np.ones((1, 4, 1))
    y = ref.copy()
    y[0, 1, 0] = 1.5
    a = compare(y, ref, 1e-3)
    assert a.max_abs_err == pytest.approx(0.5)
    assert a.rel_err == pytest.approx(0.5 / 2.0)
    assert not a.passed and "exceeds" in a.describe()
    y[0, 2, 0] = np.inf
    b = compare(y, ref, 1.0)
    assert b.nonfinite == 1 and not b.passed and "non-finite" in b.describe()
    with pytest.raises(ValueError, match="shape"):
        compare(np.ones((1, 3, 1)), ref, 1.0)


EPS32, EPS64 = float(np.finfo(np.float32).eps), float(np.finfo(np.float64).eps)


@pytest.mark.parametrize("T", [1, 2, 8, 1000, 4096])
def test_every_tolerance_is_exactly_its_documented_formula(T: int) -> None:
    # Exact values, not orderings: a tolerance loosened (or a term dropped) anywhere fails here.
    assert tolerance("float64", "ieee", T) == 5 * EPS64 * math.sqrt(T)
    assert tolerance("float32", "ieee", T) == 5 * EPS32 * math.sqrt(T)
    assert tolerance("float32", "tf32", T) == 2e-3 + 5 * EPS32 * math.sqrt(T)
    assert tolerance("float16", "ieee", T) == 1e-2
    assert tolerance("bfloat16", "ieee", T) == 4e-2


def test_documented_tolerance_figures() -> None:
    assert tolerance("float32", "ieee", 8) == pytest.approx(1.7e-6, rel=0.01)
    assert tolerance("float32", "ieee", 4096) == pytest.approx(3.8e-5, rel=0.01)
    assert tolerance("float64", "ieee", 1) == 5 * EPS64  # T = 1: one rounding, sqrt(1)


@pytest.mark.parametrize(
    ("dtype", "precision", "T"),
    [("float64", "ieee", 64), ("float32", "ieee", 8), ("float32", "tf32", 512), ("float16", "ieee", 8)],
)
def test_agreement_boundary_is_inclusive_and_tight(dtype: str, precision: str, T: int) -> None:
    tol = tolerance(dtype, precision, T)
    at = compare(np.ones((1, T, 1)), np.ones((1, T, 1)), tol)
    assert at.passed
    # An error exactly at the tolerance passes; the next float above it fails.
    assert replace_err(at, tol).passed
    assert not replace_err(at, float(np.nextafter(tol, np.inf))).passed
    assert not replace_err(at, 1.1 * tol).passed and replace_err(at, 0.9 * tol).passed


def replace_err(a, rel_err: float):
    import dataclasses

    return dataclasses.replace(a, rel_err=rel_err)


def test_compare_relative_error_on_small_and_zero_references() -> None:
    ref = np.full((1, 4, 1), 1e-3)  # norm 2e-3 < 1: still relative
    a = compare(ref * (1 + 1e-4), ref, 1e-3)
    assert a.rel_err == pytest.approx(1e-4, rel=1e-6)
    assert a.passed and a.describe() == f"relative error {a.rel_err:.2e} within tolerance 1.00e-03"
    zero = compare(np.full((1, 4, 1), 3e-9), np.zeros((1, 4, 1)), 1e-6)  # no norm: the absolute error
    assert zero.rel_err == pytest.approx(6e-9) and zero.passed
    nan = compare(np.array([[[np.nan], [1.0]]]), np.ones((1, 2, 1)), 1.0)
    assert nan.rel_err == math.inf and nan.max_abs_err == math.inf and nan.nonfinite == 1
    assert not nan.passed and nan.describe() == "1 non-finite values in the result"


def test_load_input_returns_the_array_as_float64_and_refuses_pickles(tmp_path) -> None:
    path = tmp_path / "x.npy"
    x = make_input((2, 5, 3)).astype(np.float32)
    np.save(path, x)
    loaded = load_input(path)
    assert loaded.dtype == np.float64 and loaded.shape == (2, 5, 3)
    np.testing.assert_array_equal(loaded, x.astype(np.float64))
    pickled = tmp_path / "p.npy"
    np.save(pickled, np.array([[[1.0]]], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="cannot load"):
        load_input(pickled)
