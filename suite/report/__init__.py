"""Wing 1: reading stored results; nothing here runs a benchmark.

- ``markdown``: the ``report.md`` of a run (``render``, ``write_report``), from the
  tables in ``tables``;
- ``plots``: its PNG/SVG figures (matplotlib, optional, imported when drawing);
- ``scaling``: ``time = a * T^k`` per backend and form, and where curves cross;
- ``export``: the rows in the JSON of github-action-benchmark and Bencher.
"""

from __future__ import annotations

from suite.report.export import FORMATS, export_text
from suite.report.markdown import WrittenReport, render, write_report
from suite.report.scaling import ScalingFit, find_crossovers, fit_scaling

__all__ = [
    "FORMATS",
    "ScalingFit",
    "WrittenReport",
    "export_text",
    "find_crossovers",
    "fit_scaling",
    "render",
    "write_report",
]
