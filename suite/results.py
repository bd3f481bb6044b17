"""The one tidy results table: schema, rows, CSV/JSON files and pandas loading.

One row per case. The schema is versioned (``SCHEMA_VERSION``); every CSV row and
every JSON file carries the version. Older versions (``READABLE_VERSIONS``) load
with the columns they lack at their defaults; a newer or unknown version fails
with a message that says so. Columns are documented in ``COLUMNS``.

Files of one run, in its output folder:

- ``results.csv``: the rows, appended and flushed one by one while the run goes
  (so an interrupted run keeps every finished row), rewritten atomically at the end.
- ``results.json``: run metadata (run id, time, git commit, machine fingerprint)
  and the rows; replaced atomically.
- ``report.md``: the markdown report, built from the stored rows.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from suite.cases import CASE_FIELDS, Case

if TYPE_CHECKING:
    import pandas as pd

    from suite.timing import Measurement

SCHEMA_VERSION = 3
#: Versions this causal-bench reads. Version 1 lacks ``bound`` and ``ceiling_frac``;
#: version 2 lacks the rounds, contention, memory, profile, kernel and machine columns;
#: its rows load with those columns at their defaults and are upgraded to the
#: current version in memory.
READABLE_VERSIONS: tuple[int, ...] = (1, 2, 3)
SCHEMA_NAME = "causal-bench/results"
CSV_NAME = "results.csv"
JSON_NAME = "results.json"
REPORT_NAME = "report.md"

#: Every status a row can have. ``ok`` rows are the only timed ones.
STATUSES: dict[str, str] = {
    "ok": "agreed with the reference and was timed",
    "mismatch": "disagreed with the float64 reference beyond the tolerance; not timed",
    "skipped": "not run: backend unavailable, combination unsupported, or a guard refused it",
    "error": "the backend raised, or its worker process died (crash, out-of-memory kill)",
    "timeout": "the case ran past the per-case timeout and its worker was stopped",
}
#: Statuses that fail a run (exit status 1) and a comparison (``broken``).
FAILED_STATUSES = frozenset({"mismatch", "error", "timeout"})


class ResultsError(Exception):
    """A results file is missing, corrupt, truncated or of another schema."""


@dataclass
class Row:
    """One case's outcome: the ``Case`` it measured and what happened. Times are seconds
    per call; NaN where not measured.

    The case's fields read as the row's own (``row.backend``, ``row.T``), forwarded
    to ``case`` as torch.utils.benchmark's ``Measurement`` forwards to its
    ``TaskSpec``; the stored files flatten them into the first columns.
    """

    case: Case
    device: str = ""
    # -- outcome
    status: str = "ok"
    reason: str = ""
    # -- costs outside steady state
    compile_s: float = math.nan
    # -- steady-state statistics
    median_s: float = math.nan
    iqr_s: float = math.nan
    min_s: float = math.nan
    mean_s: float = math.nan
    std_s: float = math.nan
    ci_low_s: float = math.nan
    ci_high_s: float = math.nan
    n_samples: int = 0
    calls_per_sample: int = 0
    stop_reason: str = ""
    unstable: bool = False
    timer: str = ""
    host_median_s: float = math.nan
    cold_cache: bool = False
    samples_s: list[float] = field(default_factory=list)
    # -- agreement
    rel_err: float = math.nan
    max_abs_err: float = math.nan
    tol: float = math.nan
    # -- cost model and achieved rates
    flops: float = math.nan
    bytes: float = math.nan
    gflops: float = math.nan
    gbs: float = math.nan
    # -- roofline (schema 2): ``memory`` or ``compute``, and the achieved fraction
    # of that ceiling as measured at the start of the run (suite.ceilings)
    bound: str = ""
    ceiling_frac: float = math.nan
    # -- environment of the case
    threads: int = 0
    peak_mem_bytes: float = math.nan
    elapsed_s: float = math.nan
    run_id: str = ""
    schema_version: int = SCHEMA_VERSION
    # -- schema 3: rounds. Each round is a fresh worker process; ``samples_round[i]``
    # is the round of ``samples_s[i]``, ``round_spread`` (max - min) / median of the
    # round medians.
    rounds: int = 0
    samples_round: list[int] = field(default_factory=list)
    round_spread: float = math.nan
    # -- schema 3: contention. Other processes' CPU (steal time included) while the
    # case sampled, in cores, and whether it competed for the cores the case needs.
    foreign_cpu: float = math.nan
    contended: bool = False
    # -- schema 3: memory measured (host resident-set high-water mark over the case's
    # calls) beside the memory guard's estimate
    peak_rss_bytes: float = math.nan
    est_mem_bytes: float = math.nan
    # -- schema 3: the case's trace (``--profile``), relative to the results folder
    profile: str = ""
    # -- schema 3: the kernel column (the attention form's fused kernel) is the case's
    # ``kernel`` field (``suite.cases.Case``), stored among the case's columns
    # -- schema 3: the machine (fingerprint) and node that measured the row
    machine: str = ""
    node: str = ""

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the row lacks; ``case`` itself is looked up
        # normally, so an unpickled row half-way built never recurses here.
        if name in CASE_FIELDS:
            return getattr(self.case, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def key(self) -> str:
        return self.case.key

    def to_dict(self) -> dict[str, Any]:
        """The flat record the files store: the case's fields, then the outcome's."""
        outcome = {f.name: getattr(self, f.name) for f in _OUTCOME_FIELDS}
        return {**dataclasses.asdict(self.case), **copy.deepcopy(outcome)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Row:
        case = Case(**{k: d[k] for k in CASE_FIELDS if k in d})
        return cls(case, **{f.name: d[f.name] for f in _OUTCOME_FIELDS if f.name in d})


_OUTCOME_FIELDS = tuple(f for f in dataclasses.fields(Row) if f.name != "case")
COLUMNS: tuple[str, ...] = CASE_FIELDS + tuple(f.name for f in _OUTCOME_FIELDS)
_INT = {"B", "T", "C", "n_samples", "calls_per_sample", "threads", "schema_version", "rounds"}
_BOOL = {"unstable", "cold_cache", "contended"}
_INT_LISTS = {"samples_round"}
_FLOAT = {f.name for f in _OUTCOME_FIELDS if f.type == "float"}


def measurement_fields(m: Measurement) -> dict[str, Any]:
    """The row columns that hold a measurement's samples and their statistics."""
    lo, hi = m.ci
    return {
        "median_s": m.median,
        "iqr_s": m.iqr,
        "min_s": m.min,
        "mean_s": m.mean,
        "std_s": m.std,
        "ci_low_s": lo,
        "ci_high_s": hi,
        "n_samples": m.n,
        "unstable": m.unstable,
        "samples_s": list(m.samples),
    }


# -- CSV -----------------------------------------------------------------------


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
        row.schema_version = SCHEMA_VERSION  # older rows now carry every column
        rows.append(row)
    return rows


def unreadable_version(version: object) -> str:
    """The message for a schema version this causal-bench cannot read."""
    readable = ", ".join(str(v) for v in READABLE_VERSIONS)
    try:
        newer = int(str(version)) > SCHEMA_VERSION
    except ValueError:
        newer = False
    hint = ": written by a newer causal-bench; upgrade to read it" if newer else ""
    return f"schema version {version}; this causal-bench reads versions {readable}{hint}"


# -- atomic writes ---------------------------------------------------------------


def prepare_folder(out: Path) -> None:
    """Create ``out`` if needed and prove it writable; ResultsError in one line if not."""
    if out.exists() and not out.is_dir():
        raise ResultsError(f"output folder {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".causal-bench-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ResultsError(f"cannot write to output folder {out}: {e.strerror or e}") from None


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_csv(path: Path, rows: Iterable[Row]) -> None:
    write_atomic(path, csv_header() + "".join(row_to_csv_line(r) for r in rows))


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _from_json_float(value: Any) -> Any:
    if value is None:
        return math.nan
    if isinstance(value, str):
        return float(value)
    return value


def _json_restore(name: str, value: Any) -> Any:
    if name == "samples_s" and isinstance(value, list):
        return [_from_json_float(v) for v in value]
    if name in _FLOAT:
        if value is None:
            return math.nan
        if isinstance(value, str):
            return float(value)
    return value


def write_json(path: Path, metadata: dict[str, Any], rows: Sequence[Row]) -> None:
    doc = {
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "metadata": metadata,
        "rows": [r.to_dict() for r in rows],
    }
    write_atomic(path, json.dumps(_json_safe(doc), indent=1, allow_nan=False) + "\n")


def read_json(path: Path) -> tuple[dict[str, Any], list[Row]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ResultsError(f"cannot read {path}: {e.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ResultsError(f"{path} is not valid JSON (truncated or corrupt?): {e}") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_NAME:
        raise ResultsError(f"{path} is not a causal-bench results file")
    version = doc.get("schema_version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise ResultsError(f"{path} has {unreadable_version(version)}")
    try:
        rows = [Row.from_dict({k: _json_restore(k, v) for k, v in r.items()}) for r in doc["rows"]]
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ResultsError(f"{path}: malformed rows ({e})") from None
    for row in rows:
        row.schema_version = SCHEMA_VERSION  # older rows now carry every column
    return dict(doc.get("metadata") or {}), rows


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
