"""The workflows to copy (examples/github-actions/) run: their suite steps, as written, in a scratch repository.

Each ``run:`` step that calls the suite (``python -m suite`` or a nox session) runs in
bash as GitHub runs it (``-eo pipefail``), in a scratch git repository of two commits
holding a copy of the suite, with the workflow's own ``env`` (small sizes given through
its variables) and every ``${{ }}`` expression of it resolved to a value of the scratch
repository. A ``nox -s NAME -- ARGS`` line runs the command the session wraps,
``python -m suite NAME ARGS``. Steps without the suite (installs, git push) are not run.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from suite.results import load_run
from suite.track.dashboard_page import PAGE_NAME
from tests.track.scratch_git import git

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "examples" / "github-actions"
#: What the test gives the workflows' variables: a sweep of seconds, not of an hour.
SMALL = {
    "SIZES": "4x8x16",
    "BACKENDS": "numpy",
    "ROUNDS": "2",
    "GATE_SIZES": "2x8x4",
    "GATE_BACKENDS": "numpy",
    "GATE_FORMS": "cumsum",
}
NOX = re.compile(r"^nox -s (\w+) -- (.*)$", re.M)


def nox_sessions() -> set[str]:
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    return {f.name for f in tree.body if isinstance(f, ast.FunctionDef) and f.decorator_list}


def workflow(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    return doc


def suite_steps(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(job, script) of every step that calls the suite, in order."""
    return [
        (job, step["run"])
        for job, spec in doc["jobs"].items()
        for step in spec.get("steps", [])
        if "run" in step and ("python -m suite" in step["run"] or "nox -s" in step["run"])
    ]


def environment(doc: dict[str, Any], expressions: dict[str, str]) -> dict[str, str]:
    """The workflow's env, the small values in, every expression resolved (an unknown one fails)."""
    env = {}
    for key, value in doc.get("env", {}).items():
        text = SMALL.get(key, str(value))
        for expression, resolved in expressions.items():
            text = text.replace(expression, resolved)
        assert "${{" not in text, f"{key}: no value for {text} in this test"
        env[key] = text
    return env


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A checkout: the suite in a git repository of two commits, ``origin/main`` at the first."""
    repo = tmp_path / "checkout"
    repo.mkdir()
    for name in ("backends", "suite"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    git(repo, "init", "--quiet")
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", "base")
    (repo / "NOTES.md").write_text("a second commit\n")
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", "head")
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD~1")
    return repo


def run_step(script: str, repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = NOX.sub(lambda m: f"python -m suite {m.group(1)} {m.group(2)}", script)
    assert "${{" not in script, "expressions belong in env:, not in run: scripts"
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    full = {**os.environ, **env, "PATH": path, "PYTHONPATH": str(repo), "GITHUB_STEP_SUMMARY": str(repo / "summary.md")}
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=repo,
        env=full,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_workflows_are_what_the_test_reads() -> None:
    names = sorted(p.name for p in WORKFLOWS.glob("*.yml"))
    assert names == ["nightly.yml", "pr-gate.yml"]
    for name in names:
        assert suite_steps(workflow(name)), f"{name} has no suite step"


@pytest.mark.slow
def test_nightly_records_two_commits_and_builds_the_dashboard(scratch: Path) -> None:
    doc = workflow("nightly.yml")
    steps = suite_steps(doc)
    assert [job for job, _ in steps] == ["sweep", "sweep"]
    commits = [git(scratch, "rev-parse", "HEAD~1"), git(scratch, "rev-parse", "HEAD")]
    (scratch / "history").mkdir()  # the history branch's checkout, on its first night
    for sha in commits:
        git(scratch, "checkout", "--quiet", sha)
        env = environment(doc, {"${{ github.sha }}": sha})
        for _, script in steps:
            done = run_step(script, scratch, env)
            assert done.returncode == 0, done.stderr
    runs = sorted((scratch / "history" / "runs").iterdir())
    assert [r.name[-7:] for r in runs] == [c[:7] for c in commits]
    for run, sha in zip(runs, commits, strict=True):
        meta, rows = load_run(run)
        assert meta["git_commit"] == sha
        assert {r.backend for r in rows} == {"numpy"} and {r.T for r in rows} == {8}
        assert {r.rounds for r in rows if r.status == "ok"} == {2}
    page = (scratch / "site" / PAGE_NAME).read_text()
    assert "Runs: 2." in page and commits[1][:12] in page
    assert (scratch / "site" / "history" / "history.md").exists()


@pytest.mark.slow
def test_pr_gate_runs_the_gate_against_the_base(scratch: Path) -> None:
    doc = workflow("pr-gate.yml")
    steps = suite_steps(doc)
    assert [script.strip() for _, script in steps] == [
        'nox -s gate -- "origin/$BASE_REF" HEAD --backends "$GATE_BACKENDS" --forms "$GATE_FORMS" --sizes "$GATE_SIZES"'
    ]
    assert "gate" in nox_sessions(), "noxfile.py has no gate session"
    env = environment(doc, {"${{ github.base_ref }}": "main"})
    done = run_step(steps[0][1], scratch, env)
    assert done.returncode == 0, done.stderr
    assert (scratch / "summary.md").read_text().strip()
