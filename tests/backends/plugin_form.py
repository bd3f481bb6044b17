"""A backend in one module that brings a form no other backend knows.

``CAUSAL_BENCH_BACKENDS=tests.backends.plugin_form:AccumulatingBackend`` registers
it. It imports only NumPy and ``backends`` modules, because the plugin loader
imports it while ``backends`` is still initialising.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from backends._common import HostBackend, forms_table
from backends.base import Built

PLUGIN = "tests.backends.plugin_form:AccumulatingBackend"


def accumulate(x: np.ndarray) -> np.ndarray:
    """The causal mean through ``np.add.accumulate``: a form name only this backend implements."""
    T = x.shape[1]
    out: np.ndarray = np.add.accumulate(x, axis=1) / np.arange(1, T + 1, dtype=x.dtype).reshape(1, T, 1)
    return out


class AccumulatingBackend(HostBackend):
    name = "accumulating"
    module = "numpy"
    extra = "numpy"
    forms: ClassVar[Mapping[str, Callable[..., Any]]] = forms_table(accumulate)

    def versions(self) -> dict[str, str]:
        return {"numpy": np.__version__}

    def _build(self, form: str, x: Any, precision: str) -> Built:
        impl = self.forms[form]
        return Built(lambda: impl(x))
