"""The JSON store: ``results.json``, the run's metadata (run id, time, git commit,
machine fingerprint) and its rows, replaced atomically."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from suite.results.atomic import write_atomic
from suite.results.schema import _FLOAT, READABLE_VERSIONS, SCHEMA_NAME, SCHEMA_VERSION, ResultsError, Row, unreadable_version, upgrade


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
    rows = [upgrade(row, version) for row in rows]
    return dict(doc.get("metadata") or {}), rows


