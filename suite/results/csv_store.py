"""The CSV store: ``results.csv``, appended and flushed row by row while a run goes
(so an interrupted run keeps every finished row), rewritten atomically at the end."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from suite.results.atomic import write_atomic
from suite.results.schema import (
    _BOOL,
    _FLOAT,
    _INT,
    _INT_LISTS,
    COLUMNS,
    READABLE_VERSIONS,
    ResultsError,
    Row,
    unreadable_version,
    upgrade,
)


def _csv_cell(name: str, value: Any) -> str:
    if name == "samples_s":
        return " ".join(repr(float(v)) for v in value)
    if name in _INT_LISTS:
        return " ".join(str(int(v)) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isnan(value):
        return ""
    return str(value)


def _parse_cell(name: str, text: str) -> Any:
    if name == "samples_s":
        return [float(v) for v in text.split()]
    if name in _INT_LISTS:
        return [int(v) for v in text.split()]
    if name in _BOOL:
        return text == "true"
    if name in _INT:
        return int(text) if text else 0
    if name in _FLOAT:
        return float(text) if text else math.nan
    return text


def row_to_csv_line(row: Row) -> str:
    cells = [_csv_cell(c, getattr(row, c)) for c in COLUMNS]
    # Minimal quoting leaves a bare \r unquoted when lines end in \n, and readers
    # take it for a line break: quote the whole row when one is present.
    buf = io.StringIO()
    if any("\r" in c for c in cells):
        csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL).writerow(cells)
    else:
        csv.writer(buf, lineterminator="\n").writerow(cells)
    return buf.getvalue()


def csv_header() -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(COLUMNS)
    return buf.getvalue()


class RowLog:
    """Appends rows to a CSV file and flushes each one to disk at once."""

    def __init__(self, path: Path, resume: bool = False) -> None:
        self.path = path
        fresh = not (resume and path.exists() and path.stat().st_size > 0)
        if not fresh:
            _cut_torn_tail(path)
            _upgrade_columns(path)
        self._fh = path.open("w" if fresh else "a", encoding="utf-8", newline="")
        if fresh:
            self._fh.write(csv_header())
            self._flush()

    def _flush(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def append(self, row: Row) -> None:
        self._fh.write(row_to_csv_line(row))
        self._flush()

    def close(self) -> None:
        self._fh.close()


def _cut_torn_tail(path: Path) -> None:
    """Drop a half-written last record (a killed run) so appends start clean."""
    with path.open(encoding="utf-8", errors="replace", newline="") as fh:
        text = fh.read()
    records, _ = read_csv_records(text)
    if text.endswith("\n") and len(records) == len(_records(text)):
        return
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(records)
    write_atomic(path, buf.getvalue())


def _upgrade_columns(path: Path) -> None:
    """Rewrite a CSV of an older schema with today's columns so appended rows match its header."""
    with path.open(encoding="utf-8", newline="") as fh:
        header = fh.readline()
    if header != csv_header():
        write_csv(path, read_csv_rows(path))


def _records(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def read_csv_records(text: str) -> tuple[list[list[str]], list[str]]:
    """Whole records of a results CSV (header first) and the header.

    A last record that is torn (no final newline, or cut inside a quoted field,
    as a killed run leaves it) is dropped.
    """
    records = _records(text)
    if not records:
        return [], []
    header = records[0]
    body = records[1:]
    # Torn: no final newline, or cut inside a quoted field (an odd count of quotes).
    if body and (not text.endswith("\n") or text.count('"') % 2 == 1):
        body = body[:-1]
    return [header, *body], header


def read_csv_rows(path: Path) -> list[Row]:
    """Rows of a results CSV. A torn last line (a killed run) is dropped."""
    try:
        with path.open(encoding="utf-8", newline="") as fh:  # keep \r inside fields
            text = fh.read()
    except OSError as e:
        raise ResultsError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ResultsError(f"{path} is not a text CSV file") from None
    try:
        records, header = read_csv_records(text)
    except csv.Error as e:
        raise ResultsError(f"{path} is not a readable CSV file: {e}") from None
    if not records:
        raise ResultsError(f"{path} is empty")
    if "schema_version" not in header or "backend" not in header:
        raise ResultsError(f"{path} is not a causal-bench results CSV (no schema_version column)")
    rows = []
    for lineno, values in enumerate(records[1:], start=2):
        if len(values) != len(header):
            raise ResultsError(f"{path}: record {lineno}: expected {len(header)} fields, found {len(values)}")
        record = dict(zip(header, values, strict=True))
        version = record.get("schema_version", "")
        if version not in {str(v) for v in READABLE_VERSIONS}:
            raise ResultsError(f"{path}:{lineno}: {unreadable_version(version or '?')}")
        try:
            row = Row.from_dict({k: _parse_cell(k, v) for k, v in record.items()})
        except (ValueError, TypeError) as e:
            raise ResultsError(f"{path}:{lineno}: unreadable row ({e})") from None
        rows.append(upgrade(row, int(version)))
    return rows



def write_csv(path: Path, rows: Iterable[Row]) -> None:
    write_atomic(path, csv_header() + "".join(row_to_csv_line(r) for r in rows))


