"""history: trends over the runs of one machine, step changes, the CLI's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from suite.cli import main
from suite.track import history
from tests.stored_runs import config_file, meta, row, write_run


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
    assert sum(line.endswith(",step up") for line in lines) == 1
    assert (out / "history.md").read_text() == printed
    assert main(["history", str(tmp_path / "runs"), "--machine", "nope"]) == 2
