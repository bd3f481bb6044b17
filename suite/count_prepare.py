"""A counted case's compile, run natively before counting: the counted worker loads it from a cache.

torch.compile counted with its compile under valgrind gives counts that depend on how the
graph came to be: a graph Inductor compiled in the process and one it served from its
FX graph cache run different Python per call (216,558 against 208,735 instructions per
call for cumsum 2x8x4, 3.7%), and two cold compiles differ by 0.2%; two cached ones
agree within 0.005% (results/tuning/counting.md). So before the counted worker,
``prepare`` runs the same case natively (``python -m suite.count_worker`` without
valgrind, ``measure=False``: the guards, the build, the agreement check) with the same
pins and a shared Inductor cache; the counted worker then finds every graph in it, and
its compile is a cache load (11 s under valgrind instead of 26-50 s). Pre-runs take a lock
on the cache: two counted runs that compiled into a cold cache at once counted cumsum 2x8x4
0.06-0.14% apart, one after the other within 0.01%.

Backends not listed here compile in the counted worker (Numba: its compile is outside the
counted calls and counts agree exactly) or are not counted (``NOT_COUNTED``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from backends._probes import cache_dir
from suite.cases import Case, RunOptions
from suite.count_worker import write_job
from suite.results import Row

#: Backends whose compile runs natively before counting, and the cache their worker loads it from.
PRECOMPILED: frozenset[str] = frozenset({"torch-compile"})
#: Inductor's cache for counted runs, under the cache folder: natively compiled, loaded under valgrind.
INDUCTOR_CACHE = "counted-inductor"
#: The reason the counted worker's row carries when its graph came from the cache (torch_compile.py).
CACHE_NOTE = "graph served from the Inductor cache"


def precompile_env(backend: str) -> dict[str, str]:
    """What the native pre-run and the counted worker of ``backend`` share: the compile cache."""
    if backend not in PRECOMPILED:
        return {}
    return {"TORCHINDUCTOR_CACHE_DIR": str(cache_dir() / INDUCTOR_CACHE)}


def prepare(case: Case, options: RunOptions, env: dict[str, str], timeout: float) -> Row | None:
    """Run ``case`` natively once so its compiled code is cached; a row when it goes no further, else None.

    The native run's row stands for the counted one when it is not ``ok`` (a guard's skip,
    a mismatch, an error: the counted worker would end the same way, minutes later); a
    native run that fails or times out is an ``error`` row saying so.
    """
    native = dataclasses.replace(options, measure=False)
    with tempfile.TemporaryDirectory(prefix="causal-bench-precompile-") as tmp:
        job, result = Path(tmp, "job.pkl"), Path(tmp, "row.pkl")
        write_job(job, case, native)
        argv = [sys.executable, "-m", "suite.count_worker", str(job), str(result)]
        try:
            with cache_lock():
                done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return Row(case, status="error", device="cpu", reason=f"native pre-compile ran past {timeout:g} s")
        if not result.exists():
            tail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
            return Row(case, status="error", device="cpu", reason=f"native pre-compile failed: {tail}")
        _, row = pickle.loads(result.read_bytes())
    assert isinstance(row, Row)
    if row.status == "ok":
        return None
    row.reason = f"{row.reason} (native pre-compile, before counting)"
    return row


@contextlib.contextmanager
def cache_lock() -> Iterator[None]:
    """One native pre-run at a time on this machine's counted cache (released when the process ends)."""
    path = cache_dir() / f"{INDUCTOR_CACHE}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def check_cached(row: Row) -> None:
    """Turn a counted row of a precompiled backend whose worker compiled afresh into an ``error``.

    A graph compiled under valgrind runs other Python per call than a cached one, so its
    counts would not compare with the rest; the native pre-run exists to prevent that.
    """
    if row.backend in PRECOMPILED and row.status == "ok" and CACHE_NOTE not in row.reason:
        row.status = "error"
        row.reason = (
            "the counted worker compiled instead of loading the native pre-compile from the Inductor "
            f"cache ({cache_dir() / INDUCTOR_CACHE}): counts of a fresh compile differ from cached ones"
        )
