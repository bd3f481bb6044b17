"""A/B in one job: two commits of a scratch repository, interleaved, pooled, compared."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from suite import procgroup
from suite.cases import Case
from suite.cli import build_parser, main
from suite.results import Row, load_run
from suite.track import ab, worktrees
from tests.track.scratch_git import git
from tests.track.scratch_git import scratch_repo as make_repo

# A test-only plugin that replaces ``numpy`` under its own name; the second
# commit makes cumsum spin 200 us more per call (the kernel takes a few us).
PLUGIN = """
import time

from backends.base import Built
from backends.numpy_backend import NumpyBackend

DELAY_S = {delay}


class Plug(NumpyBackend):
    name = "numpy"
    form_variants = {{}}  # its delay wraps ``build``: the idioms only

    def build(self, form, x, precision):
        built = super().build(form, x, precision)
        delay = DELAY_S if form == "cumsum" else 0.0

        def fn():
            out = built.fn()
            end = time.perf_counter() + delay
            while time.perf_counter() < end:
                pass
            return out

        return Built(fn, built.compile_s)
"""


@pytest.fixture
def scratch_repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", "abplug", [PLUGIN.format(delay="0.0"), PLUGIN.format(delay="2e-4")])


@pytest.mark.slow
def test_ab_catches_a_slowdown_between_two_commits(
    scratch_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CAUSAL_BENCH_BACKENDS", "abplug:Plug")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    out = tmp_path / "ab"
    argv = ["ab", "HEAD~1", "HEAD", "--repo", str(scratch_repo), "--out", str(out), "--quiet"]
    # The plugin's numpy runs the idiom only (this process's numpy offers cumsum[staged]).
    argv += ["--backends", "numpy", "--forms", "cumsum", "--variants", "none", "--sizes", "1x8x2", "--rounds", "2"]
    argv += ["--budget", "0.05", "--min-samples", "5", "--warmup", "0.01", "--config", str(scratch_repo / "x.toml")]
    assert main(argv) == 2  # a named config that does not exist
    code = main(argv[:-2])
    printed = capsys.readouterr().out
    assert "numpy:cumsum:1x8x2" in printed
    if "1 cases inconclusive" in printed:  # a busy machine: contended rounds are not judged, and said so
        assert code == 0
    else:
        assert code == 1 and "### Regressions (1)" in printed

    commits = {"base": git(scratch_repo, "rev-parse", "HEAD~1"), "head": git(scratch_repo, "rev-parse", "HEAD")}
    medians = {}
    for side in ("base", "head"):
        meta, rows = load_run(out / side)
        assert meta["git_commit"] == commits[side]  # each side ran its own checkout
        assert meta["ab"]["side"] == side and len(meta["ab"]["runs"]) == 2
        (r,) = rows
        assert r.status == "ok" and r.stop_reason == "pooled from 2 rounds"
        assert r.n_samples == len(r.samples_s) >= 2 * 3
        medians[side] = r.median_s
    assert medians["head"] - medians["base"] > 150e-6  # the 200 us spin, less noise
    (case,) = json.loads((out / "compare.json").read_text())["cases"]
    # On a busy machine the rounds are flagged contended and the gate refuses to judge.
    assert case["verdict"] == "slower" or ("contention" in case["note"] and case["verdict"] == "inconclusive")
    assert case["ci_low"] > 2
    # The worktrees are gone again.
    assert len(git(scratch_repo, "worktree", "list").splitlines()) == 1


def test_ab_bad_revision_is_a_usage_error(scratch_repo: Path, tmp_path: Path, capsys) -> None:
    argv = ["ab", "HEAD~1", "no-such-branch", "--repo", str(scratch_repo), "--out", str(tmp_path / "o")]
    assert main([*argv, "--backends", "numpy", "--forms", "cumsum", "--sizes", "1x8x2"]) == 2
    assert "'no-such-branch' is not a commit" in capsys.readouterr().err
    assert len(git(scratch_repo, "worktree", "list").splitlines()) == 1


def _row(samples: list[float], status: str = "ok") -> Row:
    return Row(Case("numpy", "cumsum", 1, 8, 2, "float32", "ieee", "normal"), status=status, samples_s=samples)


def test_interleave_alternates_abba(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []

    def fake_run_side(side: ab.Side, flags: list[str], out: Path, timeout_s: float) -> tuple[dict[str, str], list[Row]]:
        calls.append((side.name, out.name))
        return {"run_id": f"{side.name}-{len(calls)}"}, [_row([float(len(calls))])]

    monkeypatch.setattr(ab, "run_side", fake_run_side)
    monkeypatch.setattr(ab, "supported_flags", lambda side, flags: (["--budget", "1"], []))
    sides = (ab.Side("base", tmp_path), ab.Side("head", tmp_path))
    base, head = ab.interleave(sides, [["g0"], ["g1"]], [], 2, tmp_path, lockstep=False)
    assert [c[0] for c in calls] == ["base", "head", "head", "base", "head", "base", "base", "head"]
    assert base.design == head.design == "ABBA"
    assert len(base.run_ids) == len(head.run_ids) == 4


def test_counted_rounds_run_both_sides_at_once_timed_ones_never(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone: list[str] = []
    together: list[list[str]] = []

    def fake_run_side(side: ab.Side, flags: list[str], out: Path, timeout_s: float) -> tuple[dict[str, str], list[Row]]:
        alone.append(side.name)
        return {"run_id": side.name}, [_row([1.0])]

    def fake_together(
        runs: list[tuple[ab.Side, list[str], Path]], timeout_s: float
    ) -> list[tuple[dict[str, str], list[Row]]]:
        together.append([side.name for side, _, _ in runs])
        return [({"run_id": side.name}, [_row([1.0])]) for side, _, _ in runs]

    monkeypatch.setattr(ab, "run_side", fake_run_side)
    monkeypatch.setattr(ab, "run_sides_together", fake_together)
    monkeypatch.setattr(ab, "supported_flags", lambda side, flags: ([], []))
    sides = (ab.Side("base", tmp_path), ab.Side("head", tmp_path))
    base, head = ab.interleave(sides, [["g0"], ["g1"]], [("--metric", "instructions")], 1, tmp_path)
    assert alone == [] and together == [["base", "head"], ["head", "base"]]
    assert len(base.run_ids) == len(head.run_ids) == 2
    ab.interleave(sides, [["g0"]], [("--budget", "0.2")], 2, tmp_path)
    assert alone == ["base", "head", "head", "base"] and len(together) == 2


def test_run_sides_together_loads_each_side_and_names_a_failed_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake(jobs, timeout):  # the head's run fails; the base's wrote nothing loadable either
        return [subprocess.CompletedProcess(j[0], code, "", "boom\n") for j, code in zip(jobs, (0, 2), strict=True)]

    monkeypatch.setattr(procgroup, "run_together", fake)
    sides = [(ab.Side("base", tmp_path), ["--x"], tmp_path / "b"), (ab.Side("head", tmp_path), ["--x"], tmp_path / "h")]
    with pytest.raises(worktrees.ABError, match="base"):
        ab.run_sides_together(sides, 10)
    monkeypatch.setattr(ab, "load_run", lambda out: ({"run_id": out.name}, []))
    with pytest.raises(worktrees.ABError, match=r"head .*failed: boom"):
        ab.run_sides_together(sides, 10)


def test_ab_with_a_missing_repo_or_a_bad_revision_exits_2_and_writes_nothing(tmp_path, capsys) -> None:
    out = tmp_path / "ab"
    assert main(["ab", "HEAD~1", "HEAD", "--repo", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --repo {tmp_path / 'nowhere'} is not a folder\n"
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    assert main(["ab", "no-such-rev", "HEAD", "--repo", str(repo), "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert not out.exists()


@pytest.mark.parametrize(
    "case",
    [
        Case("numpy", "cumsum", 2, 8, 2),
        Case("numpy", "cumsum", 2, 8, 2, variant="staged"),
        Case("numba", "loop", 2, 8, 2, variant="parallel"),
        Case("torch", "matrix", 2, 8, 2, dtype="float64", input="offset"),
        Case("torch", "attention", 2, 8, 2, kernel="math"),
        Case("torch", "attention", 2, 8, 2),
    ],
)
def test_case_flags_select_exactly_the_case(case: Case) -> None:
    from suite.cli import build_parser
    from suite.cli._args import spec_from

    args = build_parser().parse_args(["run", *ab.case_flags(case)])
    assert spec_from(args).cases() == [case]


def test_isolation_flags_reach_the_rounds_only_when_not_the_default() -> None:
    def flags(*extra: str) -> list[ab.Flag]:
        return ab.run_flags(build_parser().parse_args(["ab", "HEAD~1", "HEAD", *extra]))

    # A revision older than the flags must still run: the defaults are not written out.
    assert not any(name in ("--worker-cores", "--isolation") for name, _ in flags())
    chosen = flags("--worker-cores", "1", "--isolation", "quiet,pin")
    assert ("--worker-cores", "1") in chosen and ("--isolation", "quiet,pin") in chosen
    assert ("--isolation", "none") in flags("--isolation", "none")


def test_write_side_copies_each_rounds_callgrind_file(tmp_path: Path) -> None:
    """A round's file lives in its temporary folder; the side's folder gets a copy, named relative to it."""
    counted = Case("numpy", "cumsum", 1, 8, 2, metric="instructions")
    round_dir = tmp_path / "work" / "group0000-round0"
    (round_dir / "counts").mkdir(parents=True)
    (round_dir / "counts" / "c.callgrind").write_text("events: Ir\ntotals: 5\n")
    side = ab.SideResult(ab.Side("head", tmp_path))
    side.add({"run_id": "r"}, [Row(counted, status="ok", instructions=5.0, counts="counts/c.callgrind")], round_dir)
    side.add({"run_id": "s"}, [Row(Case("numpy", "cumsum", 1, 16, 2, metric="instructions"), counts="counts/gone")])
    meta, rows = side.merged({})
    written = ab.write_side(tmp_path / "out" / "head", meta, rows)
    stored = {r.T: r for r in load_run(tmp_path / "out" / "head")[1]}
    assert {r.T: r.counts for r in written} == {r.T: r.counts for r in stored.values()}
    assert stored[8].counts == "counts/c.callgrind"
    assert (tmp_path / "out" / "head" / "counts" / "c.callgrind").read_text() == "events: Ir\ntotals: 5\n"
    assert stored[16].counts == "counts/gone"  # added without its folder: left as it was


def test_interrupted_ab_keeps_the_cases_both_sides_finished(
    scratch_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    calls: list[str] = []

    def fake_run_side(side: ab.Side, flags: list[str], out: Path, timeout_s: float) -> tuple[dict[str, str], list[Row]]:
        calls.append(side.name)
        if len(calls) == 5:  # the second case's first round: Ctrl-C (or SIGTERM) lands here
            raise KeyboardInterrupt
        B, T, C = (int(n) for n in flags[flags.index("--sizes") + 1].split("x"))
        row = Row(Case("numpy", "cumsum", B, T, C), status="ok", samples_s=[1e-3] * 5, rounds=1)
        return {"run_id": f"{side.name}-{len(calls)}"}, [row]

    monkeypatch.setattr(ab, "run_side", fake_run_side)
    monkeypatch.setattr(ab, "supported_flags", lambda side, flags: ([], []))
    out = tmp_path / "ab"
    argv = ["ab", "HEAD~1", "HEAD", "--repo", str(scratch_repo), "--out", str(out), "--quiet"]
    argv += ["--backends", "numpy", "--forms", "cumsum", "--variants", "none", "--sizes", "1x8x2,1x16x2"]
    assert main([*argv, "--rounds", "2"]) == 130
    err = capsys.readouterr().err.splitlines()
    assert (
        err[-1] == f"interrupted: 1 of 2 cases measured on both sides kept in {out}/base and {out}/head; no comparison"
    )
    for side in ("base", "head"):
        meta, rows = load_run(out / side)
        assert meta["interrupted"] is True and [r.T for r in rows] == [8] and rows[0].rounds == 2
    assert not (out / "compare.md").exists()
    assert len(git(scratch_repo, "worktree", "list").splitlines()) == 1  # the worktrees are gone all the same


def test_progress_shows_a_counted_round_as_instructions() -> None:
    counted = Row(Case("numpy", "cumsum", 1, 8, 2, metric="instructions"), status="ok", instructions=12345.0)
    timed = Row(Case("numpy", "cumsum", 1, 8, 2), status="ok", median_s=1e-3)
    assert ab._brief(counted) == "12,345 instr" and ab._brief(timed) == "1 ms"
