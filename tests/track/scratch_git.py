"""Git in a scratch repository, for the tests of the commands that read history (ab, bisect, gate)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` with a throwaway identity; its standard output, stripped."""
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()


def scratch_repo(repo: Path, plugin: str, versions: Sequence[str]) -> Path:
    """A git repository at ``repo`` holding this checkout's code and ``plugin.py``, one commit per version.

    ``versions`` are the plugin module's texts, oldest first: ``HEAD~1`` and ``HEAD`` of two
    versions differ in the plugin alone.
    """
    repo.mkdir()
    for name in ("backends", "suite"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    git(repo, "init", "--quiet")
    for i, text in enumerate(versions):
        (repo / f"{plugin}.py").write_text(text)
        git(repo, "add", "-A")
        git(repo, "commit", "--quiet", "-m", f"version {i}")
    return repo
