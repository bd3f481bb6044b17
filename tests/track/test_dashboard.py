"""dashboard: stored runs -> per-case trends and backend bars, one self-contained page."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from suite.cli import main
from suite.results import Row
from suite.track import dashboard
from suite.track.dashboard_page import PAGE_NAME, render_page
from suite.track.history import StoredRun
from tests.stored_runs import MEDIAN_S, meta, row, write_run

DAYS = ("2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04")
FACTORS = (1.0, 1.01, 1.3, 1.3)  # a step up on the third day


def commit(i: int) -> str:
    return f"{i:x}" * 40


def history_meta(i: int, fp: str = "abc123") -> dict[str, Any]:
    m = meta(fp=fp, started=f"{DAYS[i]}T06:00:00+02:00", run_id=DAYS[i])
    m["git_commit"] = commit(i + 1)[:40]
    return m


def write_history(root: Path, fp: str = "abc123") -> Path:
    for i, f in enumerate(FACTORS):
        rows = [row(f, seed=20 + i), row(2.0, backend="torch", seed=40 + i), row(1.0, T=128, seed=30 + i)]
        write_run(root / f"run-{i}", rows, history_meta(i, fp))
    return root


def page_data(page: Path) -> dict[str, Any]:
    text = page.read_text()
    found = re.search(r'<script type="application/json" id="cb-data">(.*?)</script>', text, re.S)
    assert found is not None
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def test_trend_points_carry_commit_time_and_the_step(tmp_path: Path) -> None:
    data = dashboard.build_data(dashboard.load_inputs([write_history(tmp_path)]))
    assert data["runs"] == 4 and len(data["cases"]) == 3
    key = next(k for k in data["cases"] if k.startswith("numpy:cumsum:4x64x8"))
    traces = data["cases"][key]["trend"]["data"]
    line = traces[0]
    # Times in UTC (the runs started at 06:00+02:00), in order, one per run.
    assert line["x"] == [f"{d} 04:00:00" for d in DAYS]
    assert line["y"] == pytest.approx([MEDIAN_S * f for f in FACTORS], rel=0.03)
    assert [h.split("<br>")[0] for h in line["hovertext"]] == [f"commit {commit(i + 1)[:12]}" for i in range(4)]
    assert line["customdata"] == [commit(i + 1) for i in range(4)]
    # The one step, on the third day, marked apart and listed.
    steps = [t for t in traces if t["name"].endswith("step up")]
    assert len(steps) == 1 and steps[0]["x"] == ["2026-01-03 04:00:00"]
    ratio = re.search(r"step up: ([0-9.]+)x the previous run", steps[0]["hovertext"][0])
    assert ratio is not None and float(ratio.group(1)) == pytest.approx(1.3 / 1.01, rel=0.03)
    assert [(s["case"], s["when"]) for s in data["steps"]] == [(key, "2026-01-03 04:00:00")]
    assert data["first"] == key
    # numpy and torch side by side at the latest run.
    bars = data["groups"][data["cases"][key]["group"]]["data"]
    assert len(bars) == 1 and bars[0]["x"] == ["numpy", "torch"]
    assert bars[0]["y"] == pytest.approx([MEDIAN_S * 1.3, MEDIAN_S * 2.0], rel=0.03)


def test_rounds_give_error_bars_from_the_round_medians() -> None:
    r = row(1.0, n=40)
    r.rounds = 2
    r.samples_round = [1] * 20 + [2] * 20
    r.samples_s = [1e-3] * 20 + [2e-3] * 20
    r.median_s = 1.5e-3
    assert dashboard.round_bounds(r) == (1e-3, 2e-3)
    only_spread = row(1.0)
    only_spread.round_spread = 0.2
    low, high = dashboard.round_bounds(only_spread) or (0, 0)
    assert high - low == pytest.approx(0.2 * only_spread.median_s)
    assert dashboard.round_bounds(row(1.0)) is None
    run = StoredRun(Path("r"), history_meta(0), {r.key: r})
    trace = dashboard.build_data([run])["cases"][r.key]["trend"]["data"][0]
    assert trace["error_y"]["array"] == pytest.approx([0.5e-3]) and trace["error_y"]["arrayminus"] == pytest.approx(
        [0.5e-3]
    )


def _flagged(name: str) -> Row:
    r = row(3.0, seed=5)
    setattr(r, name, True)  # ``drifted`` is a column another change adds: read with a default
    return r


@pytest.mark.parametrize("flag", ["contended", "drifted"])
def test_contended_and_drifted_points_are_drawn_apart(flag: str) -> None:
    runs = [StoredRun(Path(f"r{i}"), history_meta(i), {r.key: r}) for i, r in enumerate([row(1.0), _flagged(flag)])]
    traces = dashboard.build_data(runs)["cases"][runs[0].rows.popitem()[0]]["trend"]["data"]
    assert [t["name"] for t in traces] == ["abc123 (Test CPU)", "abc123 (Test CPU): contended or drifted"]
    assert traces[0]["x"] == ["2026-01-01 04:00:00"] and traces[1]["x"] == ["2026-01-02 04:00:00"]
    assert f"measured {flag}" in traces[1]["hovertext"][0] and traces[1]["marker"]["symbol"] == "x-open"


def test_counted_rows_plot_instructions() -> None:
    r = row(1.0)
    vars(r).update(metric="instructions", instructions=123456.0)  # columns another change adds
    figure = dashboard.build_data([StoredRun(Path("r"), history_meta(0), {r.key: r})])["cases"][r.key]["trend"]
    assert figure["data"][0]["y"] == [123456.0] and "error_y" not in figure["data"][0]
    assert figure["layout"]["yaxis"]["title"]["text"] == "instructions per call"
    assert "123,456 instructions per call" in figure["data"][0]["hovertext"][0]
    assert dashboard.value(row(1.0)) == row(1.0).median_s  # no metric column: time


def test_machines_are_series_of_their_own(tmp_path: Path) -> None:
    write_history(tmp_path / "a", fp="aaa")
    write_history(tmp_path / "b", fp="bbb")
    # A fleet run: rows measured by two machines in one run.
    fleet = [row(1.0, seed=1), row(1.0, backend="torch", seed=2)]
    fleet[0].machine, fleet[1].machine = "node-one", "node-two"
    write_run(tmp_path / "fleet", fleet, history_meta(3, fp="aaa"))
    data = dashboard.build_data(dashboard.load_inputs([tmp_path / "a", tmp_path / "b", tmp_path / "fleet"]))
    assert [m["label"].split()[0] for m in data["machines"]] == ["aaa", "bbb", "node-one", "node-two"]
    key = next(k for k in data["cases"] if k.startswith("numpy:cumsum:4x64x8"))
    lines = [t for t in data["cases"][key]["trend"]["data"] if t["mode"] == "lines+markers"]
    assert [(t["legendgroup"], len(t["x"])) for t in lines] == [("aaa", 4), ("bbb", 4), ("node-one", 1)]


def test_page_is_self_contained_and_holds_the_data_once(tmp_path: Path, capsys) -> None:
    out = tmp_path / "site"
    assert main(["dashboard", str(write_history(tmp_path / "h")), "--out", str(out)]) == 0
    assert "4 runs, 3 cases, 1 machine, 1 step change" in capsys.readouterr().out
    text = (out / PAGE_NAME).read_text()
    assert text.count("<script") == 3 and 'id="cb-data"' in text
    assert not re.search(r"<(script|link)[^>]+(src|href)=", text)  # nothing loaded from elsewhere
    assert len(re.findall(r"<option ", text)) == 3
    assert page_data(out / PAGE_NAME)["first"].startswith("numpy:cumsum")


def test_no_runs_is_a_page_that_says_so(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["dashboard", str(tmp_path / "empty"), "--out", str(tmp_path / "site")]) == 0
    text = (tmp_path / "site" / PAGE_NAME).read_text()
    assert "No runs yet" in text and "Plotly" not in text


@pytest.mark.parametrize("bad", ["missing", "foreign.json", "torn"])
def test_a_broken_or_foreign_input_is_one_line_and_exit_2(tmp_path: Path, capsys, bad: str) -> None:
    write_history(tmp_path / "h")
    (tmp_path / "foreign.json").write_text('{"hello": 1}')
    (tmp_path / "h" / "torn").mkdir()
    (tmp_path / "h" / "torn" / "results.json").write_text('{"schema": "causal-bench/resu')
    target = tmp_path / "h" if bad == "torn" else tmp_path / bad
    assert main(["dashboard", str(target), "--out", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and (bad in err) and err.startswith("error:")
    assert not (tmp_path / "site").exists()


@pytest.mark.slow
def test_the_default_sweep_stays_small() -> None:
    """180 cases over 6 runs: one copy of plotly.js and compact JSON, well under 15 MB."""
    keys = [(b, t) for b in ("numpy", "torch", "jax") for t in range(60)]
    runs = []
    for i in range(6):
        rows = [row(1.0 + 0.01 * i, backend=b, T=8 + t, seed=i * 1000 + t, n=20) for b, t in keys]
        runs.append(StoredRun(Path(f"r{i}"), meta(started=f"2026-01-01T00:{i:02d}:00+00:00"), {r.key: r for r in rows}))
    data = dashboard.build_data(runs)
    assert len(data["cases"]) == 180
    size = len(render_page(data).encode())
    assert size < 15e6
    per_point = (size - 5e6) / (180 * 6)
    assert per_point < 15e6 / (180 * dashboard.DEFAULT_LAST)  # DEFAULT_LAST runs still fit
