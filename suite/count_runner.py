"""The runner of counted cases (``--metric instructions``): each case in a fresh process under callgrind.

It keeps the runners' contract (``info``, ``run``, ``close``; ``suite.session.run_cases``
picks it for counted cases). Each case is one ``python -m suite.count_worker`` under
``suite.counting.valgrind_command``, with ``counting_env``'s pins; the worker runs the
ordinary case pipeline and leaves a named callgrind dump, which this side reads into the
row's per-call counts and keeps beside the results (``counts/<key>.callgrind``). The worker
runs in a process group of its own (``suite.procgroup.run``): a timeout, Ctrl-C or SIGTERM
stops it and waits for it, and it dies with this process if this one is killed outright.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from backends import REGISTRY, get_backend
from suite import procgroup
from suite.callgrind import CallgrindError, read_dump
from suite.cases import Case, RunOptions
from suite.count_prepare import check_cached, precompile_env, prepare
from suite.count_worker import write_job
from suite.counting import (
    COUNTED_CALLS,
    MISSING_VALGRIND,
    SLOWDOWN,
    CountingError,
    counting_env,
    dump_file,
    hook_library,
    startup_env,
    valgrind,
    valgrind_command,
)
from suite.profiling import trace_name
from suite.results import Row
from suite.runner import BackendInfo

#: Folder of the callgrind files, inside the results folder.
COUNTS_DIR = "counts"
#: Seconds a counted worker may take to start under valgrind before its case's own time
#: (torch imports in 14 s with instrumentation off; issue 21).
START_S = 120.0
#: Backends not counted, and why (results/tuning/counting.md, "Compiling backends"). Triton
#: is a GPU backend (on the CPU, its interpreter). JAX: XLA compiles fine under valgrind, but
#: its runtime counts differently run to run (glibc malloc in its buffer handling, the spin
#: of its Eigen pool's idle threads), and a native compile cannot be reused: JAX's cache key
#: holds the CPU, and valgrind's is not the host's. Numba is counted with its compile under
#: valgrind (outside the counted calls; counts agree exactly); torch.compile is compiled
#: natively first and loaded from Inductor's cache (``suite.count_prepare``).
NOT_COUNTED: dict[str, str] = {
    "triton": "a GPU backend (on the CPU it runs Triton's interpreter): counted runs are CPU only",
    "jax": (
        "not counted: XLA's runtime counts differently run to run (cumsum 2x8x4 counted 3 times: 54,002 "
        "to 54,937 instructions per call, 1.7%; 0.2-0.4% with its compile cached; the bar is 0.1%: "
        "results/tuning/counting.md)"
    ),
}


def preload(backend: str) -> list[str]:
    """The framework the worker imports first (``suite.count_worker``): the adapter's ``module``."""
    module = getattr(REGISTRY.get(backend), "module", "")
    return [module] if module and module != "numpy" else []


class CountingRunner:
    """Runs each counted case in its own process under callgrind; CPU only, one thread."""

    def __init__(self, options: RunOptions, on_note: Callable[[str], None] | None = None) -> None:
        self.options = dataclasses.replace(options, device="cpu", threads=1, ceilings=False, isolate=True)
        self.on_note = on_note
        self._infos: dict[str, BackendInfo] = {}
        self._hook_error: str | None = None
        self._hook_built = False

    def _prepare(self) -> str | None:
        """Why nothing can be counted here (no valgrind, no hook), or None; builds the hook once."""
        if valgrind() is None:
            return MISSING_VALGRIND
        if not self._hook_built:
            self._hook_built = True
            try:
                hook_library()
            except CountingError as e:
                self._hook_error = str(e)
        return self._hook_error

    def info(self, name: str) -> BackendInfo:
        if name not in self._infos:
            why = self._prepare() or NOT_COUNTED.get(name)
            if why is None and name in REGISTRY:
                adapter = get_backend(name, "cpu")
                avail = adapter.availability()
                why = None if avail.ok else avail.reason
            self._infos[name] = BackendInfo(name, why is None, why or "", device="cpu (callgrind)", threads=1)
        return self._infos[name]

    def run(self, case: Case) -> Row:
        start = time.perf_counter()
        timeout = self.options.case_timeout_s * SLOWDOWN + START_S
        # The worker's guards judge seconds under valgrind: its timeout is scaled alike.
        options = dataclasses.replace(self.options, case_timeout_s=self.options.case_timeout_s * SLOWDOWN)
        with tempfile.TemporaryDirectory(prefix="causal-bench-count-") as tmp:
            job, result, out = Path(tmp, "job.pkl"), Path(tmp, "row.pkl"), Path(tmp, "callgrind.out")
            argv = [sys.executable, "-m", "suite.count_worker", str(job), str(result), *preload(case.backend)]
            env = {**counting_env(os.environ), **precompile_env(case.backend)}
            first, later = startup_env(env)  # the rest is set in the worker after its first imports
            write_job(job, case, options, later)
            if precompile_env(case.backend):  # compiled natively first: the worker loads it (count_prepare)
                early = prepare(case, self.options, env, self.options.case_timeout_s + START_S)
                if early is not None:
                    early.elapsed_s = time.perf_counter() - start
                    return early
            try:
                # Its own process group, stopped and waited for on any way out (timeout, Ctrl-C,
                # SIGTERM): no valgrind worker outlives this runner (suite.procgroup).
                done = procgroup.run(valgrind_command(out, argv), env=first, timeout=timeout)
            except subprocess.TimeoutExpired:
                return Row(
                    case,
                    status="timeout",
                    device="cpu (callgrind)",
                    reason=f"ran past the counted timeout of {timeout:g} s (per-case timeout x {SLOWDOWN:g} "
                    f"+ {START_S:g} s to start); worker stopped",
                    elapsed_s=time.perf_counter() - start,
                )
            if not result.exists():
                tail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
                return Row(
                    case,
                    status="error",
                    device="cpu (callgrind)",
                    reason=f"counted worker failed: {tail}",
                    elapsed_s=time.perf_counter() - start,
                )
            _, row = pickle.loads(result.read_bytes())
            assert isinstance(row, Row)
            row.elapsed_s = time.perf_counter() - start
            check_cached(row)
            if row.status == "ok":
                self._add_counts(row, dump_file(out))
            return row

    def _add_counts(self, row: Row, dump: Path) -> None:
        """Per-call counts from the dump into ``row``; the dump kept under the results folder."""
        try:
            counted = read_dump(dump)
        except CallgrindError as e:
            row.status, row.reason = "error", str(e)
            return
        row.instructions = counted.instructions / COUNTED_CALLS
        row.l1_misses = counted.l1_misses / COUNTED_CALLS
        row.ll_misses = counted.ll_misses / COUNTED_CALLS
        row.est_cycles = counted.est_cycles / COUNTED_CALLS
        row.n_samples = COUNTED_CALLS
        if self.options.counts_dir:
            name = trace_name(row.key, ".callgrind")
            target = Path(self.options.counts_dir)
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(dump, target / name)
            row.counts = f"{COUNTS_DIR}/{name}"

    def close(self) -> None:
        self._infos.clear()
