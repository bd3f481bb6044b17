"""Shared fixtures: one adapter per backend, parametrized.

A backend that is not installed is skipped with its reason, except where the
environment names it in CAUSAL_BENCH_REQUIRE_BACKENDS (``nox -s tests`` names every
backend that ``.[all]`` installs): there a missing backend fails the run instead of
passing quietly.
"""

from __future__ import annotations

import os
import tempfile

import pytest

from backends import REGISTRY, Backend, _probes, get_backend

REQUIRED = {b for b in os.environ.get("CAUSAL_BENCH_REQUIRE_BACKENDS", "").split(",") if b}
# Timed cases in tests flag contention rather than wait for a quiet machine (workers
# and subprocesses inherit it); tests/test_contention.py sets its policies explicitly.
os.environ.setdefault("CAUSAL_BENCH_ON_CONTENTION", "flag")
# Compile probes kept between processes (backends._probes) go to a folder of this
# session's own, so that no test reads what a user's runs measured.
os.environ.setdefault(_probes.CACHE_ENV, tempfile.mkdtemp(prefix="causal-bench-cache-"))
_ADAPTERS: dict[str, Backend] = {}


def adapter_or_skip(name: str) -> Backend:
    if name not in _ADAPTERS:
        _ADAPTERS[name] = get_backend(name)
    adapter = _ADAPTERS[name]
    avail = adapter.availability()
    if not avail.ok:
        if name in REQUIRED:
            pytest.fail(f"backend {name} is required here but unavailable: {avail.reason}")
        pytest.skip(avail.reason)
    return adapter


@pytest.fixture(params=list(REGISTRY))
def backend(request: pytest.FixtureRequest) -> Backend:
    return adapter_or_skip(request.param)
