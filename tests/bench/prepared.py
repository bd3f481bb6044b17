"""A suite case made ready for pytest-benchmark: built, checked, and timed with a device wait.

pytest-benchmark times the callable it is given with a host clock and returns as
soon as the callable does. Asynchronous backends (torch on CUDA, JAX) return
before the device has finished, so timing ``built.fn`` alone measures the launch,
not the work. ``PreparedCase.__call__`` runs ``fn()`` and then the adapter's
``sync(result)``, the same hook the suite's own timer uses, so every timed call
includes the wait. (The suite's timer waits once per sample of many calls;
here every call waits, which adds the sync cost, a few microseconds on a GPU.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from backends import Backend, Built, CaseUnsupported
from suite.cases import PRESETS, Case, RunOptions, Shape, parse_sizes
from suite.guards import skip_reason
from suite.reference import Agreement, compare, tolerance
from suite.runner import build_and_check, case_input
from tests.conftest import adapter_or_skip

#: Size lists (presets or BxTxC, comma separated) the benchmarks cover; the
#: environment variable of the same name overrides the default.
SIZES_ENV = "CAUSAL_BENCH_SIZES"
DEFAULT_SIZES = "seed,small"


def bench_sizes() -> list[Shape]:
    """The sizes from ``CAUSAL_BENCH_SIZES`` (default ``seed,small``), in order, without repeats."""
    return list(parse_sizes(os.environ.get(SIZES_ENV, DEFAULT_SIZES)))


@dataclass
class PreparedCase:
    """A built, checked case; calling it runs the form once and waits for the result."""

    case: Case
    adapter: Backend
    built: Built
    reference: np.ndarray
    agreement: Agreement

    def __call__(self) -> Any:
        result = self.built.fn()
        self.adapter.sync(result)
        return result

    def check(self, result: Any) -> Agreement:
        """Agreement of a (later) result with the float64 reference."""
        return compare(self.adapter.to_numpy(result), self.reference, self.agreement.tol)

    def info(self) -> dict[str, Any]:
        """What pytest-benchmark stores in ``extra_info`` (saved JSON, --benchmark-compare)."""
        c = self.case
        return {
            "backend": c.backend,
            "device": self.adapter.device(),
            "form": c.form,
            "B": c.B,
            "T": c.T,
            "C": c.C,
            "dtype": c.dtype,
            "precision": c.precision,
            "input": c.input,
            "compile_s": self.built.compile_s,
            "rel_err": self.agreement.rel_err,
            "tol": self.agreement.tol,
            "synced": True,
        }


def prepare(
    backend: str,
    form: str,
    shape: Shape,
    dtype: str = "float32",
    precision: str = "ieee",
    input: str = "normal",
    options: RunOptions | None = None,
) -> PreparedCase:
    """Build ``form`` on ``backend`` for a seeded input of ``shape`` and check it.

    Skips (``pytest.skip``, with the reason) where the suite would write a
    ``skipped`` row: backend unavailable, combination unsupported, or a guard
    refusing the case. Fails the test where the result disagrees with the
    float64 reference, before anything is timed.
    """
    adapter = adapter_or_skip(backend)
    case = Case(backend, form, *shape, dtype=dtype, precision=precision, input=input)
    options = options or RunOptions()
    why = skip_reason(case, adapter, options)
    if why:
        pytest.skip(why)
    try:
        built, ref, agreement, _ = build_and_check(
            case, adapter, case_input(case, options), tolerance(dtype, precision, shape[1])
        )
    except CaseUnsupported as e:
        pytest.skip(str(e))
    if not agreement.passed:
        pytest.fail(f"{case.label()}: {agreement.describe()}; not timed")
    return PreparedCase(case, adapter, built, ref, agreement)


__all__ = ["DEFAULT_SIZES", "PRESETS", "SIZES_ENV", "PreparedCase", "bench_sizes", "prepare"]
