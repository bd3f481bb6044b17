"""Two revisions side by side: git worktrees of commits in a temporary folder (``ab``, ``gate``, ``bisect``).

``suite ab`` and ``suite gate`` check out base and head, ``suite bisect`` each commit it
probes, as detached worktrees of the user's repository (:func:`worktrees`), removed on any
way out; a revision is resolved to its commit first (:func:`resolve`), so a typo is one
line before anything runs. Every failure here, and a side's failed run in
``suite.track.ab``, is an :class:`ABError`, which the commands turn into one line and
exit 2.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path


class ABError(Exception):
    """A revision does not resolve, a worktree cannot be made, or a side's run failed."""


def git(repo: Path, *args: str) -> str:
    """``git ARGS`` in ``repo``, its output stripped; ABError with git's own message when it fails."""
    if not repo.is_dir():
        raise ABError(f"--repo {repo} is not a folder")
    try:
        done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as e:
        raise ABError(f"git {' '.join(args)} failed: {e}") from None
    if done.returncode != 0:
        raise ABError(f"git {' '.join(args)}: {done.stderr.strip() or f'exit status {done.returncode}'}")
    return done.stdout.strip()


def resolve(repo: Path, rev: str) -> str:
    """The full commit a revision names; ABError when it names none."""
    if rev.startswith("-"):
        raise ABError(f"bad revision {rev!r}")
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except ABError:
        raise ABError(f"{rev!r} is not a commit in {repo}") from None


@contextlib.contextmanager
def worktrees(repo: Path, revs: Mapping[str, str]) -> Iterator[dict[str, tuple[Path, str]]]:
    """Detached worktrees of ``revs`` (name -> revision) in a temporary folder.

    Yields name -> (folder, commit). The worktrees are removed on exit.
    """
    repo = Path(git(repo, "rev-parse", "--show-toplevel"))
    commits = {name: resolve(repo, rev) for name, rev in revs.items()}
    tmp = Path(tempfile.mkdtemp(prefix="causal-bench-ab-"))
    added: list[Path] = []
    try:
        out: dict[str, tuple[Path, str]] = {}
        for name, commit in commits.items():
            path = tmp / name
            git(repo, "worktree", "add", "--detach", "--quiet", str(path), commit)
            added.append(path)
            out[name] = (path, commit)
        yield out
    finally:
        for path in added:
            with contextlib.suppress(ABError):
                git(repo, "worktree", "remove", "--force", str(path))
        shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(ABError):
            git(repo, "worktree", "prune")
