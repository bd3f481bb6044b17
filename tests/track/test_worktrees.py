"""Worktrees of two revisions for ab, gate and bisect: resolved first, removed on any way out."""

from __future__ import annotations

from pathlib import Path

import pytest

from suite.track.worktrees import ABError, git, resolve, worktrees
from tests.track.scratch_git import git as scratch


def two_commits(repo: Path) -> Path:
    repo.mkdir()
    scratch(repo, "init", "--quiet")
    for i in range(2):
        (repo / "f.txt").write_text(f"version {i}\n")
        scratch(repo, "add", "-A")
        scratch(repo, "commit", "--quiet", "-m", f"version {i}")
    return repo


def test_revisions_resolve_to_commits_and_bad_ones_are_one_line(tmp_path: Path) -> None:
    repo = two_commits(tmp_path / "repo")
    assert resolve(repo, "HEAD") == git(repo, "rev-parse", "HEAD") != resolve(repo, "HEAD~1")
    for bad, why in (("nope", "is not a commit"), ("--all", "bad revision")):
        with pytest.raises(ABError, match=why) as e:
            resolve(repo, bad)
        assert "\n" not in str(e.value)
    with pytest.raises(ABError, match="is not a folder"):
        git(tmp_path / "missing", "status")


def test_worktrees_hold_each_revision_and_are_gone_after_even_on_an_error(tmp_path: Path) -> None:
    repo = two_commits(tmp_path / "repo")
    seen: dict[str, tuple[Path, str]] = {}

    def look_then_fail() -> None:
        with worktrees(repo, {"base": "HEAD~1", "head": "HEAD"}) as trees:
            seen.update(trees)
            assert (trees["base"][0] / "f.txt").read_text() == "version 0\n"
            assert (trees["head"][0] / "f.txt").read_text() == "version 1\n"
            raise RuntimeError("a side failed")

    with pytest.raises(RuntimeError, match="a side failed"):
        look_then_fail()
    assert seen["base"][1] == resolve(repo, "HEAD~1") and seen["head"][1] == resolve(repo, "HEAD")
    assert not seen["base"][0].exists() and not seen["head"][0].exists()
    assert git(repo, "worktree", "list").count("\n") == 0  # the main checkout alone
