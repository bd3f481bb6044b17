"""The markdown report and its tables, rendered from hand-made rows."""

from __future__ import annotations

import re

import pytest

from suite.cases import Case
from suite.forms import FORMS
from suite.report.markdown import render
from suite.report.tables import correctness_table, fastest_table, not_run_table, timing_tables
from suite.results import Row

SMALL, LARGE = (4, 8, 2), (8, 256, 64)
PIPE_REASON = "needs ~2.00 GiB | 1.50 GiB usable"


def ok(backend: str, form: str, shape, median: float, iqr: float, **fields) -> Row:
    return Row(
        Case(backend, form, *shape),
        device="cpu",
        status="ok",
        median_s=median,
        iqr_s=iqr,
        rel_err=1e-7,
        max_abs_err=2e-7,
        tol=1e-5,
        **fields,
    )


def sample_rows() -> list[Row]:
    return [
        # Out of order on purpose: the report sorts.
        ok("torch", "matrix", LARGE, 8e-3, 4e-4),
        ok("numpy", "matrix", SMALL, 2e-3, 1e-4),
        ok("torch", "matrix", SMALL, 1e-3, 5e-5),
        ok("numpy", "matrix", LARGE, 4e-2, 1e-3),
        ok("numpy", "cumsum", SMALL, 1.5e-6, 2e-8),
        ok("numpy", "cumsum", LARGE, 0.0123, 3e-3, unstable=True),
        Row(
            Case("torch", "cumsum", *SMALL),
            device="cpu",
            status="mismatch",
            reason="rel. error 5.00e-01 > tolerance 1.00e-05",
            rel_err=0.5,
            max_abs_err=1.25,
            tol=1e-5,
        ),
        Row(Case("torch", "cumsum", *LARGE), device="cpu", status="skipped", reason=PIPE_REASON),
    ]


META = {
    "run_id": "20240501-120000-abcd",
    "git_commit": "0123456789abcdef0123",
    "git_dirty": True,
    "interrupted": False,
    "machine": {
        "cpu_model": "Test CPU",
        "cpu_count": 16,
        "memory_gib": 64,
        "gpu_name": "NVIDIA H100",
        "fingerprint": "fp123",
        "libraries": {"numpy": "2.0.0", "torch": "2.13.0"},
    },
}


def section(text: str, start: str, end: str | None = None) -> str:
    """The text from the line ``start`` up to the next ``end`` (or the next ## / ### heading)."""
    assert start in text, f"{start!r} not in report"
    rest = text.split(start, 1)[1]
    if end is not None:
        return rest.split(end, 1)[0]
    cut = [i for i in (rest.find("\n## "), rest.find("\n### ")) if i >= 0]
    return rest[: min(cut)] if cut else rest


def table_rows(text: str) -> list[list[str]]:
    """Cells of the markdown table rows in ``text`` (header and separator included).

    Cells are split on pipes the way a markdown renderer does: an escaped ``\\|``
    stays inside its cell.
    """
    return [
        [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in text.splitlines() if line.startswith("|")
    ]


@pytest.fixture
def report() -> str:
    return render(META, sample_rows())


# -- the whole report ------------------------------------------------------------------


def test_header_and_summary(report):
    assert report.startswith("# causal-bench report\n")
    assert "- run: `20240501-120000-abcd`\n" in report
    assert "- commit: `0123456789ab` (dirty tree)\n" in report
    assert "- machine: Test CPU, 16 cores, 64 GiB, NVIDIA H100 (fingerprint `fp123`)\n" in report
    assert "- libraries: numpy 2.0.0, torch 2.13.0\n" in report
    assert "- cases: 8 (6 ok, 1 mismatch, 1 skipped)\n" in report
    assert "(interrupted, partial)" not in report
    # Sections in order.
    order = [report.index(h) for h in ("## Timings", "### matrix", "### cumsum", "## Correctness", "## Not run")]
    assert order == sorted(order)


def test_interrupted_run_is_marked():
    text = render({"run_id": "r", "interrupted": True}, [])
    assert "- run: `r` (interrupted, partial)" in text
    assert "- cases: 0 (none)" in text
    assert "Every case ran." in text


def test_one_section_per_form_present(report):
    assert report.count("\n### ") == 2
    assert "### matrix (float32)" in report
    assert "### cumsum (float32)" in report
    assert "### loop" not in report
    assert "### softmax" not in report
    matrix = section(report, "### matrix (float32)")
    assert f"`{FORMS['matrix'].summary}`, {FORMS['matrix'].complexity}" in matrix


def test_matrix_table_baseline_and_speedups(report):
    rows = table_rows(section(report, "### matrix (float32)"))
    # Sizes across, smallest volume first; NumPy's row first.
    assert rows[0] == ["backend (device)", "4x8x2", "8x256x64"]
    assert rows[1] == ["---", "---", "---"]
    assert rows[2] == ["numpy (cpu)", "2 ms ± 100 us", "40 ms ± 1 ms"]  # the baseline: no speedup
    # 2 ms / 1 ms = 2x; 40 ms / 8 ms = 5x.
    assert rows[3] == ["torch (cpu)", "1 ms ± 50 us (2x)", "8 ms ± 400 us (5x)"]
    assert len(rows) == 4


def test_cumsum_table_marks_unstable_and_non_ok_cells(report):
    rows = table_rows(section(report, "### cumsum (float32)"))
    assert rows[0] == ["backend (device)", "4x8x2", "8x256x64"]
    assert rows[2] == ["numpy (cpu)", "1.5 us ± 20 ns", "12.3 ms ± 3 ms (unstable)"]
    assert rows[3] == ["torch (cpu)", "*mismatch*", "*skipped*"]


def test_speedup_is_computed_against_numpy_at_the_same_size():
    rows = [
        ok("numpy", "softmax", SMALL, 3e-3, 1e-4),
        ok("jax", "softmax", SMALL, 1e-3, 1e-5),
        ok("torch", "softmax", SMALL, 6e-3, 1e-5),
        ok("torch", "softmax", LARGE, 1e-3, 1e-5),  # no NumPy row at this size
    ]
    table = table_rows("\n".join(timing_tables(rows)))
    assert table[0] == ["backend (device)", "4x8x2", "8x256x64"]
    assert table[2] == ["numpy (cpu)", "3 ms ± 100 us", ""]
    assert table[3] == ["jax (cpu)", "1 ms ± 10 us (3x)", ""]
    assert table[4] == ["torch (cpu)", "6 ms ± 10 us (0.5x)", "1 ms ± 10 us"]


def test_no_speedup_against_a_numpy_row_that_is_not_ok():
    rows = [
        Row(Case("numpy", "matrix", *SMALL), device="cpu", status="error", reason="boom"),
        ok("torch", "matrix", SMALL, 1e-3, 1e-5),
    ]
    table = table_rows("\n".join(timing_tables(rows)))
    assert table[2] == ["numpy (cpu)", "*error*"]
    assert table[3] == ["torch (cpu)", "1 ms ± 10 us"]


def test_variants_get_their_own_section():
    rows = [
        ok("torch", "matrix", SMALL, 1e-3, 1e-5),
        Row(Case("torch", "matrix", *SMALL, precision="tf32"), device="cuda:0", status="ok", median_s=5e-4, iqr_s=1e-5),
        Row(Case("numpy", "matrix", *SMALL, dtype="float64", input="file"), status="ok", median_s=5e-4, iqr_s=1e-5),
    ]
    text = "\n".join(timing_tables(rows))
    assert "### matrix (float32)" in text
    assert "### matrix (float32 tf32)" in text
    assert "### matrix (float64 file)" in text
    assert "| torch (cuda:0) | 500 us ± 10 us |" in section(text, "### matrix (float32 tf32)")
    assert "| numpy (?) | 500 us ± 10 us |" in section(text, "### matrix (float64 file)")


def test_correctness_table_shows_the_mismatch_as_fail_first(report):
    rows = table_rows(section(report, "## Correctness", "## Not run"))
    assert rows[0] == [
        "backend",
        "form",
        "size",
        "dtype",
        "rel. error",
        "max abs error",
        "tolerance",
        "verdict",
    ]
    body = rows[2:]
    assert len(body) == 7  # six ok and one mismatch; the skipped row is not checked
    assert body[0] == ["torch", "cumsum", "4x8x2", "float32", "5.00e-01", "1.25e+00", "1.00e-05", "**FAIL**"]
    assert [r[-1] for r in body[1:]] == ["pass"] * 6
    assert body[1][:3] == ["numpy", "cumsum", "4x8x2"]
    assert body[1][4:7] == ["1.00e-07", "2.00e-07", "1.00e-05"]
    assert "**FAIL**" not in section(report, "## Timings", "## Correctness")


def test_not_run_lists_the_skipped_row_with_its_reason(report):
    not_run = section(report, "## Not run")
    assert table_rows(not_run) == [
        ["status", "backend", "form", "size", "dtype", "reason"],
        ["---"] * 6,
        ["skipped", "torch", "cumsum", "8x256x64", "float32", "needs ~2.00 GiB \\| 1.50 GiB usable"],
    ]
    assert "| skipped | torch | cumsum | 8x256x64 | float32 | needs ~2.00 GiB \\| 1.50 GiB usable |" in not_run
    # Only the rows that did not run.
    assert not_run.count("\n| skipped") + not_run.count("\n| error") == 1
    assert "mismatch" not in not_run


def test_pipe_in_a_reason_is_escaped(report):
    assert "needs ~2.00 GiB \\| 1.50 GiB usable" in report
    assert "needs ~2.00 GiB | 1.50 GiB usable" not in report
    lines = not_run_table([Row(Case("jax", "loop", 1, 2, 3), status="error", reason="a|b|c")])
    assert lines[-1] == "| error | jax | loop | 1x2x3 | float32 | a\\|b\\|c |"
    assert lines[-1].count(" | ") == 5  # still six columns


def test_every_case_ran_when_nothing_was_skipped():
    rows = [ok("numpy", "matrix", SMALL, 1e-3, 1e-5)]
    assert not_run_table(rows) == ["Every case ran."]
    text = render({}, rows)
    assert "- cases: 1 (1 ok)" in text
    assert "- run: `?`" in text
    assert "- libraries: ?" in text
    assert section(text, "## Not run").strip() == "Every case ran."


def test_correctness_table_is_empty_without_checked_rows():
    rows = [Row(Case("torch", "loop", *SMALL), status="timeout", reason="ran past 120 s")]
    assert correctness_table(rows) == [
        "| backend | form | size | dtype | rel. error | max abs error | tolerance | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]


# -- regressions: bugs found while writing these tests ----------


def test_speedup_of_over_100x_is_readable():
    rows = [ok("numpy", "matrix", SMALL, 123e-3, 1e-3), ok("torch", "matrix", SMALL, 1e-3, 1e-5)]
    table = table_rows("\n".join(timing_tables(rows)))
    assert table[3] == ["torch (cpu)", "1 ms ± 10 us (123x)"]


# -- the summary, scaling and plots sections -------------------------------------------------


def test_summary_comes_first_and_names_the_fastest_form(report):
    assert report.index("## Summary") < report.index("## Timings")
    rows = table_rows(section(report, "**Fastest form**", "**How close to the hardware**"))
    assert len(rows) == 4
    assert rows[0] == ["backend (device)", "4x8x2", "8x256x64"]
    # numpy: cumsum beats matrix at both sizes; torch: its cumsum did not run, so matrix.
    assert rows[2] == ["numpy (cpu)", "cumsum, 1.5 us", "cumsum, 12.3 ms"]
    assert rows[3] == ["torch (cpu)", "matrix, 1 ms", "matrix, 8 ms"]


def test_summary_accuracy_flags_the_mismatch(report):
    rows = table_rows(section(report, "**Accuracy at a glance**", "**Not run**"))
    # All of numpy's cases tie at 1e-7 / 1e-5: the first in the run is named.
    assert rows[2] == ["numpy (cpu)", "4", "0", "0.01", "matrix 4x8x2 float32"]
    # 0.5 / 1e-5: the failing case is the worst, and the failure is counted in bold.
    assert rows[3] == ["torch (cpu)", "3", "**1**", "5e+04", "cumsum 4x8x2 float32"]


def test_summary_counts_what_did_not_run_by_reason():
    rows = [
        *[Row(Case("jax", f, *SMALL), status="skipped", reason="jax is not installed") for f in ("loop", "cumsum")],
        Row(Case("torch", "loop", *LARGE), status="skipped", reason="jax is not installed"),
        Row(Case("torch", "matrix", *LARGE), status="timeout", reason="ran past 120 s"),
        ok("numpy", "matrix", SMALL, 1e-3, 1e-5),
    ]
    text = section(render({}, rows), "**Not run**:", "## Timings")
    assert "4 of 5 cases did not run (3 skipped, 1 timeout):" in text
    assert table_rows(text) == [
        ["cases", "status", "backends", "reason"],
        ["---"] * 4,
        ["3", "skipped", "jax, torch", "jax is not installed"],
        ["1", "timeout", "torch", "ran past 120 s"],
    ]


def test_scaling_and_crossovers_from_rows_with_several_sizes():
    # numpy matrix: 1e-9 T^2; numpy cumsum: 1e-6 T. They cross at T = 1000.
    rows = [ok("numpy", "matrix", (2, T, 8), 1e-9 * T**2, 0.0) for T in (256, 512, 1024, 2048)]
    rows += [ok("numpy", "cumsum", (2, T, 8), 1e-6 * T, 0.0) for T in (256, 512, 1024, 2048)]
    text = render({}, rows)
    scaling = table_rows(section(text, "## Scaling", "**Crossovers**"))
    assert scaling[2] == ["numpy (cpu)", "cumsum", "float32", "2, 8", "256..2048 (4)", "1.00±0.00", "1.00", "2.05 ms"]
    assert scaling[3] == ["numpy (cpu)", "matrix", "float32", "2, 8", "256..2048 (4)", "2.00±0.00", "2.00", "4.19 ms"]
    crossings = table_rows(section(text, "**Crossovers**", "**Backend crossovers**"))
    assert crossings[2] == ["numpy (cpu)", "float32", "2, 8", "matrix", "cumsum", "1000", "512..1024"]
    assert "No backend overtakes another." in text


def test_without_sizes_to_fit_the_scaling_and_plots_sections_say_so(report):
    assert "No backend and form was measured at two or more sizes with the same B and C." in report
    assert section(report, "## Plots").strip() == "Plots were not written for this report."


def test_a_backend_that_ran_nothing_gets_no_timing_row_only_its_reason():
    absent = "triton needs a CUDA GPU"
    rows = [
        ok("numpy", "cumsum", SMALL, 1.5e-6, 2e-8),
        Row(Case("triton", "cumsum", *SMALL), status="skipped", reason=absent),
        Row(Case("numba", "cumsum", *SMALL), status="skipped", reason="numba: memory"),
        ok("numba", "cumsum", LARGE, 1e-5, 1e-7),
    ]
    text = render({}, rows)
    table = section(text, "### cumsum (float32)")
    assert "triton" not in table
    assert "| numba (cpu) | *skipped* |" in table  # ran at another size: the blank is a skip
    assert absent in section(text, "## Not run")


def test_summary_shows_the_fastest_forms_fraction_of_its_ceiling():
    rows = [
        ok("numpy", "cumsum", LARGE, 2e-3, 1e-5, bound="memory", ceiling_frac=0.15, gbs=4.59),
        ok("numpy", "matrix", LARGE, 3e-3, 1e-5, bound="compute", ceiling_frac=0.89, gflops=181.0),
        ok("torch", "matrix", LARGE, 1e-3, 1e-5, bound="compute", ceiling_frac=0.95, gflops=193.0),
        ok("torch", "cumsum", SMALL, 1e-6, 1e-8),  # no ceiling measured
    ]
    meta = {"ceilings": {"cpu": {"device": "cpu", "copy_gbs": 30.76, "matmul_gflops": {"float32:ieee": 203.1}}}}
    text = render(meta, rows)
    assert "Ceilings measured at the start of the run: cpu: copy 30.8 GB/s; matmul GFLOP/s float32:ieee 203." in text
    table = section(text, "**How close to the hardware**", "**Accuracy")
    assert "| numpy (cpu) |  | cumsum, 15% of copy (4.59 GB/s) |" in table
    assert "| torch (cpu) | cumsum, no ceiling | matrix, 95% of matmul (193 GFLOP/s) |" in table
    assert "No ceilings were measured" in render({}, rows)


def test_the_idiom_row_comes_first_and_the_variant_is_labelled_beside_it():
    def at(backend: str, shape: tuple[int, int, int], median: float, variant: str = "") -> Row:
        B, T, C = shape
        return Row(Case(backend, "cumsum", B, T, C, variant=variant), device="cpu", median_s=median, iqr_s=1e-5)

    rows = [
        at("torch", SMALL, 3e-3),
        at("numpy", SMALL, 2e-3, "staged"),
        at("numba", SMALL, 1e-3, "parallel"),
        at("numpy", SMALL, 18e-3),
        at("numba", SMALL, 4e-3),
    ]
    table = table_rows("\n".join(timing_tables(rows)))
    # Speed-ups are against NumPy's own cumsum, not its staged scan.
    assert table[2:] == [
        ["numpy (cpu)", "18 ms ± 10 us"],
        ["numpy (cpu) cumsum[staged]", "2 ms ± 10 us (9x)"],
        ["numba (cpu)", "4 ms ± 10 us (4.5x)"],
        ["numba (cpu) cumsum[parallel]", "1 ms ± 10 us (18x)"],
        ["torch (cpu)", "3 ms ± 10 us (6x)"],
    ]
    fastest = table_rows("\n".join(fastest_table(rows)))
    # The fastest row says it was the variant.
    assert fastest[2:4] == [["numpy (cpu)", "cumsum[staged], 2 ms"], ["numba (cpu)", "cumsum[parallel], 1 ms"]]


def _memory_bound(shape, gbs: float, frac: float) -> Row:
    row = ok("numba", "cumsum", shape, 1e-3, 1e-5, bound="memory", gbs=gbs, ceiling_frac=frac)
    row.bytes = 2 * shape[0] * shape[1] * shape[2] * 4
    return row


def test_above_the_copy_ceiling_reads_in_cache_only_when_the_working_set_fits() -> None:
    machine = dict(META["machine"])  # type: ignore[call-overload]
    meta = {**META, "machine": {**machine, "caches": {"L1": 48 << 10, "L2": 2 << 20, "L3": 32 << 20}}}
    rows = [_memory_bound((8, 64, 256), 80.0, 2.4), _memory_bound((8, 4096, 1024), 36.3, 1.09)]
    summary = render(meta, rows).split("## Timings")[0]
    roofline = next(
        line for line in summary.split("How close to the hardware")[1].splitlines() if line.startswith("| numba")
    )
    small, large = roofline.split(" | ")[1:3]
    assert small.endswith("240% of copy (80 GB/s) (in cache: its 1 MiB fit in L2)")
    assert "109% of copy (36.3 GB/s) (**ceiling exceeded: out of cache" in large
    assert "Above 100% is *in cache* only where" in summary
    # Without the machine's cache sizes nothing is called "in cache".
    unknown = render(META, rows).split("## Timings")[0]
    assert "in cache: its" not in unknown and unknown.count("ceiling exceeded") == 2
