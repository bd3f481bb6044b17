"""Backend adapters for the causal-averaging forms.

Importing this package imports no framework: each adapter imports its framework
when first used. ``REGISTRY`` maps CLI names to adapter classes; adding a backend
is one module and one entry here, or one ``CAUSAL_BENCH_BACKENDS`` plugin entry.
Each adapter declares the forms it implements (``Backend.forms``), so a new
backend may bring a form name no other backend knows.
"""

from __future__ import annotations

import importlib
import os

from backends.base import DEVICES, DTYPES, PRECISIONS, Availability, Backend, Built, CaseUnsupported
from backends.jax_jit import JaxJitBackend
from backends.numba_backend import NumbaBackend
from backends.numpy_backend import NumpyBackend
from backends.torch_compile import TorchCompileBackend
from backends.torch_eager import TorchEagerBackend
from backends.triton_backend import TritonBackend

REGISTRY: dict[str, type[Backend]] = {
    cls.name: cls
    for cls in (NumpyBackend, TorchEagerBackend, TorchCompileBackend, JaxJitBackend, NumbaBackend, TritonBackend)
}

#: Extra adapters to register, as ``module:Class`` separated by commas. Read at
#: import, so worker processes (which inherit the environment) see them too.
PLUGINS_ENV = "CAUSAL_BENCH_BACKENDS"


def _load_plugins() -> None:
    for spec in filter(None, (s.strip() for s in os.environ.get(PLUGINS_ENV, "").split(","))):
        module, _, attr = spec.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        REGISTRY[cls.name] = cls


_load_plugins()


def get_backend(name: str, device: str = "auto") -> Backend:
    """Instantiate the adapter called ``name``; raise KeyError naming the choices."""
    try:
        cls = REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown backend {name!r}; choose from {', '.join(REGISTRY)}") from None
    return cls(device)


__all__ = [
    "DEVICES",
    "DTYPES",
    "PRECISIONS",
    "REGISTRY",
    "Availability",
    "Backend",
    "Built",
    "CaseUnsupported",
    "get_backend",
]
