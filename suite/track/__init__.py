"""Wing 2: CI tracking of stored runs; only ``ab`` starts benchmark processes.

- ``config``: the thresholds and their ``[tool.causal-bench.compare]`` table;
- ``compare``: base against head, case by case: verdicts and the machine check;
- ``render``: a comparison as markdown, CSV and JSON;
- ``history``: per-case trends over the runs of one machine, step changes flagged;
- ``ab``: two revisions measured interleaved (in lockstep, or ABBA) in one job, then compared;
- ``gate``: the CI recipe: ``ab`` on instruction counts and on wall-clock, one summary;
- ``power``: the gate's power from stored rounds (``scripts/gatebench.py``);
- ``dashboard``, ``dashboard_page``: the trends as one offline HTML page (plotly), per machine.
"""

from __future__ import annotations

from suite.track.compare import CompareError, Comparison, compare_rows
from suite.track.config import CompareConfig, Thresholds, load_config
from suite.track.history import History, build_history

__all__ = [
    "CompareConfig",
    "CompareError",
    "Comparison",
    "History",
    "Thresholds",
    "build_history",
    "compare_rows",
    "load_config",
]
