"""The CI gate with injected `ab` results: decision, summary, exit codes, $GITHUB_STEP_SUMMARY."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from suite.cases import Case
from suite.cli import gate as gate_cli
from suite.cli import main
from suite.results import Row
from suite.rounds import merge_rows
from suite.track import ab, gate
from suite.track.gate import GateSpec, Runner

ROOT = Path(__file__).resolve().parents[2]
TIMED = Case("numpy", "cumsum", 8, 128, 256)
COUNTED = Case("numpy", "cumsum", 8, 128, 256, metric="instructions")


def timed(medians_us: Sequence[float]) -> Row:
    rounds = [Row(TIMED, status="ok", samples_s=[m * 1e-6] * 5, rounds=1) for m in medians_us]
    return merge_rows(rounds)


def counted(folder: Path, instructions: float, functions: dict[str, float]) -> Row:
    """A counted row and its callgrind file (one call counted), as `suite ab` leaves them in a side folder."""
    (folder / "counts").mkdir(parents=True)
    lines = ["events: Ir", "fl=(1) k.c"]
    for name, ir in functions.items():
        lines += [f"fn={name}", f"1 {ir:.0f}"]
    (folder / "counts" / "c.callgrind").write_text("\n".join([*lines, f"totals: {instructions:.0f}", ""]))
    return Row(COUNTED, status="ok", instructions=instructions, n_samples=1, counts="counts/c.callgrind")


def fake_runner(count_change: float, time_scale: float, calls: list[list[str]]) -> Runner:
    """Writes each part's side folders as `suite ab` would, with the chosen changes in the head."""

    def run(argv: Sequence[str]) -> tuple[int, str]:
        calls.append(list(argv))
        out = Path(argv[argv.index("--out") + 1])
        if "--metric" in argv:
            base = [counted(out / "base", 1e6, {"kernel": 900_000, "helper": 100_000})]
            grown = 1e6 * count_change
            head = [counted(out / "head", 1e6 + grown, {"kernel": 900_000 + grown, "helper": 100_000})]
        else:
            base = [timed([85, 88, 94, 86, 90])]
            head = [timed([m * time_scale for m in (85, 88, 94, 86, 90)])]
        ab.write_side(out / "base", {}, base)
        ab.write_side(out / "head", {}, head)
        return 0, ""

    return run


@pytest.mark.parametrize(
    ("count_change", "time_scale", "code", "regressions"),
    [
        (0.0, 1.0, 0, []),
        (0.012, 1.0, 1, ["instructions"]),
        (0.0, 1.3, 1, ["wall-clock"]),
        (0.02, 1.3, 1, ["instructions", "wall-clock"]),
    ],
)
def test_gate_fails_on_a_regression_in_either_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, count_change, time_scale, code, regressions
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(gate_cli, "RUNNER", fake_runner(count_change, time_scale, calls))
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    out = tmp_path / "gate"
    assert main(["gate", "HEAD", "HEAD", "--repo", str(ROOT), "--out", str(out), "--quiet"]) == code
    counts_argv, time_argv = calls
    assert counts_argv[counts_argv.index("--metric") + 1] == "instructions" and "--rounds" in counts_argv
    assert time_argv[time_argv.index("--rounds") + 1] == str(gate.GATE_ROUNDS) == "8" and "--metric" not in time_argv
    assert counts_argv[counts_argv.index("--sizes") + 1] == "gate" and "numpy,torch" in counts_argv
    assert time_argv[time_argv.index("--sizes") + 1] == gate.GATE_TIME_SIZES == "8x128x256"  # one size timed
    text = summary.read_text()
    assert text.strip() == (out / "gate.md").read_text().strip() and text.strip() in capsys.readouterr().out
    assert ("**regression**" in text) == bool(code) and ("pass" in text.splitlines()[0]) == (not code)
    for part in ("instructions, counted", "wall-clock"):
        assert (f"### Regressions, {part}" in text) == any(part.startswith(r) for r in regressions)
    if "instructions" in regressions:
        assert f"slower +{count_change:.1%}" in text
        # The function that grew, from the side folders' callgrind files; the one that did not is not listed.
        grown = f"| `kernel` | 900,000 | {900_000 + 1e6 * count_change:,.0f} | +{1e6 * count_change:,.0f} |"
        assert "#### What got slower, by function" in text and grown in text and "`helper`" not in text
    else:
        assert "What got slower" not in text


def test_gate_without_a_step_summary_writes_the_out_folder(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(gate_cli, "RUNNER", fake_runner(0.0, 1.0, []))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert main(["gate", "HEAD", "HEAD", "--repo", str(ROOT), "--out", str(tmp_path / "g"), "--quiet"]) == 0
    assert "| wall-clock | 1 | 0 | 0 | 0 | 1 |" in (tmp_path / "g" / "gate.md").read_text()


def test_bad_revision_and_failed_ab_are_one_line_and_exit_2(tmp_path: Path, monkeypatch, capsys) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(gate_cli, "RUNNER", fake_runner(0.0, 1.0, calls))
    out = tmp_path / "g"
    assert main(["gate", "no-such-rev", "HEAD", "--repo", str(ROOT), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'no-such-rev' is not a commit" in err and not out.exists() and not calls
    monkeypatch.setattr(gate_cli, "RUNNER", lambda argv: (2, "error: unrecognized arguments: --metric"))
    assert main(["gate", "HEAD", "HEAD", "--repo", str(ROOT), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == "error: instructions, counted: suite ab failed (exit 2): error: unrecognized arguments: --metric\n"


def test_too_few_rounds_warn_before_running(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(gate_cli, "RUNNER", fake_runner(0.0, 1.0, []))
    assert main(["gate", "HEAD", "HEAD", "--repo", str(ROOT), "--out", str(tmp_path), "--rounds", "3"]) == 0
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith("warning: 3 interleaved pairs cannot reach alpha 0.01") and "7 rounds or more" in first


def test_gate_spec_argv_for_each_part(tmp_path: Path) -> None:
    spec = GateSpec("main", "HEAD", tmp_path, rounds=7, budget=0.3)
    assert spec.ab_argv("time")[-4:] == ["--rounds", "7", "--budget", "0.3"]
    assert spec.ab_argv("counts")[-4:] == ["--metric", "instructions", "--rounds", "1"]
    assert str(tmp_path / "counts") in spec.ab_argv("counts")


def test_ab_warns_before_running_with_too_few_rounds(tmp_path: Path, capsys) -> None:
    assert main(["ab", "HEAD", "HEAD", "--repo", str(tmp_path / "none"), "--rounds", "3", "--quiet"]) == 2
    warning, error = capsys.readouterr().err.splitlines()
    assert warning.startswith("warning: 3 interleaved pairs cannot reach alpha 0.01") and error.startswith("error:")


@pytest.mark.parametrize(
    ("extra", "counted", "timed"),
    [
        ([], "gate", "8x128x256"),
        (["--sizes", "4x8x16"], "4x8x16", "4x8x16"),
        (["--sizes", "4x8x16", "--time-sizes", "4x32x16"], "4x8x16", "4x32x16"),
    ],
)
def test_the_wall_clock_part_times_its_own_sizes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str], counted: str, timed: str
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(gate_cli, "RUNNER", fake_runner(0.0, 1.0, calls))
    argv = ["gate", "HEAD", "HEAD", "--repo", str(ROOT), "--out", str(tmp_path / "gate"), "--quiet", *extra]
    assert main(argv) == 0
    counts_argv, time_argv = calls
    assert counts_argv[counts_argv.index("--sizes") + 1] == counted
    assert time_argv[time_argv.index("--sizes") + 1] == timed
