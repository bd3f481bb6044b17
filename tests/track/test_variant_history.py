"""Schema-3 runs against new ones: rows that measured a variant meet the variant's rows, not the idiom's."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from suite.machine import machine_fingerprint
from suite.results import load_run
from suite.results.schema import Row
from suite.track.compare import compare_rows
from suite.track.history import build_history
from tests.stored_runs import write_run

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = (
    ROOT / "tests" / "data" / "reference-cpu-schema3"
)  # the reference run of 2026-11-27, schema 3: NumPy's cumsum was the staged scan
STAGED = "numpy:cumsum[staged]:8x1024x256:float32:ieee:normal"
IDIOM = "numpy:cumsum:8x1024x256:float32:ieee:normal"


def _new_run(old: list[Row]) -> list[Row]:
    """A schema-4 stand-in: every old row again, and NumPy's idiom beside the staged scan, 9x slower."""
    rows = [dataclasses.replace(r, run_id="new") for r in old]
    for r in old:
        if r.backend == "numpy" and r.variant == "staged":
            rows.append(
                dataclasses.replace(
                    r,
                    case=dataclasses.replace(r.case, variant=""),
                    samples_s=[9 * s for s in r.samples_s],
                    median_s=9 * r.median_s,
                    run_id="new",
                )
            )
    return rows


def test_old_numpy_and_numba_cumsum_rows_load_as_their_variants() -> None:
    assert json.loads((REFERENCE / "results.json").read_text())["schema_version"] == 3
    _, old = load_run(REFERENCE)
    cumsum = {(r.backend, r.variant) for r in old if r.form == "cumsum"}
    assert ("numpy", "staged") in cumsum and ("numba", "parallel") in cumsum
    assert ("numpy", "") not in cumsum and ("numba", "") not in cumsum
    assert ("torch", "") in cumsum  # torch.cumsum always was the library's own


def test_compare_sets_the_staged_rows_beside_the_staged_rows(tmp_path: Path) -> None:
    meta, old = load_run(REFERENCE)
    cmp = compare_rows(old, _new_run(old), base_meta=meta, head_meta=meta)
    verdicts = {c.key: c for c in cmp.cases}
    assert verdicts[STAGED].verdict not in ("slower", "faster")
    assert abs(verdicts[STAGED].ratio - 1.0) < 1e-9
    # The idiom is a new case: no false 9x step against the old staged rows.
    assert verdicts[IDIOM].verdict == "new"
    assert not any(c.verdict == "slower" for c in cmp.cases)


def test_history_keeps_the_staged_line_and_starts_the_idiom_line(tmp_path: Path) -> None:
    meta, old = load_run(REFERENCE)
    shutil.copytree(REFERENCE, tmp_path / "runs" / "1-reference", ignore=shutil.ignore_patterns("plots"))
    later = {**meta, "started": "2099-01-01T00:00:00+00:00", "run_id": "new"}
    write_run(tmp_path / "runs" / "2-new", _new_run(old), later)
    h = build_history(tmp_path / "runs")
    assert h.fingerprint == machine_fingerprint(meta)
    staged = h.series[STAGED]
    assert [p.row is not None for p in staged] == [True, True] and staged[1].step == ""
    idiom = h.series[IDIOM]
    assert [p.row is not None for p in idiom] == [False, True] and not any(p.step for p in idiom)
    assert not h.steps()
