"""The causal-bench harness: forms, reference, timing, runner, results, reports.

Imports no framework: it reaches torch and jax only through ``backends``'
adapters, which import them lazily. ``import suite`` works with NumPy alone.
"""

from __future__ import annotations

__version__ = "0.1.0"
