"""The suite's cases as pytest-benchmark benchmarks: every backend x form x size.

Run them with ``pytest tests/bench --benchmark-only`` (plus any pytest-benchmark
option: ``--benchmark-autosave``, ``--benchmark-compare``, ``--benchmark-histogram``);
``nox -s pybench`` does that. Sizes are the ``seed`` and ``small`` presets unless
``CAUSAL_BENCH_SIZES`` names others (``CAUSAL_BENCH_SIZES=medium``). CI runs them
once each with ``--benchmark-disable`` (``nox -s tests``); plain ``pytest`` does
not collect this folder (``norecursedirs`` in pyproject.toml).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from backends import REGISTRY
from suite.forms import FORM_NAMES
from tests.bench.prepared import PreparedCase, bench_sizes

# Forms a backend does not implement are left out here, not collected and skipped.
CASES = [(b, f, s) for b, cls in REGISTRY.items() for s in bench_sizes() for f in FORM_NAMES if f in cls.forms]


@pytest.mark.parametrize(
    ("backend", "form", "shape"), CASES, ids=[f"{b}-{f}-{s[0]}x{s[1]}x{s[2]}" for b, f, s in CASES]
)
def test_case(benchmark, causal_case: Callable[..., PreparedCase], backend: str, form: str, shape) -> None:
    case = causal_case(backend, form, shape)
    # One group per form and size: pytest-benchmark's table then compares the backends.
    benchmark.group = f"{form} {shape[0]}x{shape[1]}x{shape[2]}"
    benchmark.extra_info.update(case.info())
    result = benchmark(case)
    # The timed calls still compute the causal mean, not just something fast.
    agreement = case.check(result)
    assert agreement.passed, agreement.describe()
