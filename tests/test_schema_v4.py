"""Schema 4: the case's variant and metric, and old files that stored variants under a library's name."""

from __future__ import annotations

import math
from pathlib import Path

from suite.cases import Case
from suite.results import SCHEMA_VERSION, Row, load_run, read_csv_rows, read_json, write_csv, write_json

REFERENCE = Path(__file__).resolve().parent / "data" / "reference-cpu-schema3"  # the schema-3 reference of 2026-11-27


def test_variant_and_metric_are_in_the_key_and_the_label():
    idiom = Case("numpy", "cumsum", 8, 1024, 256)
    staged = Case("numpy", "cumsum", 8, 1024, 256, variant="staged")
    counted = Case("numpy", "cumsum", 8, 1024, 256, metric="instructions")
    assert idiom.key == "numpy:cumsum:8x1024x256:float32:ieee:normal"
    assert staged.key == "numpy:cumsum[staged]:8x1024x256:float32:ieee:normal"
    assert counted.key == "numpy:cumsum:8x1024x256:float32:ieee:normal@instructions"
    assert len({idiom.key, staged.key, counted.key}) == 3
    assert staged.form_kernel == "cumsum[staged]" and "cumsum[staged]" in staged.label()
    assert Case("torch", "attention", 1, 8, 4, kernel="flash").form_kernel == "attention[flash]"


def test_schema_4_columns_round_trip(tmp_path):
    row = Row(
        Case("numpy", "cumsum", 4, 8, 2, variant="staged", metric="instructions"),
        status="ok",
        instructions=5.4e5,
        l1_misses=12.0,
        ll_misses=3.0,
        est_cycles=6.1e5,
        counts="counts/x.out",
        within_spread=0.02,
        cores="0-1",
        canary_copy=0.97,
        canary_matmul=1.21,
        drifted=True,
    )
    write_csv(tmp_path / "results.csv", [row])
    write_json(tmp_path / "results.json", {}, [row])
    for back in (read_csv_rows(tmp_path / "results.csv")[0], read_json(tmp_path / "results.json")[1][0]):
        assert back.key == row.key and back.variant == "staged" and back.metric == "instructions"
        assert back.instructions == 5.4e5 and back.est_cycles == 6.1e5 and back.counts == "counts/x.out"
        assert back.drifted is True and back.canary_matmul == 1.21 and back.cores == "0-1"
        assert back.schema_version == SCHEMA_VERSION == 4


def test_schema_3_reference_maps_the_hidden_variants():
    """The schema-3 reference (kept in tests/data) stored NumPy's staged scan and Numba's prange
    tiling as plain ``cumsum``: they load as the variants they were, the idioms untouched."""
    _meta, rows = load_run(REFERENCE)
    by = {(r.backend, r.form): r for r in rows if r.T == 1024}
    assert by[("numpy", "cumsum")].variant == "staged"
    assert by[("numpy", "cumsum")].key.startswith("numpy:cumsum[staged]:8x1024x256")
    assert by[("numba", "cumsum")].variant == "parallel"
    assert by[("numba", "loop")].variant == "parallel"
    assert by[("torch", "cumsum")].variant == "" and by[("numpy", "matrix")].variant == ""
    assert all(r.metric == "time" and not r.drifted and math.isnan(r.instructions) for r in rows)


def test_a_schema_4_row_keeps_its_own_variant(tmp_path):
    """Only old files are mapped: a schema-4 NumPy ``cumsum`` row is the idiom."""
    write_csv(tmp_path / "results.csv", [Row(Case("numpy", "cumsum", 4, 8, 2))])
    (row,) = read_csv_rows(tmp_path / "results.csv")
    assert row.variant == "" and row.key == "numpy:cumsum:4x8x2:float32:ieee:normal"
