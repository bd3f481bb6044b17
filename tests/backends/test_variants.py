"""Each form's idiom is the library's own call; hand-tuned variants are named, offered and checked."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from backends import REGISTRY, Backend
from backends.base import CaseUnsupported
from suite.cases import Case, RunOptions
from suite.reference import make_input
from suite.runner import run_case
from tests.conftest import adapter_or_skip

CHECK_ONLY = RunOptions(measure=False, isolate=False)

#: Every (backend, form, variant) the registry offers.
OFFERED = [(b, f, v) for b, cls in REGISTRY.items() for f, vs in cls.form_variants.items() for v in vs]


def test_the_variants_are_the_tuned_kernels_and_nothing_else() -> None:
    assert sorted(OFFERED) == [
        ("numba", "cumsum", "parallel"),
        ("numba", "loop", "parallel"),
        ("numpy", "cumsum", "staged"),
    ]


def _counts(T: int, dtype: Any) -> np.ndarray:
    return np.arange(1, T + 1, dtype=dtype).reshape(1, T, 1)


def test_numpy_cumsum_is_np_cumsum_over_arange_bit_for_bit() -> None:
    adapter = adapter_or_skip("numpy")
    for shape in ((8, 300, 64), (2, 33, 3)):  # B*C above and below the staged scan's threshold
        x = adapter.to_device(make_input(shape, kind="offset"), "float32")
        got = adapter.build("cumsum", x, "ieee").fn()
        np.testing.assert_array_equal(got, np.cumsum(x, axis=1) / _counts(shape[1], x.dtype))


@pytest.mark.parametrize("name", ["torch", "torch-compile", "jax"])
def test_array_library_cumsum_is_its_own_cumsum(name: str) -> None:
    adapter = adapter_or_skip(name)
    x_host = make_input((4, 100, 16), kind="offset")
    x = adapter.to_device(x_host, "float32")
    got = adapter.to_numpy(adapter.build("cumsum", x, "ieee").fn())
    if name == "jax":
        import jax
        import jax.numpy as jnp

        expected = adapter.to_numpy(jax.jit(lambda a: jnp.cumsum(a, axis=1) / jnp.asarray(_counts(100, "float32")))(x))
    else:
        import torch

        expected = adapter.to_numpy(torch.cumsum(x, dim=1) / torch.from_numpy(_counts(100, "float32")).to(x.device))
    if name == "torch-compile":  # Inductor writes its own scan: the same sums, not necessarily the same bits
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=0)
    else:
        np.testing.assert_array_equal(got, expected)


def test_numba_idioms_are_serial_and_the_variants_parallel() -> None:
    adapter = adapter_or_skip("numba")
    from backends.numba_backend import DISPATCHERS

    x = adapter.to_device(make_input((2, 16, 4)), "float64")
    for form in ("cumsum", "loop"):
        adapter.build(form, x, "ieee")
        adapter.build_variant(form, x, "ieee", "parallel")
        assert not DISPATCHERS[form].targetoptions.get("parallel")
        assert DISPATCHERS[f"{form}[parallel]"].targetoptions.get("parallel")
        assert DISPATCHERS[form] is not DISPATCHERS[f"{form}[parallel]"]


@pytest.mark.parametrize(("name", "form", "variant"), OFFERED)
@pytest.mark.parametrize(
    ("shape", "kind", "dtype"),
    [
        ((4, 8, 2), "normal", "float32"),
        ((2, 300, 128), "offset", "float32"),  # B*C = 256: NumPy's staged scan runs, in blocks
        ((1, 4097, 3), "offset", "float32"),
        ((3, 1, 5), "normal", "float32"),
        ((2, 100, 70), "normal", "float64"),
    ],
)
def test_every_variant_agrees_with_the_reference(
    name: str, form: str, variant: str, shape: tuple[int, int, int], kind: str, dtype: str
) -> None:
    adapter = adapter_or_skip(name)
    B, T, C = shape
    row = run_case(Case(name, form, B, T, C, dtype=dtype, input=kind, variant=variant), adapter, CHECK_ONLY)
    assert row.status == "ok", row.reason
    assert 0 <= row.rel_err <= row.tol
    assert row.key.startswith(f"{name}:{form}[{variant}]:")


@pytest.mark.parametrize(
    ("name", "variant", "why"),
    [
        ("numpy", "parallel", "numpy has no cumsum variant 'parallel'; it offers staged"),
        ("numba", "staged", "numba has no cumsum variant 'staged'; it offers parallel"),
        ("torch", "staged", "torch has no cumsum variant 'staged'"),
    ],
)
def test_a_variant_the_backend_lacks_is_refused_with_a_reason(name: str, variant: str, why: str) -> None:
    adapter: Backend = adapter_or_skip(name)
    assert adapter.variant_unsupported("cumsum", variant) == why
    assert adapter.variant_unsupported("cumsum", "") is None
    with pytest.raises(CaseUnsupported, match=f"^{why}$"):
        adapter.build_variant("cumsum", adapter.to_device(make_input((1, 4, 2)), "float32"), "ieee", variant)
    row = run_case(Case(name, "cumsum", 1, 4, 2, variant=variant), adapter, CHECK_ONLY)
    assert (row.status, row.reason) == ("skipped", why)
