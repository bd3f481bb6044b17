"""Results files: CSV and JSON round trips, torn and foreign files, loading runs."""

from __future__ import annotations

import json
import math
import os

import pytest

from suite.cases import Case
from suite.results import (
    COLUMNS,
    CSV_NAME,
    JSON_NAME,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    ResultsError,
    Row,
    RowLog,
    csv_header,
    load_frame,
    load_run,
    read_csv_rows,
    read_json,
    write_atomic,
    write_csv,
    write_json,
)

TRICKY_REASON = 'needs "1,5 GiB", has 1,0; a \'quoted\' ""pair"", a | pipe and a trailing comma,'


def full_row() -> Row:
    """A row with every field off its default, NaN, infinities and awkward text included."""
    return Row(
        Case("torch", "attention", 8, 1024, 256, dtype="bfloat16", precision="tf32", input="file", kernel="flash"),
        device="cuda:0 (NVIDIA H100, 80GB)",
        status="ok",
        reason=TRICKY_REASON,
        compile_s=math.nan,
        median_s=1.2345678901234567e-3,
        iqr_s=1e-4 / 3,
        min_s=1.0000000000000002e-3,
        mean_s=0.1 + 0.2,
        std_s=5e-324,
        ci_low_s=1.1e-3,
        ci_high_s=1.3e-3,
        n_samples=6,
        calls_per_sample=1200,
        stop_reason="budget",
        unstable=True,
        timer="device-event",
        host_median_s=-0.0,
        cold_cache=True,
        samples_s=[0.1, 1 / 3, 1e-300, 5e-324, 2.5e-3, 1.0000000000000002],
        rel_err=math.inf,
        max_abs_err=-math.inf,
        tol=1.5e-2,
        flops=2.0 * 8 * 1024 * 1024 * 256,
        bytes=12345678.0,
        gflops=math.nan,
        gbs=987.654321,
        threads=16,
        peak_mem_bytes=3.0 * 2**30,
        elapsed_s=12.5,
        run_id="20240501-120000-abcd",
        rounds=3,
        samples_round=[0, 0, 1, 1, 2, 2],
        round_spread=0.0625,
        foreign_cpu=0.75,
        contended=True,
        peak_rss_bytes=2.5 * 2**30,
        est_mem_bytes=3.0 * 2**30,
        profile="profiles/torch-matrix.json",
        machine="a1b2c3d4e5f6",
        node="127.0.0.1",
    )


def plain_row(**fields) -> Row:
    """A row made the way the runner makes them, via Case.row."""
    case = Case("numpy", fields.pop("form", "cumsum"), 4, fields.pop("T", 8), 2)
    return Row(case, **fields)


def assert_same_row(got: Row, want: Row) -> None:
    """Field by field: NaN equals NaN, floats by repr (bit for bit), types kept."""
    for name in COLUMNS:
        a, b = getattr(got, name), getattr(want, name)
        assert type(a) is type(b), f"{name}: {type(a).__name__} != {type(b).__name__}"
        if isinstance(b, float):
            assert repr(a) == repr(b), f"{name}: {a!r} != {b!r}"
        elif isinstance(b, list):
            assert [repr(v) for v in a] == [repr(v) for v in b], f"{name}: {a!r} != {b!r}"
            assert all(type(v) is type(w) for v, w in zip(a, b, strict=True))
        else:
            assert a == b, f"{name}: {a!r} != {b!r}"


def rows_for_round_trip() -> list[Row]:
    return [
        full_row(),
        plain_row(),  # defaults: NaN everywhere, empty samples, False flags
        plain_row(form="loop", status="mismatch", reason="rel. error 5.0e-01 > tol 1.0e-05\nsecond line", rel_err=0.5),
        plain_row(status="skipped", reason=""),
    ]


# -- round trips -------------------------------------------------------------------


def test_csv_round_trip_preserves_every_field(tmp_path):
    rows = rows_for_round_trip()
    path = tmp_path / CSV_NAME
    write_csv(path, rows)
    back = read_csv_rows(path)
    assert len(back) == len(rows)
    for got, want in zip(back, rows, strict=True):
        assert_same_row(got, want)
    # The awkward reason really was quoted in the file, not just lucky.
    assert '"needs ""1,5 GiB""' in path.read_text(encoding="utf-8")


def test_json_round_trip_preserves_every_field(tmp_path):
    rows = rows_for_round_trip()
    path = tmp_path / JSON_NAME
    meta = {"run_id": "r1", "machine": {"cpu_count": 16}, "interrupted": False}
    write_json(path, meta, rows)
    # The file is strict JSON: no NaN or Infinity tokens.
    doc = json.loads(path.read_text(encoding="utf-8"), parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))
    assert doc["schema"] == SCHEMA_NAME
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["rows"][0]["rel_err"] == "inf"
    assert doc["rows"][0]["compile_s"] is None
    got_meta, back = read_json(path)
    assert got_meta == meta
    assert len(back) == len(rows)
    for got, want in zip(back, rows, strict=True):
        assert_same_row(got, want)


def test_csv_cells_for_nan_bool_and_samples(tmp_path):
    row = plain_row(unstable=True, samples_s=[1e-3, 2e-3], median_s=1.5e-3)
    path = tmp_path / "r.csv"
    write_csv(path, [row])
    header, line = path.read_text(encoding="utf-8").splitlines()
    assert header == csv_header().strip() == ",".join(COLUMNS)
    cells = dict(zip(COLUMNS, line.split(","), strict=True))
    assert cells["unstable"] == "true"
    assert cells["cold_cache"] == "false"
    assert cells["compile_s"] == ""  # NaN is an empty cell
    assert cells["median_s"] == "0.0015"
    assert cells["samples_s"] == "0.001 0.002"
    assert cells["schema_version"] == str(SCHEMA_VERSION)


def test_row_key_matches_case_key():
    row = full_row()
    # The kernel enters the key only where the case has one, so stored keys stay valid.
    assert row.key == "torch:attention:8x1024x256:bfloat16:tf32:file:flash"
    assert row.key == row.case.key
    # The row reads its case's fields as its own and stores them flat, first.
    assert (row.backend, row.T, row.precision, row.kernel) == ("torch", 1024, "tf32", "flash")
    assert list(row.to_dict())[:9] == ["backend", "form", "B", "T", "C", "dtype", "precision", "input", "kernel"]
    assert list(row.to_dict()).count("kernel") == 1
    assert Row.from_dict(row.to_dict()).case == row.case
    assert plain_row().key == Case("numpy", "cumsum", 4, 8, 2).key == "numpy:cumsum:4x8x2:float32:ieee:normal"


# -- RowLog and torn files ------------------------------------------------------------


def test_rowlog_flushes_each_row_at_once(tmp_path):
    path = tmp_path / CSV_NAME
    log = RowLog(path)
    try:
        assert read_csv_rows(path) == []  # the header is there already
        log.append(plain_row(median_s=1e-3))
        log.append(plain_row(T=16, median_s=2e-3))
        seen = read_csv_rows(path)  # read while the log is still open
    finally:
        log.close()
    assert [r.T for r in seen] == [8, 16]
    assert [r.median_s for r in seen] == [1e-3, 2e-3]


def test_torn_last_line_is_dropped_and_complete_rows_survive(tmp_path):
    path = tmp_path / CSV_NAME
    rows = [plain_row(T=t, median_s=t * 1e-6, samples_s=[t * 1e-6] * 3) for t in (8, 16, 32)]
    log = RowLog(path)
    for r in rows:
        log.append(r)
    log.close()
    assert len(read_csv_rows(path)) == 3

    data = path.read_bytes()
    last_start = data.rstrip(b"\n").rindex(b"\n") + 1
    torn = data[: last_start + (len(data) - last_start) // 2]  # cut the last row in half
    assert not torn.endswith(b"\n")
    path.write_bytes(torn)

    back = read_csv_rows(path)
    assert len(back) == 2
    for got, want in zip(back, rows[:2], strict=True):
        assert_same_row(got, want)


def test_last_row_without_its_newline_is_dropped(tmp_path):
    path = tmp_path / CSV_NAME
    write_csv(path, [plain_row(T=8), plain_row(T=16)])
    path.write_bytes(path.read_bytes()[:-1])
    assert [r.T for r in read_csv_rows(path)] == [8]


def test_rowlog_resume_appends_without_a_second_header(tmp_path):
    path = tmp_path / CSV_NAME
    log = RowLog(path)
    log.append(plain_row(T=8))
    log.close()
    log = RowLog(path, resume=True)
    log.append(plain_row(T=16))
    log.close()
    assert [r.T for r in read_csv_rows(path)] == [8, 16]
    assert path.read_text(encoding="utf-8").count("schema_version") == 1


def test_rowlog_without_resume_starts_over(tmp_path):
    path = tmp_path / CSV_NAME
    write_csv(path, [plain_row(T=8), plain_row(T=16)])
    log = RowLog(path)
    log.append(plain_row(T=32))
    log.close()
    assert [r.T for r in read_csv_rows(path)] == [32]


# -- foreign, corrupt and other-version files ------------------------------------------------


def test_csv_row_of_another_schema_version_is_refused(tmp_path):
    path = tmp_path / CSV_NAME
    write_csv(path, [plain_row(), plain_row(T=16, schema_version=SCHEMA_VERSION + 1)])
    with pytest.raises(ResultsError, match=rf"{CSV_NAME}:3: schema version {SCHEMA_VERSION + 1}"):
        read_csv_rows(path)


#: Columns a schema-1 file has: every current column but the roofline ones.
#: Schema 2 ends at ``schema_version``; schema 1 lacks the roofline columns besides.
V2_COLUMNS = list(COLUMNS[: COLUMNS.index("schema_version") + 1])
V1_COLUMNS = [c for c in V2_COLUMNS if c not in ("bound", "ceiling_frac")]


def test_schema_2_rows_load_with_the_schema_3_columns_at_defaults(tmp_path):
    """A schema-2 CSV (no rounds, contention, memory, profile, kernel or machine columns) still loads."""
    old = plain_row(status="ok", median_s=1e-3, samples_s=[1e-3, 2e-3], schema_version=2)
    path = tmp_path / CSV_NAME
    write_csv(path, [old])
    lines = path.read_text(encoding="utf-8").splitlines()
    keep = [i for i, c in enumerate(COLUMNS) if c in V2_COLUMNS]
    path.write_text("\n".join(",".join(line.split(",")[i] for i in keep) for line in lines) + "\n", encoding="utf-8")
    (row,) = read_csv_rows(path)
    assert row.samples_s == [1e-3, 2e-3] and row.median_s == 1e-3
    assert row.rounds == 0 and row.samples_round == [] and not row.contended
    assert math.isnan(row.foreign_cpu) and row.kernel == "" and row.machine == ""
    assert row.schema_version == SCHEMA_VERSION


def test_schema_1_csv_and_json_load_with_the_new_columns_at_defaults(tmp_path):
    """Files written before the roofline columns existed still load, upgraded in memory."""
    old = plain_row(status="ok", median_s=1e-3, gbs=12.5, schema_version=1)
    record = {c: getattr(old, c) for c in V1_COLUMNS}
    csv_path = tmp_path / CSV_NAME
    csv_path.write_text(
        ",".join(V1_COLUMNS) + "\n" + ",".join("" if isinstance(v, float) and math.isnan(v) else
                                              " ".join(map(repr, v)) if isinstance(v, list) else
                                              str(v).lower() if isinstance(v, bool) else str(v)
                                              for v in record.values()) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    json_path = tmp_path / JSON_NAME
    doc = {"schema": SCHEMA_NAME, "schema_version": 1, "metadata": {"run_id": "old"}, "rows": [record]}
    json_path.write_text(json.dumps(doc), encoding="utf-8")
    (csv_row,) = read_csv_rows(csv_path)
    meta, (json_row,) = read_json(json_path)
    assert meta == {"run_id": "old"}
    for row in (csv_row, json_row):
        assert row.gbs == 12.5 and row.median_s == 1e-3 and row.status == "ok"
        assert row.bound == ""
        assert math.isnan(row.ceiling_frac)
        assert row.schema_version == SCHEMA_VERSION == 4


def test_resuming_a_schema_1_csv_upgrades_it_before_appending(tmp_path):
    path = tmp_path / CSV_NAME
    old = plain_row(schema_version=1)
    write_csv(path, [old])
    lines = path.read_text(encoding="utf-8").splitlines()
    keep = [i for i, c in enumerate(COLUMNS) if c in V1_COLUMNS]
    v1 = [",".join(line.split(",")[i] for i in keep) for line in lines]  # plain rows hold no commas
    path.write_text("\n".join(v1) + "\n", encoding="utf-8")
    log = RowLog(path, resume=True)
    log.append(plain_row(T=16))
    log.close()
    rows = read_csv_rows(path)
    assert [r.T for r in rows] == [8, 16]
    assert path.read_text(encoding="utf-8").splitlines()[0] == csv_header().strip()


def test_unknown_and_newer_schema_versions_say_so(tmp_path):
    path = tmp_path / JSON_NAME
    write_json(path, {}, [plain_row()])
    doc = json.loads(path.read_text(encoding="utf-8"))
    for version, message in (
        (5, "written by a newer causal-bench"),
        (0, "reads versions 1, 2, 3, 4$"),
        ("2", "version 2"),
    ):
        doc["schema_version"] = version
        path.write_text(json.dumps(doc), encoding="utf-8")
        with pytest.raises(ResultsError, match=message):
            read_json(path)


def test_csv_row_with_wrong_field_count_is_refused(tmp_path):
    path = tmp_path / CSV_NAME
    path.write_text(csv_header() + "numpy,cumsum,4\n", encoding="utf-8")
    with pytest.raises(ResultsError, match=rf"expected {len(COLUMNS)} fields, found 3"):
        read_csv_rows(path)


@pytest.mark.parametrize(
    "content",
    [
        "a,b,c\n1,2,3\n",
        "backend,form\nnumpy,cumsum\n",  # no schema_version column
        "just some text\n",
    ],
)
def test_non_results_csv_is_refused(tmp_path, content):
    path = tmp_path / "other.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ResultsError, match="not a causal-bench results CSV"):
        read_csv_rows(path)


def test_empty_missing_and_binary_csv_are_refused(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ResultsError, match="empty"):
        read_csv_rows(empty)
    with pytest.raises(ResultsError, match="cannot read"):
        read_csv_rows(tmp_path / "missing.csv")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage\x80")
    with pytest.raises(ResultsError, match="not a text CSV"):
        read_csv_rows(binary)


def test_json_of_schema_version_999_is_refused(tmp_path):
    path = tmp_path / JSON_NAME
    write_json(path, {}, [plain_row()])
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["schema_version"] = 999
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ResultsError, match="schema version 999"):
        read_json(path)


@pytest.mark.parametrize(
    "content",
    [
        b"{not json at all",
        b"\x00\xff\xfe garbage \x80",
        b"",
        b'{"schema": "causal-bench/results", "schema_version": 1, "rows": [{"backend": "num',
    ],
)
def test_garbage_json_is_a_results_error(tmp_path, content):
    path = tmp_path / JSON_NAME
    path.write_bytes(content)
    with pytest.raises(ResultsError, match="not valid JSON"):
        read_json(path)


def test_truncated_json_is_a_results_error(tmp_path):
    path = tmp_path / JSON_NAME
    write_json(path, {"run_id": "x"}, [full_row(), plain_row()])
    data = path.read_bytes()
    for cut in (len(data) // 3, len(data) // 2, len(data) - 3):
        path.write_bytes(data[:cut])
        with pytest.raises(ResultsError, match="truncated or corrupt"):
            read_json(path)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "not a causal-bench results file"),
        ({"schema": "something/else", "schema_version": 1, "rows": []}, "not a causal-bench results file"),
        ({"schema": SCHEMA_NAME, "rows": []}, "schema version None"),
        ({"schema": SCHEMA_NAME, "schema_version": 1}, "malformed rows"),
        ({"schema": SCHEMA_NAME, "schema_version": 1, "rows": [{"backend": "numpy"}]}, "malformed rows"),
    ],
)
def test_foreign_or_malformed_json_is_a_results_error(tmp_path, doc, message):
    path = tmp_path / JSON_NAME
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ResultsError, match=message):
        read_json(path)


def test_missing_json_is_a_results_error(tmp_path):
    with pytest.raises(ResultsError, match="cannot read"):
        read_json(tmp_path / JSON_NAME)


# -- load_run and load_frame ----------------------------------------------------------------


def _rows(run_id: str, n: int) -> list[Row]:
    return [plain_row(T=8 * 2**i, run_id=run_id, median_s=(i + 1) * 1e-3) for i in range(n)]


def test_load_run_of_a_folder_prefers_the_json(tmp_path):
    write_json(tmp_path / JSON_NAME, {"run_id": "from-json"}, _rows("json", 3))
    write_csv(tmp_path / CSV_NAME, _rows("csv", 3))
    meta, rows = load_run(tmp_path)
    assert meta == {"run_id": "from-json"}
    assert [r.run_id for r in rows] == ["json"] * 3

    write_csv(tmp_path / CSV_NAME, _rows("csv", 2))  # fewer rows: still the JSON
    assert [r.run_id for r in load_run(str(tmp_path))[1]] == ["json"] * 3


def test_load_run_of_a_folder_takes_the_csv_when_it_has_more_rows(tmp_path):
    write_json(tmp_path / JSON_NAME, {"run_id": "from-json"}, _rows("json", 2))
    write_csv(tmp_path / CSV_NAME, _rows("csv", 4))
    meta, rows = load_run(tmp_path)
    assert meta == {"run_id": "from-json"}  # the metadata still comes from the JSON
    assert [r.run_id for r in rows] == ["csv"] * 4
    assert [r.T for r in rows] == [8, 16, 32, 64]


def test_load_run_of_a_folder_with_only_the_csv(tmp_path):
    write_csv(tmp_path / CSV_NAME, _rows("csv", 2))
    meta, rows = load_run(tmp_path)
    assert meta == {}
    assert [r.run_id for r in rows] == ["csv", "csv"]


def test_load_run_of_files_and_of_nothing(tmp_path):
    write_json(tmp_path / "a.json", {"run_id": "a"}, _rows("a", 1))
    write_csv(tmp_path / "b.csv", _rows("b", 2))
    assert load_run(tmp_path / "a.json")[0] == {"run_id": "a"}
    assert len(load_run(tmp_path / "b.csv")[1]) == 2
    with pytest.raises(ResultsError, match="does not exist"):
        load_run(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(ResultsError, match=r"expected a results folder, \.json or \.csv"):
        load_run(tmp_path / "notes.txt")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ResultsError, match="holds no"):
        load_run(empty)


def test_load_frame_concatenates_runs_with_a_key_column(tmp_path):
    run_a = tmp_path / "a"
    run_a.mkdir()
    rows_a = _rows("run-a", 2)
    write_json(run_a / JSON_NAME, {"run_id": "run-a"}, rows_a)
    write_csv(run_a / CSV_NAME, rows_a)
    rows_b = [*_rows("run-b", 2), full_row()]
    write_csv(tmp_path / "b.csv", rows_b)

    frame = load_frame(run_a, tmp_path / "b.csv")
    assert list(frame.columns) == ["key", *COLUMNS]
    assert len(frame) == 5
    assert list(frame.index) == [0, 1, 2, 3, 4]
    assert list(frame["key"]) == [r.key for r in [*rows_a, *rows_b]]
    assert list(frame["run_id"]) == ["run-a", "run-a", "run-b", "run-b", "20240501-120000-abcd"]
    assert list(frame["median_s"][:4]) == [1e-3, 2e-3, 1e-3, 2e-3]
    assert math.isnan(frame["compile_s"].iloc[4])
    assert frame["rel_err"].iloc[4] == math.inf
    assert frame.groupby("run_id")["median_s"].sum()["run-a"] == pytest.approx(3e-3)


def test_load_frame_of_nothing_is_an_error():
    with pytest.raises(ResultsError, match="no results given"):
        load_frame()


# -- atomic writes --------------------------------------------------------------------


def test_write_atomic_replaces_content_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "report.md"
    write_atomic(path, "old\n")
    write_atomic(path, "new, longer content\nwith two lines\n")
    assert path.read_text(encoding="utf-8") == "new, longer content\nwith two lines\n"
    assert sorted(os.listdir(tmp_path)) == ["report.md"]


def test_write_atomic_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "report.md"
    write_atomic(path, "old\n")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(path, "half \ud800 written")  # a lone surrogate cannot be encoded
    assert path.read_text(encoding="utf-8") == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["report.md"]


def test_write_csv_and_json_leave_no_temp_files(tmp_path):
    write_csv(tmp_path / CSV_NAME, _rows("x", 2))
    write_json(tmp_path / JSON_NAME, {}, _rows("x", 2))
    write_csv(tmp_path / CSV_NAME, _rows("x", 3))
    assert sorted(os.listdir(tmp_path)) == [CSV_NAME, JSON_NAME]


# -- regressions: bugs found while writing these tests ----------


def test_resume_after_a_torn_line_keeps_the_csv_readable(tmp_path):
    path = tmp_path / CSV_NAME
    log = RowLog(path)
    log.append(plain_row(T=8))
    log.append(plain_row(T=16))
    log.close()
    path.write_bytes(path.read_bytes()[:-20])  # killed mid-row
    log = RowLog(path, resume=True)
    log.append(plain_row(T=32))
    log.close()
    assert [r.T for r in read_csv_rows(path)] == [8, 32]


@pytest.mark.parametrize("reason", ["a\rb", "a\x0cb", "a\u2028b"])
def test_csv_round_trip_of_reasons_with_other_line_breaks(tmp_path, reason):
    path = tmp_path / CSV_NAME
    write_csv(path, [plain_row(reason=reason)])
    assert read_csv_rows(path)[0].reason == reason


def test_torn_line_inside_a_multiline_reason_is_dropped(tmp_path):
    path = tmp_path / CSV_NAME
    write_csv(path, [plain_row(T=8), plain_row(T=16, reason="line one\nline two")])
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: text.rindex("line one\n") + len("line one\n")], encoding="utf-8")
    assert [r.T for r in read_csv_rows(path)] == [8]


def test_json_round_trip_of_non_finite_samples(tmp_path):
    path = tmp_path / JSON_NAME
    write_json(path, {}, [plain_row(samples_s=[1e-3, math.inf])])
    assert read_json(path)[1][0].samples_s == [1e-3, math.inf]


def test_json_with_a_non_object_row_is_a_results_error(tmp_path):
    path = tmp_path / JSON_NAME
    path.write_text(json.dumps({"schema": SCHEMA_NAME, "schema_version": SCHEMA_VERSION, "rows": [1]}))
    with pytest.raises(ResultsError):
        read_json(path)


def test_load_frame_fills_a_missing_run_id_from_the_metadata_or_the_path(tmp_path):
    with_meta = tmp_path / "with-meta"
    with_meta.mkdir()
    write_json(with_meta / JSON_NAME, {"run_id": "from-meta"}, _rows("", 2))
    write_csv(tmp_path / "bare.csv", [*_rows("", 1), *_rows("kept", 1)])

    frame = load_frame(with_meta, str(tmp_path / "bare.csv"))
    assert list(frame["run_id"]) == ["from-meta", "from-meta", str(tmp_path / "bare.csv"), "kept"]
    assert frame.groupby("run_id").size().to_dict() == {"from-meta": 2, str(tmp_path / "bare.csv"): 1, "kept": 1}


def test_load_frame_of_the_stored_fixture_run():
    from pathlib import Path

    run = Path(__file__).parent / "data" / "run-small"
    one = load_frame(run)
    both = load_frame(run / JSON_NAME, run / CSV_NAME)
    assert len(one) == 32 and len(both) == 64
    assert set(one["run_id"]) == {load_run(run)[0]["run_id"]}
    table = one[one.status == "ok"].pivot_table("median_s", ["backend", "form"], "T")
    assert [int(t) for t in table.columns] == [32, 128, 512, 2048]
    row = next(r for r in load_run(run)[1] if (r.backend, r.form, r.T) == ("torch", "matrix", 512))
    assert table.loc[("torch", "matrix"), 512] == row.median_s
