"""The scaling model: exponents recovered from synthetic timings, crossovers, changes between runs.

The least-squares fit itself is tested in tests/test_stats.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from suite.cases import Case
from suite.report.scaling import (
    GroupKey,
    exponent_changes,
    find_crossovers,
    fit_scaling,
    group_key,
)
from suite.results import Row

TS = (64, 128, 256, 512, 1024, 2048, 4096)


def timed_row(
    backend: str, form: str, T: int, seconds: float, B: int = 2, C: int = 8, dtype: str = "float32", **fields
) -> Row:
    return Row(Case(backend, form, B, T, C, dtype=dtype), device="cpu", status="ok", median_s=seconds, **fields)


def power_rows(
    backend: str, form: str, a: float, k: float, ts=TS, noise: float = 0.0, seed: int = 0, **kw
) -> list[Row]:
    rng = np.random.default_rng(seed)
    return [timed_row(backend, form, T, a * T**k * math.exp(noise * rng.standard_normal()), **kw) for T in ts]


@pytest.mark.parametrize(("form", "k"), [("matrix", 2.0), ("cumsum", 1.0), ("loop", 1.5)])
def test_fit_recovers_known_exponents_under_noise(form, k):
    # 5% log-normal noise on every point, as a noisy shared machine gives.
    rows = power_rows("torch", form, 2e-9, k, noise=0.05, seed=7)
    (fit,) = fit_scaling(rows)
    assert fit.key == GroupKey("torch", "cpu", form, "float32", "ieee", "normal", 2, 8)
    assert fit.n_points == len(TS)
    assert fit.sizes == TS
    assert fit.k == pytest.approx(k, abs=0.05)
    # The noise in log space is 0.05; over log T spanning 4.2 the slope's error is about 0.02.
    assert 0.005 < fit.k_stderr < 0.05
    assert abs(fit.k - k) < 4 * fit.k_stderr
    assert fit.predict(1024) == pytest.approx(2e-9 * 1024**k, rel=0.1)
    assert fit.exponent() == f"{fit.k:.2f}±{fit.k_stderr:.2f}"


def test_overhead_flattens_k_and_the_tail_slope_sees_the_asymptote():
    # 200 us fixed overhead plus a T^2 term: the whole-range k is well below 2, the tail near it.
    rows = [timed_row("numpy", "matrix", T, 200e-6 + 1e-9 * T**2) for T in TS]
    (fit,) = fit_scaling(rows)
    assert fit.k < 1.5
    expected_tail = math.log((200e-6 + 1e-9 * 4096**2) / (200e-6 + 1e-9 * 2048**2)) / math.log(2)
    assert fit.k_tail == pytest.approx(expected_tail)
    assert 1.9 < fit.k_tail < 2.0


def test_groups_are_split_by_backend_form_b_c_and_variant_and_need_two_sizes():
    rows = [
        *power_rows("numpy", "cumsum", 1e-8, 1.0),
        *power_rows("torch", "cumsum", 1e-8, 1.0, B=4),
        *power_rows("torch", "cumsum", 1e-8, 1.0, C=16),
        timed_row("jax", "cumsum", 64, 1e-6),  # one size: no fit
        timed_row("jax", "cumsum", 64, 1e-6, dtype="float64"),
        timed_row("jax", "cumsum", 128, 2e-6, dtype="float64"),
    ]
    fits = fit_scaling(rows)
    keys = [(f.key.backend, f.key.B, f.key.C, f.key.dtype) for f in fits]
    assert keys == [
        ("jax", 2, 8, "float64"),
        ("numpy", 2, 8, "float32"),
        ("torch", 2, 16, "float32"),
        ("torch", 4, 8, "float32"),
    ]
    jax = fits[0]
    assert jax.k == pytest.approx(1.0)
    assert math.isnan(jax.k_stderr)  # two sizes: exact line, unknown error
    assert jax.exponent() == "1.00"


def test_rows_that_are_not_timed_are_left_out():
    rows = power_rows("numpy", "loop", 1e-9, 2.0, ts=(64, 128, 256))
    rows += [
        Row(Case("numpy", "loop", 2, 512, 8), device="cpu", status="skipped", reason="too slow"),
        Row(Case("numpy", "loop", 2, 1024, 8), device="cpu", status="mismatch", median_s=1.0),
        timed_row("numpy", "loop", 2048, math.nan),
        timed_row("numpy", "loop", 4096, 0.0),
    ]
    (fit,) = fit_scaling(rows)
    assert fit.sizes == (64, 128, 256)
    assert fit.k == pytest.approx(2.0)


def test_crossover_between_forms_is_interpolated_in_log_log():
    # matrix: 1e-9 T^2; cumsum: 1e-6 T. Equal at T = 1000, between the measured 512 and 1024.
    rows = [*power_rows("torch", "matrix", 1e-9, 2.0), *power_rows("torch", "cumsum", 1e-6, 1.0)]
    (c,) = find_crossovers(rows)
    assert (c.faster_below, c.faster_above) == ("matrix", "cumsum")
    crossing_t = c.T
    assert crossing_t == pytest.approx(1000.0, rel=1e-9)  # both are straight lines in log-log: exact
    assert c.between == (512, 1024)
    assert c.seconds == pytest.approx(1e-3, rel=1e-9)
    assert c.key.backend == "torch"
    assert c.key.form == ""
    assert c.describe() == "on torch (cpu), cumsum overtakes matrix at T ~ 1e+03 (between 512 and 1024)"


def test_crossovers_need_the_same_backend_b_and_c():
    rows = [
        *power_rows("torch", "matrix", 1e-9, 2.0),
        *power_rows("numpy", "cumsum", 1e-6, 1.0),  # another backend
        *power_rows("torch", "cumsum", 1e-6, 1.0, C=16),  # another C
    ]
    assert find_crossovers(rows) == []


def test_curves_that_cross_twice_give_two_crossovers_and_backends_can_be_compared():
    ts = (100, 200, 400, 800)
    numpy = [timed_row("numpy", "softmax", T, s) for T, s in zip(ts, (1.0, 2.0, 4.0, 8.0), strict=True)]
    torch = [timed_row("torch", "softmax", T, s) for T, s in zip(ts, (2.0, 1.0, 2.0, 16.0), strict=True)]
    found = find_crossovers([*numpy, *torch], vary="backend")
    assert [(c.faster_below, c.faster_above, c.between) for c in found] == [
        ("numpy (cpu)", "torch (cpu)", (100, 200)),
        ("torch (cpu)", "numpy (cpu)", (400, 800)),
    ]
    # log ratio torch/numpy: log 2 at 100, -log 2 at 200: the midpoint in log T.
    first_t, second_t = found[0].T, found[1].T
    assert first_t == pytest.approx(math.sqrt(100 * 200))
    # -log 2 at 400, +log 2 at 800.
    assert second_t == pytest.approx(math.sqrt(400 * 800))
    assert found[0].key.form == "softmax"
    assert found[0].key.backend == ""
    assert find_crossovers([*numpy, *torch], vary="form") == []
    with pytest.raises(ValueError, match="vary"):
        find_crossovers(numpy, vary="dtype")


def test_a_tie_at_a_measured_size_is_the_crossover():
    ts = (100, 200, 400)
    a = [timed_row("jax", "matrix", T, s) for T, s in zip(ts, (1.0, 2.0, 4.0), strict=True)]
    b = [timed_row("jax", "softmax", T, s) for T, s in zip(ts, (2.0, 2.0, 2.0), strict=True)]
    (c,) = find_crossovers([*a, *b])
    assert c.T == 200
    assert c.between == (100, 400)
    assert (c.faster_below, c.faster_above) == ("matrix", "softmax")


def test_exponent_changes_report_a_form_whose_scaling_changed():
    base = [*power_rows("torch", "cumsum", 1e-8, 1.0, noise=0.02, seed=1), *power_rows("torch", "matrix", 1e-9, 2.0)]
    head = [
        *power_rows("torch", "cumsum", 1e-9, 1.5, noise=0.02, seed=2),  # became superlinear
        *power_rows("torch", "matrix", 2e-9, 2.05),  # within min_delta
        *power_rows("numpy", "matrix", 1e-9, 1.0),  # not in base
    ]
    (change,) = exponent_changes(base, head)
    assert change.key == group_key(base[0])
    assert change.base.k == pytest.approx(1.0, abs=0.05)
    assert change.head.k == pytest.approx(1.5, abs=0.05)
    assert change.delta == pytest.approx(0.5, abs=0.07)
    assert abs(change.z) > 2
    assert change.describe().startswith("torch (cpu) cumsum B=2 C=8 float32: scaling exponent k 1.0")
    assert "(+0.5" in change.describe()
    assert [c.key.form for c in exponent_changes(base, head, min_delta=0.01)] == ["cumsum", "matrix"]


def test_exponent_changes_fit_both_runs_on_the_common_sizes():
    # Same curve, but head measured only the large sizes where the overhead no longer shows.
    curve = [timed_row("numpy", "matrix", T, 1e-4 + 1e-9 * T**2) for T in TS]
    head = [r for r in curve if r.T >= 1024]
    assert exponent_changes(curve, head) == []
    # On the whole ranges the two fits would differ by far more than 0.2.
    k_all = fit_scaling(curve)[0].k
    k_large = fit_scaling(head)[0].k
    assert k_large - k_all > 0.2


def test_exponent_change_within_the_noise_is_not_reported():
    base = power_rows("torch", "softmax", 1e-9, 2.0, ts=(64, 128, 256), noise=0.5, seed=3)
    head = power_rows("torch", "softmax", 1e-9, 2.0, ts=(64, 128, 256), noise=0.5, seed=4)
    fits_b, fits_h = fit_scaling(base)[0], fit_scaling(head)[0]
    assert abs(fits_h.k - fits_b.k) > 0.2  # a large raw difference from noise alone
    assert exponent_changes(base, head) == []
