"""The one tidy results table: schema, rows, the files of a run and pandas loading.

One row per case. ``schema`` defines ``Row`` and its columns and versions;
``csv_store`` and ``json_store`` are the two file formats; ``atomic`` writes
them safely. This module loads a stored run (``load_run``) and frames runs for
analysis (``load_frame``), and re-exports the names the rest of the suite uses.

Files of one run, in its output folder:

- ``results.csv``: the rows, appended and flushed one by one while the run goes;
- ``results.json``: run metadata and the rows;
- ``report.md``: the markdown report, built from the stored rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from suite.results.atomic import prepare_folder, write_atomic
from suite.results.csv_store import (
    RowLog,
    csv_header,
    read_csv_records,
    read_csv_rows,
    row_to_csv_line,
    write_csv,
)
from suite.results.json_store import read_json, write_json
from suite.results.schema import (
    COLUMNS,
    CSV_NAME,
    FAILED_STATUSES,
    JSON_NAME,
    READABLE_VERSIONS,
    REPORT_NAME,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    STATUSES,
    ResultsError,
    Row,
    measurement_fields,
    unreadable_version,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "COLUMNS",
    "CSV_NAME",
    "FAILED_STATUSES",
    "JSON_NAME",
    "READABLE_VERSIONS",
    "REPORT_NAME",
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "STATUSES",
    "ResultsError",
    "Row",
    "RowLog",
    "csv_header",
    "load_frame",
    "load_run",
    "measurement_fields",
    "prepare_folder",
    "read_csv_records",
    "read_csv_rows",
    "read_json",
    "row_to_csv_line",
    "to_frame",
    "unreadable_version",
    "write_atomic",
    "write_csv",
    "write_json",
]


def load_run(path: str | Path) -> tuple[dict[str, Any], list[Row]]:
    """Metadata and rows of one run, from its folder, its JSON or its CSV.

    A folder prefers ``results.json`` and falls back to ``results.csv`` (an
    interrupted run may have only the CSV complete). Raises ResultsError.
    """
    p = Path(path)
    if p.is_dir():
        if (p / JSON_NAME).exists():
            meta, rows = read_json(p / JSON_NAME)
            if (p / CSV_NAME).exists():
                csv_rows = read_csv_rows(p / CSV_NAME)
                if len(csv_rows) > len(rows):  # the JSON predates an interruption
                    rows = csv_rows
            return meta, rows
        if (p / CSV_NAME).exists():
            return {}, read_csv_rows(p / CSV_NAME)
        raise ResultsError(f"{p} holds no {JSON_NAME} or {CSV_NAME}")
    if not p.exists():
        raise ResultsError(f"{p} does not exist")
    if p.suffix == ".json":
        return read_json(p)
    if p.suffix == ".csv":
        return {}, read_csv_rows(p)
    raise ResultsError(f"{p}: expected a results folder, .json or .csv file")


def to_frame(rows: Sequence[Row]) -> pd.DataFrame:
    """The rows as a pandas DataFrame with one column per schema field plus ``key``."""
    import pandas as pd

    frame = pd.DataFrame([r.to_dict() for r in rows], columns=list(COLUMNS))
    frame.insert(0, "key", [r.key for r in rows])
    return frame


def load_frame(*paths: str | Path) -> pd.DataFrame:
    """Load one or many stored runs into one DataFrame (``run_id`` tells them apart).

    Each path is a run folder, a ``results.json`` or a ``results.csv`` (as for
    :func:`load_run`). The frame has a ``key`` column (the case identity across
    runs) and one column per schema field (``COLUMNS``), one row per case; rows
    that carry no ``run_id`` (a CSV written by hand or by an older tool) take the
    run's metadata ``run_id``, else the path they came from. Raises ResultsError.

    This is the public entry point for your own analysis::

        from suite.results import load_frame
        df = load_frame("results/reference-cpu", "results/bench")
        ok = df[df.status == "ok"]
        ok.pivot_table("median_s", ["run_id", "backend", "form"], "T")
        # one run against another, case by case
        wide = ok.pivot_table("median_s", "key", "run_id")
    """
    import pandas as pd

    frames = []
    for p in paths:
        meta, rows = load_run(p)
        frame = to_frame(rows)
        fallback = str(meta.get("run_id") or p)
        frame["run_id"] = frame["run_id"].where(frame["run_id"] != "", fallback)
        frames.append(frame)
    if not frames:
        raise ResultsError("no results given")
    return pd.concat(frames, ignore_index=True)
