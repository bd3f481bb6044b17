"""The counted worker: one case, in a process running under callgrind (``suite.count_runner`` starts it).

``python -m suite.count_worker JOB RESULT``: JOB is the pickled environment the worker sets after
its first imports (``suite.counting.startup_env``) and a pickled ``(Case, RunOptions)``;
the case goes through the one case pipeline (``suite.runner.run_case``: guards, build,
agreement check, then the counted calls through ``suite.counting.Hook``), and RESULT
receives the pickled ``(BackendInfo, Row)``. The row's machine is the simulated one.

Everything after the interpreter's start-up runs in a fresh thread (``in_fresh_thread``),
imports included: NumPy's and the frameworks' long-lived objects (their types, whose
addresses key identity-hashed caches such as NumPy's casting tables) are laid out in
a heap of their own, the same whatever the environment and the interpreter's start-up
allocated in the main heap. Hence the lazy imports below: only the standard library
and ``suite.counting`` (standard library alone) load before that thread starts.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from suite.counting import in_fresh_thread


def write_job(job: Path, case: Any, options: Any, later: Mapping[str, str] | None = None) -> None:
    """The JOB file for a worker of ``case``: ``later``, the environment it sets after its first imports."""
    job.write_bytes(pickle.dumps((dict(later or {}), pickle.dumps((case, options)))))


def main(job: Path, result: Path, preload: Sequence[str] = ("numpy",)) -> int:
    for module in preload:  # first in this thread's heap, before any of the harness's code
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    # The environment beyond what the worker started with (suite.counting.startup_env), after
    # the first imports and before the harness's: the plugins it names load with the harness.
    later, payload = pickle.loads(job.read_bytes())
    os.environ.update(later)
    from suite.counting import dispatch_levels, header_version, simulated_machine
    from suite.results import Row
    from suite.runner import BackendInfo, first_line, open_backend, run_case

    case, options = pickle.loads(payload)
    try:
        adapter, info = open_backend(case.backend, options)
    except Exception as e:
        info = BackendInfo(case.backend, False, f"failed to start: {first_line(e)}")
    if not info.available:
        row = Row(case, status="skipped", reason=info.reason)
    else:
        row = run_case(case, adapter, options, info.threads)
        row.device = f"{row.device} (callgrind)" if row.device else "cpu (callgrind)"
    row.machine = simulated_machine(dispatch_levels(), header_version())
    tmp = result.with_name(result.name + ".tmp")
    tmp.write_bytes(pickle.dumps((info, row)))
    tmp.replace(result)
    return 0


if __name__ == "__main__":
    sys.exit(in_fresh_thread(main, Path(sys.argv[1]), Path(sys.argv[2]), ("numpy", *sys.argv[3:])))
