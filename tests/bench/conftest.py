"""The ``causal_case`` fixture: a suite case ready for pytest-benchmark.

Use it in your own benchmark files next to ``test_cases.py``::

    def test_mine(benchmark, causal_case):
        case = causal_case("torch", "cumsum", (8, 1024, 64))
        result = benchmark(case)  # fn() and the device wait, every call
        assert case.check(result).passed
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.bench.prepared import PreparedCase, prepare


@pytest.fixture
def causal_case() -> Callable[..., PreparedCase]:
    """A factory: ``causal_case(backend, form, (B, T, C), dtype=..., precision=..., input=...)``.

    Builds the callable through the backend adapter, checks it against the float64
    reference (the test fails on disagreement, before timing), and skips with the
    reason where the backend is unavailable or the case unsupported.
    """
    return prepare
