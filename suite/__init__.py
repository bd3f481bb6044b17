"""The causal-bench harness: the measuring core, and three wings (report, track, cli).

Imports no framework: it reaches torch and jax only through ``backends``'
adapters, which import them lazily. ``import suite`` works with NumPy alone, and
the public names below load their modules on first use.

Core modules: ``forms`` (what each form is and costs), ``reference`` (what is
right), ``timing`` (how to time), ``ceilings`` and ``machine`` (what the machine
can do and is), ``cases`` -> ``guards`` -> ``runner`` / ``workers`` -> ``session``
(a sweep to rows, in which process), ``results`` / ``stats`` / ``format`` (the one
table, every statistic, every unit). Wings: ``report`` (reading stored results),
``track`` (CI tracking), ``cli`` (the command line).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_PUBLIC: dict[str, str] = {
    "Timer": "suite.timing",
    "TimerConfig": "suite.timing",
    "Measurement": "suite.timing",
    "Case": "suite.cases",
    "SweepSpec": "suite.cases",
    "RunOptions": "suite.cases",
    "Row": "suite.results",
    "load_frame": "suite.results",
    "load_run": "suite.results",
    "run_cases": "suite.session",
}

__all__ = [
    "Case",
    "Measurement",
    "Row",
    "RunOptions",
    "SweepSpec",
    "Timer",
    "TimerConfig",
    "load_frame",
    "load_run",
    "run_cases",
]
assert sorted(_PUBLIC) == __all__

if TYPE_CHECKING:
    from suite.cases import Case, RunOptions, SweepSpec
    from suite.results import Row, load_frame, load_run
    from suite.session import run_cases
    from suite.timing import Measurement, Timer, TimerConfig


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'suite' has no attribute {name!r}")
