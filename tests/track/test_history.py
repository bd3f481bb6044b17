"""history: trends over the runs of one machine, step changes, the CLI's files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from suite.cases import Case
from suite.cli import main
from suite.results import Row
from suite.track import history
from suite.track.compare import rounds_verdict, timing_verdict
from suite.track.config import CompareConfig
from tests.stored_runs import MEDIAN_S, config_file, meta, row, write_run


def _history_runs(root: Path) -> None:
    factors = {"2026-01-01": 1.0, "2026-01-02": 1.01, "2026-01-03": 1.3, "2026-01-04": 1.3}
    # Written out of order: the history orders by start time, not by folder name.
    for i, (day, f) in enumerate(sorted(factors.items(), reverse=True)):
        rows = [row(f, seed=20 + i), row(1.0, T=128, seed=30 + i)]
        write_run(root / f"run-{i}", rows, meta(started=f"{day}T00:00:00+00:00", run_id=day))
    write_run(root / "other", [row(5.0)], meta(fp="elsewhere", started="2026-01-05T00:00:00+00:00"))
    (root / "broken").mkdir()


def test_history_flags_the_step_and_only_the_step(tmp_path: Path) -> None:
    _history_runs(tmp_path)
    h = history.build_history(tmp_path, fingerprint="abc123")
    assert [r.meta["run_id"] for r in h.runs] == ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]
    steps = h.steps()
    assert len(steps) == 1
    key, point = steps[0]
    assert key.startswith("numpy:cumsum:4x64x8") and point.run.meta["run_id"] == "2026-01-03"
    assert point.step == history.STEP_UP and point.ratio == pytest.approx(1.3 / 1.01, rel=0.03)
    assert h.other_machines == {"elsewhere": 1}
    assert any("broken" in s for s in h.skipped)


def test_history_defaults_to_the_newest_machine_and_cli_writes_files(tmp_path: Path, capsys) -> None:
    _history_runs(tmp_path / "runs")
    assert history.build_history(tmp_path / "runs").fingerprint == "elsewhere"
    out = tmp_path / "out"
    argv = ["history", str(tmp_path / "runs"), "--machine", "abc123", "--out", str(out), "--config", "none.toml"]
    assert main(argv) == 2  # a named config file must exist
    argv = [*argv[:-2], "--config", str(config_file(tmp_path, ""))]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "### Step changes (1)" in printed and "step up" in printed
    lines = (out / "history.csv").read_text().splitlines()
    assert lines[0] == ",".join(history.CSV_COLUMNS)
    assert len(lines) == 1 + 2 * 4
    assert sum(line.endswith(",step up,false,false") for line in lines) == 1
    assert (out / "history.md").read_text() == printed
    assert main(["history", str(tmp_path / "runs"), "--machine", "nope"]) == 2


def test_a_contended_run_is_marked_and_judges_nothing(tmp_path: Path) -> None:
    """A 3x slower row measured under contention is no step, and the run after it is judged against the one before."""
    days = {"2026-01-01": 1.0, "2026-01-02": 3.0, "2026-01-03": 1.0, "2026-01-04": 1.5}
    for i, (day, f) in enumerate(days.items()):
        r = row(f, seed=40 + i)
        r.contended = day == "2026-01-02"
        write_run(tmp_path / f"run-{i}", [r], meta(started=f"{day}T00:00:00+00:00", run_id=day))
    h = history.build_history(tmp_path)
    (points,) = h.series.values()
    assert [p.step for p in points] == ["", "", "", history.STEP_UP]
    assert math.isnan(points[1].ratio)  # contended: not compared at all
    assert points[2].ratio == pytest.approx(1.0, rel=0.03)  # against the first run, not the contended one
    assert points[3].ratio == pytest.approx(1.5, rel=0.03)
    md = history.render_markdown(h)
    assert "(contended)" in md and md.count("▲") == 1
    csv_lines = history.render_csv(h).splitlines()
    assert [line.split(",")[-2] for line in csv_lines[1:]] == ["false", "true", "false", "false"]


def _wandering(medians: tuple[float, ...], rng: np.random.Generator, n: int = 30):
    """A row of one round per entry of ``medians``: tight samples within a round, the rounds apart."""
    r = row(1.0)
    r.samples_s = [x for m in medians for x in MEDIAN_S * m * np.exp(rng.normal(0, 0.005, n))]
    r.samples_round = [i + 1 for i in range(len(medians)) for _ in range(n)]
    r.median_s, r.rounds = float(np.median(r.samples_s)), len(medians)
    return r


def test_history_judges_rounds_as_compare_does(tmp_path: Path) -> None:
    """Rounds that wander 10% apart: their pooled samples show a step, the rounds do not."""
    rng = np.random.default_rng(5)
    base, head = _wandering((1.0, 1.1, 1.2), rng), _wandering((1.1, 1.2, 1.3), rng)
    limits = CompareConfig().for_case("numpy", "cumsum")
    assert timing_verdict(base.samples_s, head.samples_s, limits)["verdict"] == "slower"  # what history used to ask
    assert rounds_verdict(base, head, limits)["verdict"] == "same"
    for i, r in enumerate((base, head)):
        write_run(tmp_path / f"run-{i}", [r], meta(started=f"2026-01-0{i + 1}T00:00:00+00:00", run_id=str(i)))
    (points,) = history.build_history(tmp_path).series.values()
    assert [p.step for p in points] == ["", ""]
    assert points[1].ratio == pytest.approx(rounds_verdict(base, head, limits)["ratio"])


def _counted(instructions: float, machine: str = "sim-a") -> Row:
    case = Case("numpy", "cumsum", 4, 64, 8, "float32", "ieee", "normal", metric="instructions")
    return Row(case, device="cpu (callgrind)", status="ok", instructions=instructions, n_samples=10, machine=machine)


def test_counted_history_steps_by_the_counted_threshold_and_shows_instructions(tmp_path: Path) -> None:
    """Counted runs beside timed runs of the same case: two series; a 2% count step is one, 0.3% is none."""
    counts = {"2026-01-01": 1e6, "2026-01-02": 1.003e6, "2026-01-03": 1.02e6, "2026-01-04": 1.02e6}
    for i, (day, n) in enumerate(counts.items()):
        write_run(tmp_path / f"counted-{i}", [_counted(n)], meta(started=f"{day}T00:00:00+00:00", run_id=f"c{i}"))
        write_run(tmp_path / f"timed-{i}", [row(1.0, seed=60 + i)], meta(started=f"{day}T01:00:00+00:00"))
    h = history.build_history(tmp_path)
    assert len(h.runs) == 8 and len(h.series) == 2
    counted_key = next(k for k in h.series if k.endswith("@instructions"))
    for key, points in h.series.items():  # never one series of counted and timed rows
        rows = [p.row for p in points if p.row is not None]
        assert len(rows) == 4 and {r.metric for r in rows} == {"instructions" if key == counted_key else "time"}
    (key, step), *others = h.steps()
    assert key == counted_key and not others and step.run.meta["run_id"] == "c2" and step.step == history.STEP_UP
    assert step.ratio == pytest.approx(1.02 / 1.003) and math.isnan(step.p_value)  # no test: the threshold alone
    md = history.render_markdown(h)
    assert "### Per call: median time, instructions where counted" in md
    figures = md.split("### Per call")[1]
    counted_line = next(line for line in figures.splitlines() if line.startswith(f"| `{counted_key}` |"))
    assert "1,000,000 instr" in counted_line and "1,020,000 instr ▲ 1.017x" in counted_line
    assert " ms" not in counted_line and " us" not in counted_line
    lines = history.render_csv(h).splitlines()
    column = lines[0].split(",").index("instructions")
    shown = [float(line.split(",")[column]) for line in lines[1:] if line.startswith(counted_key)]
    assert shown == list(counts.values())
    # A looser counted threshold (the config's) takes the step away; the timed threshold has no say.
    assert not history.build_history(tmp_path, CompareConfig().with_cli(None, None, 0.05)).steps()
    assert history.build_history(tmp_path, CompareConfig().with_cli(0.5, None, None)).steps()


def test_counts_of_another_simulated_machine_start_the_series_afresh(tmp_path: Path) -> None:
    """A valgrind or dispatch change moves counts: no step across it, and the next run is judged on the new machine."""
    counted = [_counted(1e6), _counted(1.1e6, "sim-b"), _counted(1.1e6, "sim-b"), _counted(1.2e6, "sim-b")]
    for i, r in enumerate(counted):
        write_run(tmp_path / f"run-{i}", [r], meta(started=f"2026-01-0{i + 1}T00:00:00+00:00", run_id=str(i)))
    h = history.build_history(tmp_path)
    (points,) = h.series.values()
    assert [p.step for p in points] == ["", "", "", history.STEP_UP]
    assert [p.new_machine for p in points] == [False, True, False, False] and math.isnan(points[1].ratio)
    assert points[2].ratio == pytest.approx(1.0) and points[3].ratio == pytest.approx(1.2 / 1.1)
    md = history.render_markdown(h)
    assert "### Instructions per call" in md and "1,100,000 instr (other simulated machine)" in md
