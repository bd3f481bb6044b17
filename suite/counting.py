"""Counting instead of timing: a case's calls run under callgrind, counted only around the calls.

How (the house's model is iai-callgrind, Valgrind.jl and pytest-codspeed's valgrind
instrument): the worker runs under ``valgrind --tool=callgrind --instr-atstart=no``, so
interpreter start-up and imports run uninstrumented (torch starts in 14 s instead of 33).
A four-function C hook built against valgrind's ``callgrind.h`` and loaded with ctypes
turns instrumentation on, makes one warm-up call (the simulated caches warm up), zeroes
the counters, makes ``COUNTED_CALLS`` calls, turns instrumentation off and dumps the
counters under the case's name. Toggling from outside (``callgrind_control``) counted
nothing useful (issue 21); the hook acts inside the process, exactly at the calls.

What makes two runners count the same: the simulated caches are pinned (``CACHES``), every
library's CPU dispatch is pinned to x86-64-v3 (AVX2; valgrind 3.19 offers nothing above
it), one thread everywhere and ``PYTHONHASHSEED=0`` (``counting_env``). The worker reads
back the dispatch each library chose (``dispatch_levels``); a counted row's machine is a
fingerprint of those and of the simulated machine, not of the host.

The hook is compiled at first use with ``gcc -shared -fPIC`` into the user's cache folder
(``backends._probes.cache_dir``), keyed by valgrind's header version and the source. Why
and the figures: results/tuning/counting.md.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from backends._probes import cache_dir

#: The counted metric's name (``Case.metric``).
COUNTED = "instructions"

#: Calls counted per case after one instrumented warm-up call: per-call figures are totals / this.
COUNTED_CALLS = 10
#: Uninstrumented calls before instrumentation starts (lazy allocation, first-call paths).
WARMUP_CALLS = 2
#: How much slower a process runs under callgrind with cache simulation than natively
#: (50x is callgrind's documented range's upper end for this work); the per-case
#: timeout and the cost guard's budget are multiplied by it.
SLOWDOWN = 50.0

#: The simulated caches: size, associativity, line size (bytes). Pinned so that every
#: runner simulates one machine: 32 KiB 8-way L1s, an 8 MiB 16-way last level.
CACHES: dict[str, str] = {"I1": "32768,8,64", "D1": "32768,8,64", "LL": "8388608,16,64"}
#: The dispatch level every library is pinned to (``counting_env``).
DISPATCH_LEVEL = "x86-64-v3"
#: NumPy's dispatch targets above x86-64-v3, disabled by name (NumPy 2.x spellings).
NUMPY_ABOVE_V3 = ("X86_V4", "AVX512F", "AVX512CD", "AVX512_SKX", "AVX512_CLX", "AVX512_CNL", "AVX512_ICL", "AVX512_SPR")

MISSING_VALGRIND = "valgrind not found on PATH: counted runs need it (apt-get install valgrind)"
HEADER = Path("/usr/include/valgrind/callgrind.h")

HOOK_SOURCE = """\
#include <valgrind/callgrind.h>
/* causal-bench's callgrind hook (suite/counting.py): counting only around the calls. */
void cb_start(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; }
void cb_zero(void) { CALLGRIND_ZERO_STATS; }
void cb_stop_dump(const char *name) { CALLGRIND_STOP_INSTRUMENTATION; CALLGRIND_DUMP_STATS_AT(name); }
int cb_running(void) { return RUNNING_ON_VALGRIND; }
"""


class CountingError(Exception):
    """The hook cannot be built or loaded, or the process is not under valgrind."""


def valgrind() -> str | None:
    """valgrind's path, or None when it is not on PATH."""
    return shutil.which("valgrind")


def header_version(header: Path = HEADER) -> str:
    """valgrind's version as its headers say (``3.19``); CountingError when they are missing."""
    main = header.with_name("valgrind.h")
    try:
        text = main.read_text(encoding="utf-8", errors="replace")
    except OSError:
        raise CountingError(f"{main} not found: install valgrind's headers (apt-get install valgrind)") from None
    found = dict(re.findall(r"#define\s+__VALGRIND_(MAJOR|MINOR)__\s+(\d+)", text))
    return f"{found.get('MAJOR', '?')}.{found.get('MINOR', '?')}"


def hook_library() -> Path:
    """The compiled hook, built into the cache folder on first use; CountingError if it cannot be."""
    digest = hashlib.sha256(HOOK_SOURCE.encode()).hexdigest()[:10]
    lib = cache_dir() / f"callgrind-hook-{header_version()}-{digest}.so"
    if lib.exists():
        return lib
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise CountingError("no C compiler (gcc) on PATH to build the callgrind hook: apt-get install gcc")
    lib.parent.mkdir(parents=True, exist_ok=True)
    src = lib.with_name(f".{lib.stem}.{os.getpid()}.c")
    tmp = lib.with_name(f".{lib.name}.{os.getpid()}.tmp")
    try:
        src.write_text(HOOK_SOURCE, encoding="utf-8")
        done = subprocess.run(
            [gcc, "-shared", "-fPIC", "-O2", "-o", str(tmp), str(src)], capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["?"])[-1]
            raise CountingError(f"building the callgrind hook failed: {tail}")
        os.replace(tmp, lib)  # atomic: two workers building at once both end with a whole file
    finally:
        for leftover in (src, tmp):
            with contextlib.suppress(OSError):
                leftover.unlink()
    return lib


def counting_env(base: Mapping[str, str]) -> dict[str, str]:
    """``base`` with one thread everywhere, a fixed hash seed and every library's dispatch pinned."""
    env = dict(base)
    env.update(
        PYTHONHASHSEED="0",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        NUMBA_NUM_THREADS="1",
        # The dispatch level: OpenBLAS's kernels, MKL's, ATen's, NumPy's, XLA's, Numba's target.
        OPENBLAS_CORETYPE="Haswell",
        MKL_ENABLE_INSTRUCTIONS="AVX2",
        ATEN_CPU_CAPABILITY="avx2",
        NPY_DISABLE_CPU_FEATURES=" ".join(NUMPY_ABOVE_V3),
        NUMBA_CPU_NAME="haswell",
        # Inductor's C++ is built by g++ outside valgrind: -march=native would follow the host
        # (AVX-512 code valgrind 3.19 cannot run); its vector ISA follows ATEN_CPU_CAPABILITY.
        TORCHINDUCTOR_CPP_MARCH="haswell",
        # One thread here too: without it Inductor loads even cached kernels on a thread pool.
        TORCHINDUCTOR_COMPILE_THREADS="1",
        XLA_FLAGS=" ".join(
            filter(None, (base.get("XLA_FLAGS", ""), "--xla_cpu_max_isa=AVX2", "--xla_cpu_multi_thread_eigen=false"))
        ),
    )
    env.pop("OPENBLAS_L2_SIZE", None)  # a host's own cache hint would change OpenBLAS's blocking
    return env


def valgrind_command(out_file: Path, argv: list[str]) -> list[str]:
    """The command that runs ``argv`` under callgrind, instrumentation off until the hook turns it on."""
    return [
        valgrind() or "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--cache-sim=yes",
        *(f"--{level}={spec}" for level, spec in CACHES.items()),
        f"--callgrind-out-file={out_file}",
        "--quiet",
        *argv,
    ]


def dump_file(out_file: Path) -> Path:
    """The file holding the named dump: callgrind numbers dumps taken by a client request ``.1``, ``.2``..."""
    return out_file.with_name(f"{out_file.name}.1")


class Hook:
    """The compiled hook, loaded into this process (which must run under callgrind)."""

    def __init__(self) -> None:
        try:
            self.lib = ctypes.CDLL(str(hook_library()))
        except OSError as e:
            raise CountingError(f"cannot load the callgrind hook: {e}") from None
        self.lib.cb_stop_dump.argtypes = [ctypes.c_char_p]
        if not self.lib.cb_running():
            raise CountingError("not running under valgrind: counted cases run in suite.count_worker")

    def count(self, fn: Callable[[], Any], sync: Callable[[Any], None], name: str, calls: int = COUNTED_CALLS) -> None:
        """Count ``calls`` calls of ``fn`` (each waited for) into a dump named ``name``."""
        for _ in range(WARMUP_CALLS):
            sync(fn())
        self.lib.cb_start()
        sync(fn())  # instrumented warm-up: the simulated caches hold what a steady call finds
        self.lib.cb_zero()
        for _ in range(calls):
            sync(fn())
        self.lib.cb_stop_dump(name.encode())


def dispatch_levels() -> dict[str, str]:
    """The dispatch each library chose in this process, as read back from it (for the fingerprint)."""
    levels: dict[str, str] = {}
    with contextlib.suppress(Exception):
        from numpy._core._multiarray_umath import __cpu_features__  # type: ignore[import-not-found]

        on = [k for k, v in __cpu_features__.items() if v and k.startswith(("X86_V", "AVX512", "AVX2", "SSE4"))]
        levels["numpy"] = on[-1] if on else "baseline"
    with contextlib.suppress(Exception):
        from threadpoolctl import threadpool_info

        cores = sorted(
            {str(p.get("architecture", "?")) for p in threadpool_info() if p.get("internal_api") == "openblas"}
        )
        if cores:
            levels["openblas"] = ",".join(cores)
    if "torch" in sys.modules:
        with contextlib.suppress(Exception):
            levels["torch"] = str(sys.modules["torch"].backends.cpu.get_cpu_capability())
    return levels


def simulated_machine(levels: Mapping[str, str], version: str) -> str:
    """A counted row's machine: the simulated caches, valgrind's version and the dispatch read back."""
    text = " ".join([f"valgrind-{version}", *(f"{k}={v}" for k, v in CACHES.items())])
    text += " " + " ".join(f"{k}:{v}" for k, v in sorted(levels.items()))
    return "sim-" + hashlib.sha256(text.encode()).hexdigest()[:12]
