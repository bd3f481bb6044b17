"""The attention kernels in the report: a curve, a table line and a crossover of their own."""

from __future__ import annotations

from pathlib import Path

from suite.cases import Case
from suite.report.markdown import write_report
from suite.report.scaling import find_crossovers, fit_scaling, group_key
from suite.report.tables import not_run_table, timing_tables
from suite.results import Row

SIZES = (256, 512, 1024, 2048, 4096)


def timed(form: str, T: int, seconds: float, kernel: str = "") -> Row:
    return Row(Case("torch", form, 1, T, 64, kernel=kernel), device="cpu", median_s=seconds, iqr_s=seconds / 100)


def rows() -> list[Row]:
    """cumsum O(T) plus 2 us; attention O(T^2): flash faster than cumsum up to T = 1024, math up to 512."""
    out = [timed("cumsum", T, 1e-6 * T / 1000 + 2e-6) for T in SIZES]
    out += [timed("attention", T, 3e-6 * (T / 1024) ** 2, "flash") for T in SIZES]
    out += [timed("attention", T, 9e-6 * (T / 1024) ** 2, "math") for T in SIZES]
    out.append(
        Row(
            Case("torch", "attention", 1, 4096, 64, kernel="cudnn"),
            device="cpu",
            status="skipped",
            reason="the cudnn attention kernel needs a CUDA GPU; torch runs on cpu",
        )
    )
    return out


def test_each_kernel_is_its_own_curve_with_its_exponent() -> None:
    assert group_key(rows()[5]).form == "attention[flash]"
    fits = {f.key.form: f for f in fit_scaling(rows())}
    assert set(fits) == {"cumsum", "attention[flash]", "attention[math]"}
    assert abs(fits["attention[flash]"].k - 2) < 1e-9 and abs(fits["attention[math]"].k_tail - 2) < 1e-9
    assert fits["cumsum"].k < 1.1


def test_the_crossover_names_the_kernel_and_the_length() -> None:
    found = {(c.faster_below, c.faster_above): c for c in find_crossovers(rows(), vary="form")}
    flash = found[("attention[flash]", "cumsum")]
    assert 1024 <= flash.T <= 2048 and flash.between == (1024, 2048)
    math_ = found[("attention[math]", "cumsum")]
    assert 512 <= math_.T <= 1024 and math_.between == (512, 1024)


def test_the_timing_table_has_a_line_per_kernel_and_the_skip_names_it() -> None:
    text = "\n".join(timing_tables(rows()))
    assert "| torch (cpu) flash |" in text and "| torch (cpu) math |" in text
    assert "| torch (cpu) |" in text  # cumsum's table: no kernel
    skipped = "\n".join(not_run_table(rows()))
    assert "attention[cudnn]" in skipped and "needs a CUDA GPU" in skipped


def test_the_forms_plot_draws_the_kernels(tmp_path: Path) -> None:
    written = write_report(tmp_path, {}, rows())
    names = {p.name for p in (tmp_path / "plots").glob("*.svg")}
    assert "time-vs-T-attention-flash.svg" in names, names
    forms = next(n for n in names if n.startswith("forms-torch"))
    svg = (tmp_path / "plots" / forms).read_text()
    assert "attention[flash]" in svg and "attention[math]" in svg and "cumsum" in svg
    # The crossovers table: the kernel faster below, cumsum faster above.
    assert "| attention[flash] | cumsum | 1029 | 1024..2048 |" in written.path.read_text()
