"""Bisect: a scratch history with one commit that slows a case, and the bad inputs it refuses."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from suite.cli import main
from suite.track.bisect import Commit, Probe, search
from tests.track.scratch_git import git

ROOT = Path(__file__).resolve().parents[2]

# The plugin every commit of the scratch history runs: the test-only SlowedNumpy
# adapter (tests/fake_backends.py) under the name ``numpy``; the slowing commit
# sets its CAUSAL_BENCH_SLOWDOWN to 2.0 (every call does three times the work).
PLUGIN = """
import os
{slow}
from tests.fake_backends import SlowedNumpy as Plug
"""
SLOW = 'os.environ["CAUSAL_BENCH_SLOWDOWN"] = "2.0"'
CASE = "numpy:cumsum:4x1024x256"


def commit(repo: Path, message: str, plugin: str | None = None, note: str | None = None) -> str:
    if plugin is not None:
        (repo / "slowplug.py").write_text(plugin)
    if note is not None:
        (repo / "NOTES").write_text(note)
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def history(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """good -> noop -> broken (cannot import) -> fixed -> slow -> noop (BAD)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("backends", "suite"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "__init__.py", repo / "tests" / "__init__.py")
    shutil.copy(ROOT / "tests" / "fake_backends.py", repo / "tests" / "fake_backends.py")
    shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    git(repo, "init", "--quiet")
    shas = {"good": commit(repo, "good", PLUGIN.format(slow=""), "0")}
    shas["noop"] = commit(repo, "noop", note="1")
    shas["broken"] = commit(repo, "broken", "raise ImportError('half-finished refactor')\n")
    shas["fixed"] = commit(repo, "fixed", PLUGIN.format(slow=""))
    shas["slow"] = commit(repo, "slow", PLUGIN.format(slow=SLOW))
    shas["bad"] = commit(repo, "noop again", note="2")
    return repo, shas


@pytest.mark.slow
def test_bisect_finds_the_slowing_commit_and_skips_the_broken_one(
    history: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo, shas = history
    monkeypatch.setenv("CAUSAL_BENCH_BACKENDS", "slowplug:Plug")
    monkeypatch.delenv("CAUSAL_BENCH_SLOWDOWN", raising=False)
    argv = ["bisect", shas["good"], shas["bad"], "--case", CASE, "--repo", str(repo), "--rounds", "2"]
    argv += ["--budget", "0.1", "--min-samples", "8", "--warmup", "0.01"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"first slower commit: {shas['slow'][:10]} slow;"), captured.err
    assert "x GOOD (95% CI" in captured.out
    # BAD first, then the middle (broken: skipped, said so), its neighbour, the slow one: 4 probes for 5 commits.
    assert "(4 probes)" in captured.out
    assert f"{shas['broken'][:10]} broken: skipped" in captured.err
    assert f"{shas['fixed'][:10]} fixed: not slower" in captured.err
    assert len(git(repo, "worktree", "list").splitlines()) == 1  # worktrees removed


def _commits(n: int) -> list[Commit]:
    return [Commit(f"{i:040d}", f"c{i}") for i in range(n)]


@pytest.mark.parametrize("first_slow", [0, 1, 5, 9])
def test_search_finds_any_first_slow_commit_in_about_log2_probes(first_slow: int) -> None:
    commits = _commits(10)
    seen: list[int] = []

    def measure(c: Commit) -> Probe:
        i = int(c.sha)
        seen.append(i)
        return Probe(c, i >= first_slow, ratio=2.0 if i >= first_slow else 1.0, ci_low=1.9, ci_high=2.1)

    result = search(commits, measure)
    assert result.first_slow is not None and result.first_slow.commit == commits[first_slow]
    assert len(seen) <= 1 + 4  # BAD, then ceil(log2(10)) halvings
    assert len(set(seen)) == len(seen)  # no commit probed twice


def test_search_reports_skipped_commits_it_could_not_rule_out() -> None:
    commits = _commits(4)

    def measure(c: Commit) -> Probe:
        i = int(c.sha)
        if i == 2:
            return Probe(c, None, note="does not build")
        return Probe(c, i >= 2, ratio=1.0)

    result = search(commits, measure)
    assert result.first_slow is not None and result.first_slow.commit == commits[3]
    assert result.ambiguous == [commits[2]]
    assert "or one of the skipped" in result.summary()


def test_search_stops_at_once_when_bad_is_not_slower() -> None:
    calls: list[Commit] = []

    def measure(c: Commit) -> Probe:
        calls.append(c)
        return Probe(c, False, ratio=1.0, ci_low=0.98, ci_high=1.02)

    result = search(_commits(8), measure)
    assert result.first_slow is None and len(calls) == 1
    assert result.summary().startswith("BAD is not slower than GOOD")


@pytest.fixture
def small_repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    repo = tmp_path / "small"
    repo.mkdir()
    git(repo, "init", "--quiet")
    shas = {"a": commit(repo, "a", note="a"), "b": commit(repo, "b", note="b")}
    git(repo, "checkout", "--quiet", "-b", "side", shas["a"])
    shas["side"] = commit(repo, "side", note="side")
    git(repo, "checkout", "--quiet", "-")
    return repo, shas


@pytest.mark.parametrize(
    ("good", "bad", "case", "dirty", "message"),
    [
        ("a", "no-such-rev", CASE, False, "'no-such-rev' is not a commit"),
        ("a", "b", "numpy:nosuchform:2x256x64", False, "matches no case"),
        ("a", "b", "numpy:cumsum:2x256", False, "matches no case"),
        ("a", "b", "numpy:cumsum:2x256x64:float128", False, "matches no case"),
        ("a", "b", CASE, True, "uncommitted changes"),
        ("b", "a", CASE, False, "is not an ancestor of BAD"),
        ("side", "b", CASE, False, "is not an ancestor of BAD"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_and_touches_nothing(
    small_repo: tuple[Path, dict[str, str]],
    capsys: pytest.CaptureFixture[str],
    good: str,
    bad: str,
    case: str,
    dirty: bool,
    message: str,
) -> None:
    repo, shas = small_repo
    if dirty:
        (repo / "NOTES").write_text("edited")
    status = git(repo, "status", "--porcelain")
    argv = ["bisect", shas.get(good, good), shas.get(bad, bad), "--case", case, "--repo", str(repo)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert git(repo, "status", "--porcelain") == status
    assert len(git(repo, "worktree", "list").splitlines()) == 1
