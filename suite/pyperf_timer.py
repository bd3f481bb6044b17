"""pyperf as the selftest's fourth timer: ``python -m pyperf timeit`` in a subprocess, read back as JSON.

pyperf measures in worker processes it spawns itself (``pyperf.Runner`` owns argv
and the process tree), so the selftest does not call it in-process: it runs
``python -m pyperf timeit`` with a setup that builds the same kernel
(``suite.selftest.build_kernel``) on the same thread count, writes the result with
``-o``, and reads the median with ``pyperf.Benchmark.load``. The thread count is
pinned for pyperf's workers through the environment (``THREAD_VARS``, passed on
with ``--inherit-environ``, since pyperf strips the environment of its workers)
and again inside the setup. pyperf is the ``selftest`` extra, imported here only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

#: The variables that size every library's thread pool (OpenMP, OpenBLAS, MKL, BLIS, NumExpr).
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
#: pyperf's workers: processes, values per process, warm-ups per process (a few seconds a kernel).
PROCESSES, VALUES, WARMUPS = 4, 5, 1
#: Seconds a pyperf run of one kernel may take before it is given up.
TIMEOUT_S = 300.0


class PyperfUnavailable(Exception):
    """pyperf is not installed, or its run failed: the message says which and how to fix it."""


def pinned_env(threads: int) -> dict[str, str]:
    """This process's environment with every thread pool sized to ``threads`` and this checkout importable."""
    env = dict(os.environ)
    env.update(dict.fromkeys(THREAD_VARS, str(threads)))
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH", "")]))
    return env


def timeit_command(setup: str, stmt: str, out: Path) -> list[str]:
    """The ``python -m pyperf timeit`` command line for ``stmt`` after ``setup``, writing JSON to ``out``."""
    return [
        sys.executable,
        "-m",
        "pyperf",
        "timeit",
        "--quiet",
        f"--processes={PROCESSES}",
        f"--values={VALUES}",
        f"--warmups={WARMUPS}",
        f"--inherit-environ={','.join(('PYTHONPATH', *THREAD_VARS))}",
        "-o",
        str(out),
        "-s",
        setup,
        stmt,
    ]


def pyperf_median(setup: str, stmt: str, threads: int) -> float:
    """pyperf's median seconds per ``stmt``, measured in its own worker processes on ``threads`` threads."""
    try:
        import pyperf
    except ImportError:
        raise PyperfUnavailable(
            "the selftest's pyperf column needs pyperf: pip install 'causal-bench[selftest]'"
        ) from None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        done = subprocess.run(
            timeit_command(setup, stmt, out),
            env=pinned_env(threads),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0 or not out.exists():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise PyperfUnavailable(f"pyperf timeit failed (exit {done.returncode}): {last}")
        return float(pyperf.Benchmark.load(str(out)).median())
