"""Report and plots rebuilt from a stored run (tests/data/run-small), and the ways plotting can fail.

The fixture is a real run on this project's CPU machine: numpy and torch, all four
forms, B=2, C=8, T in 32, 128, 512, 2048 (``python -m suite run --backends
numpy,torch --sizes 2x32x8,2x128x8,2x512x8,2x2048x8 --budget 0.05 --threads 1``).
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from suite.cli import main
from suite.format import format_seconds
from suite.report import drawing
from suite.report import plots as plots_module
from suite.report.markdown import write_report
from suite.results import CSV_NAME, JSON_NAME, load_run, write_json
from tests.report.test_markdown import section, table_rows

pytest.importorskip("matplotlib")

FIXTURE = Path(__file__).parents[1] / "data" / "run-small"
SIZES = ["2x32x8", "2x128x8", "2x512x8", "2x2048x8"]
EXPECTED_PLOTS = {
    "time-vs-T-cumsum",
    "time-vs-T-loop",
    "time-vs-T-matrix",
    "time-vs-T-softmax",
    "speedup-vs-numpy",
    "forms-numpy",
    "forms-torch",
}


def copy_fixture(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in (CSV_NAME, JSON_NAME):
        shutil.copy(FIXTURE / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture run with its report and plots rebuilt by ``python -m suite report``."""
    run = copy_fixture(tmp_path_factory.mktemp("report") / "run")
    assert main(["report", str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def report(built: Path) -> str:
    return (built / "report.md").read_text(encoding="utf-8")


def test_fixture_is_small_and_complete():
    assert sum(p.stat().st_size for p in FIXTURE.iterdir()) < 200_000
    _, rows = load_run(FIXTURE)
    assert len(rows) == 32
    assert {r.status for r in rows} == {"ok"}
    assert sorted({r.T for r in rows}) == [32, 128, 512, 2048]


def test_sections_in_reading_order(report):
    heads = ["## Summary", "## Timings", "## Correctness", "## Not run", "## Scaling", "## Plots"]
    positions = [report.index(f"\n{h}\n") for h in heads]
    assert positions == sorted(positions)
    for form in ("loop", "matrix", "softmax", "cumsum"):
        assert f"\n### {form} (float32)\n" in report


def test_every_timing_cell_is_the_rows_median_and_iqr(report):
    _, rows = load_run(FIXTURE)
    for form in ("loop", "matrix", "softmax", "cumsum"):
        table = table_rows(section(report, f"### {form} (float32)"))
        assert table[0] == ["backend (device)", *SIZES]
        cells = {(line[0], size): cell for line in table[2:] for size, cell in zip(SIZES, line[1:], strict=True)}
        for r in (r for r in rows if r.form == form):
            cell = cells[(f"{r.backend} (cpu)", f"{r.B}x{r.T}x{r.C}")]
            assert cell.startswith(f"{format_seconds(r.median_s)} ± {format_seconds(r.iqr_s)}")


def test_summary_names_the_fastest_form_with_its_time(report):
    _, rows = load_run(FIXTURE)
    table = table_rows(section(report, "**Fastest form**", "**How close to the hardware**"))
    assert table[0] == ["backend (device)", *SIZES]
    assert [line[0] for line in table[2:]] == ["numpy (cpu)", "torch (cpu)"]
    for line in table[2:]:
        backend = line[0].split()[0]
        for size, cell in zip(SIZES, line[1:], strict=True):
            candidates = [r for r in rows if r.backend == backend and f"{r.B}x{r.T}x{r.C}" == size]
            best = min(candidates, key=lambda r: r.median_s)
            assert cell == f"{best.form}, {format_seconds(best.median_s)}"


def test_summary_accuracy_is_the_worst_ratio_per_backend(report):
    _, rows = load_run(FIXTURE)
    table = table_rows(section(report, "**Accuracy at a glance**", "**Not run**"))
    assert table[0] == ["backend (device)", "checked", "failed", "worst error / tolerance", "at"]
    for line in table[2:]:
        mine = [r for r in rows if r.backend == line[0].split()[0]]
        worst = max(mine, key=lambda r: r.rel_err / r.tol)
        assert line[1:] == [
            "16",
            "0",
            f"{worst.rel_err / worst.tol:.2g}",
            f"{worst.form} {worst.B}x{worst.T}x{worst.C} float32",
        ]
    assert section(report, "**Not run**:", "## Timings").strip() == "Every case ran."


def test_scaling_table_matches_an_independent_fit(report):
    _, rows = load_run(FIXTURE)
    table = table_rows(section(report, "## Scaling", "**Crossovers**"))
    assert table[0][:6] == ["backend (device)", "form", "dtype", "B, C", "T (sizes)", "k ± s.e."]
    assert len(table) == 2 + 8
    for line in table[2:]:
        backend, form = line[0].split()[0], line[1]
        mine = sorted((r for r in rows if r.backend == backend and r.form == form), key=lambda r: r.T)
        x = np.log([r.T for r in mine])
        y = np.log([r.median_s for r in mine])
        (k, c), res, *_ = np.polyfit(x, y, 1, full=True)
        se = np.sqrt(res[0] / 2 / ((x - x.mean()) ** 2).sum())
        tail = np.log(mine[-1].median_s / mine[-2].median_s) / np.log(4)
        assert line[2:7] == ["float32", "2, 8", "32..2048 (4)", f"{k:.2f}±{se:.2f}", f"{tail:.2f}"]
        assert line[7] == format_seconds(float(np.exp(c) * 2048**k))


def test_backend_crossovers_listed(report):
    table = table_rows(section(report, "**Backend crossovers**", "## Plots"))
    assert table[0] == ["form", "dtype", "B, C", "faster below", "faster above", "T at crossover", "between"]
    _, rows = load_run(FIXTURE)
    for line in table[2:]:
        lo, hi = (int(t) for t in line[6].split(".."))
        t = {r.backend: {s.T: s.median_s for s in rows if s.backend == r.backend and s.form == line[0]} for r in rows}
        below, above = line[3].split()[0], line[4].split()[0]
        # The order really flips between the two measured sizes.
        assert t[below][lo] < t[above][lo] and t[above][hi] < t[below][hi]
        assert lo < float(line[5]) < hi


def test_plots_are_written_linked_and_not_empty(built, report):
    plots_dir = built / "plots"
    names = {p.stem for p in plots_dir.iterdir()}
    assert names == EXPECTED_PLOTS
    links = re.findall(r"!\[[^\]]*\]\((plots/[^)]+\.png)\)", report)
    assert {Path(link).stem for link in links} == EXPECTED_PLOTS
    for link in links:
        png = built / link
        svg = png.with_suffix(".svg")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 10_000
        text = svg.read_text(encoding="utf-8")
        assert "<svg" in text and text.rstrip().endswith("</svg>")
        assert f"]({link[:-4]}.svg)" in report


def test_time_plot_legend_carries_the_fitted_exponent(built, report):
    svg = (built / "plots" / "time-vs-T-cumsum.svg").read_text(encoding="utf-8")
    table = table_rows(section(report, "## Scaling", "**Crossovers**"))
    for line in table[2:]:
        if line[1] == "cumsum":
            assert f"{line[0].split()[0]} k={line[5]}" in svg
    speedup = (built / "plots" / "speedup-vs-numpy.svg").read_text(encoding="utf-8")
    assert "torch (cpu) overtakes numpy (cpu) at T≈" in speedup


def cumsum_only(dest: Path) -> Path:
    """The fixture's cumsum rows alone, as a run folder: two figures, quick to draw."""
    meta, rows = load_run(FIXTURE)
    dest.mkdir(parents=True)
    write_json(dest / JSON_NAME, meta, [r for r in rows if r.form == "cumsum"])
    return dest


def test_rebuilding_gives_the_same_svg_and_clears_stale_plots(tmp_path):
    first, second = cumsum_only(tmp_path / "first"), cumsum_only(tmp_path / "second")
    (second / "plots").mkdir()
    (second / "plots" / "time-vs-T-gone.png").write_bytes(b"old")
    (second / "plots" / "mine.png").write_bytes(b"keep")
    assert main(["report", str(first)]) == 0
    assert main(["report", str(second)]) == 0
    assert not (second / "plots" / "time-vs-T-gone.png").exists()
    assert (second / "plots" / "mine.png").read_bytes() == b"keep"
    assert sorted(p.name for p in (first / "plots").iterdir()) == [
        "speedup-vs-numpy.png",
        "speedup-vs-numpy.svg",
        "time-vs-T-cumsum.png",
        "time-vs-T-cumsum.svg",
    ]
    for name in ("time-vs-T-cumsum.svg", "speedup-vs-numpy.svg"):
        assert (second / "plots" / name).read_bytes() == (first / "plots" / name).read_bytes()


def test_report_to_another_file_puts_plots_beside_it(tmp_path, capsys):
    run = cumsum_only(tmp_path / "run")
    out = tmp_path / "elsewhere" / "custom.md"
    assert main(["report", str(run / JSON_NAME), "--out", str(out)]) == 0
    assert "and 4 plot files in" in capsys.readouterr().out
    assert (tmp_path / "elsewhere" / "plots" / "time-vs-T-cumsum.png").exists()
    assert "](plots/time-vs-T-cumsum.png)" in out.read_text(encoding="utf-8")
    assert not (run / "plots").exists()
    assert not (run / "report.md").exists()


def test_no_plots_flag(tmp_path):
    run = copy_fixture(tmp_path / "run")
    assert main(["report", str(run), "--no-plots"]) == 0
    assert not (run / "plots").exists()
    assert section((run / "report.md").read_text(), "## Plots").strip() == "Plots were not requested (`--no-plots`)."


def test_missing_matplotlib_gives_the_install_hint_and_no_traceback(tmp_path, monkeypatch, capsys):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    run = copy_fixture(tmp_path / "run")
    assert main(["report", str(run)]) == 0
    captured = capsys.readouterr()
    hint = "Plots were not written: matplotlib is not installed; pip install 'causal-bench[plots]'."
    assert hint in captured.err
    assert "Traceback" not in captured.err + captured.out
    text = (run / "report.md").read_text()
    assert section(text, "## Plots").strip() == hint
    assert "## Scaling" in text  # the rest of the report is all there
    assert not (run / "plots").exists()


def test_a_plotting_error_is_one_logged_line_and_the_report_is_still_written(tmp_path, monkeypatch, capsys):
    def boom(folder, rows):
        raise RuntimeError("renderer exploded\nsecond line")

    monkeypatch.setattr(plots_module, "_speedup_plots", boom)
    meta, rows = load_run(cumsum_only(tmp_path / "run"))
    written = write_report(tmp_path, meta, rows)
    err = capsys.readouterr().err
    assert err == "warning: plots not written: RuntimeError: renderer exploded\n"
    assert written.plots == []
    text = written.path.read_text()
    assert "![" not in text
    assert "Plots were not written: RuntimeError while plotting" in text


def test_run_writes_plots_beside_its_report(tmp_path):
    out = tmp_path / "run"
    argv = ["run", "--backends", "numpy", "--forms", "cumsum", "--variants", "none", "--sizes", "1x8x2,1x64x2"]
    argv += ["--out", str(out)]
    assert main([*argv, "--budget", "0.03", "--warmup", "0.01", "--quiet", "--no-isolate"]) == 0
    assert (out / "plots" / "time-vs-T-cumsum.png").stat().st_size > 0
    assert "](plots/time-vs-T-cumsum.png)" in (out / "report.md").read_text()
    # One backend, one form: no speedup or forms figure; its measured memory against T.
    assert sorted(p.name for p in (out / "plots").iterdir()) == [
        "memory-vs-T-numpy.png",
        "memory-vs-T-numpy.svg",
        "time-vs-T-cumsum.png",
        "time-vs-T-cumsum.svg",
    ]


def test_nothing_to_plot_is_said_so(tmp_path):
    meta, rows = load_run(FIXTURE)
    one_size = [r for r in rows if r.T == 32]
    written = write_report(tmp_path, meta, one_size)
    assert written.plots == []
    assert "nothing to plot" in section(written.path.read_text(), "## Plots")


# -- readability (issue 15): crossovers as markers listed apart, IQR bands, tick labels ---------


def _figures(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Capture every figure ``write_plots`` saves, by file name."""
    figures: dict[str, Any] = {}
    save = drawing.save_figure

    def keep(fig: Any, folder: Path, name: str, kind: str, title: str) -> Any:
        figures[name] = fig
        return save(fig, folder, name, kind, title)

    monkeypatch.setattr(plots_module, "save_figure", keep)
    return figures


def _texts(fig: Any) -> list[Any]:
    """The texts a reader sees: visible, not empty, and no tick label of a tick outside the view."""
    from matplotlib.text import Text

    fig.canvas.draw()
    hidden = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                if not lo <= tick.get_loc() <= hi:
                    hidden |= {id(tick.label1), id(tick.label2)}
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip() and id(t) not in hidden]


def test_no_text_of_any_figure_overlaps_another(tmp_path, monkeypatch):
    """The old crossover labels were vertical text stacked on each other; now no two labels touch."""
    figures = _figures(monkeypatch)
    _meta, rows = load_run(FIXTURE)
    plots_module.write_plots(tmp_path, rows)
    assert figures
    for name, fig in figures.items():
        renderer = fig.canvas.get_renderer()
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in _texts(fig)]
        for i, (a, box_a) in enumerate(boxes):
            for b, box_b in boxes[i + 1 :]:
                assert not box_a.overlaps(box_b), f"{name}: {a!r} overlaps {b!r}"
        assert not any(t.get_rotation() not in (0, 90) for t in _texts(fig)), name


def test_crossovers_are_numbered_markers_listed_in_a_legend(tmp_path, monkeypatch):
    from matplotlib.collections import PathCollection

    figures = _figures(monkeypatch)
    _meta, rows = load_run(FIXTURE)
    plots_module.write_plots(tmp_path, rows)
    marked = 0
    for name, fig in figures.items():
        texts = [t.get_text() for t in _texts(fig)]
        listed = [t for t in texts if re.match(r"^(\w+ )?\d+: .+ overtakes .+ at T≈\d+$", t)]
        markers = [c for ax in fig.axes for c in ax.collections if isinstance(c, PathCollection)]
        # One X marker on the curves per listed crossing, each with its number beside it.
        assert len(markers) == len(listed), name
        for label in listed:
            assert label.split(": ")[0].split()[-1] in texts, (name, label)
        # Vertical text is gone: only the y labels are rotated.
        assert {t.get_text() for t in _texts(fig) if t.get_rotation() == 90} <= {ax.get_ylabel() for ax in fig.axes}
        marked += bool(listed)
    assert marked  # the fixture has curves that cross


def test_every_curve_carries_its_interquartile_band(tmp_path, monkeypatch):
    from matplotlib.collections import PolyCollection

    figures = _figures(monkeypatch)
    _meta, rows = load_run(FIXTURE)
    plots_module.write_plots(tmp_path, rows)
    ax = figures["time-vs-T-cumsum"].axes[0]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    curves = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert len(bands) == len(curves) == 2
    numpy_row = next(r for r in rows if r.backend == "numpy" and r.form == "cumsum" and r.T == 2048)
    q1, q3 = np.percentile(numpy_row.samples_s, [25, 75])
    assert plots_module.quartiles(numpy_row) == pytest.approx((q1, q3))
    assert q1 <= numpy_row.median_s <= q3


def test_log_axes_label_ticks_with_units(tmp_path, monkeypatch):
    figures = _figures(monkeypatch)
    _meta, rows = load_run(FIXTURE)
    plots_module.write_plots(tmp_path, rows)
    fig = figures["time-vs-T-cumsum"]
    fig.canvas.draw()
    ax = fig.axes[0]
    x_labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    y_labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert {"32", "128", "512", "2048"} <= set(x_labels)
    assert len(y_labels) >= 2 and all(re.fullmatch(r"[\d.]+ (ns|us|ms|s)", t) for t in y_labels), y_labels


def test_memory_plot_shows_measured_peak_against_the_estimate(tmp_path, monkeypatch):
    figures = _figures(monkeypatch)
    _meta, rows = load_run(FIXTURE)
    sized = []
    for r in rows:
        if r.backend == "numpy" and r.status == "ok":
            r.peak_rss_bytes = 4.0 * r.T * r.T if r.form == "matrix" else 16.0 * r.T
            r.est_mem_bytes = 2.0 * r.peak_rss_bytes
            sized.append(r)
    plots_module.write_plots(tmp_path, sized)
    ax = figures["memory-vs-T-numpy"].axes[0]
    matrix = next(line for line in ax.get_lines() if line.get_label() == "matrix measured")
    ts, ys = matrix.get_data()
    assert list(ys) == [4.0 * t * t for t in ts]
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--" and len(line.get_xdata())]
    assert any(list(line.get_ydata()) == [8.0 * t * t for t in ts] for line in dashed)


def test_a_variant_is_a_labelled_curve_on_its_forms_figures(tmp_path, monkeypatch):
    from tests.stored_runs import row

    rows = [
        row(f * T / 64, backend=b, variant=v, T=T, seed=T)
        for b, v, f in (("numpy", "", 4.0), ("numpy", "staged", 1.0), ("torch", "", 2.0))
        for T in (64, 128, 256)
    ]
    figures = _figures(monkeypatch)
    plots_module.write_plots(tmp_path, rows)
    # No figure of its own: the variant is drawn beside the idiom, under its name.
    assert not any("staged" in name for name in figures)
    legend = [t.get_text() for t in figures["time-vs-T-cumsum"].legends[0].get_texts()]
    assert [t.split(" k=")[0] for t in legend] == ["numpy", "numpy cumsum[staged]", "torch"]
    speedup = [t.get_text() for t in figures["speedup-vs-numpy"].legends[0].get_texts()]
    assert speedup == ["numpy (cpu) cumsum[staged]", "torch (cpu)"]  # over NumPy's idiom, the variant a line
    assert "forms-numpy" not in figures  # one form and its variant: the time figure shows them
