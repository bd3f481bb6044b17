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

What makes a count independent of what the process did before the calls (two checkouts
that differ in unused code, or a longer environment, moved NumPy ``loop`` by up to 1.1%
and ``cumsum[staged]`` by 3.6%; results/tuning/counting.md, "Across revisions"): the
worker runs in a fresh thread from its first import on (``suite.count_worker``), so the
frameworks' long-lived objects are laid out in a heap of their own; the counted case's
input is copied onto a page (``suite.placement.place`` at offset 0); glibc's mmap threshold is fixed
(``MMAP_THRESHOLD``); and ``Hook.count`` empties the cyclic collector's generations and
freezes what exists, pins pymalloc's pools (``pin_small_object_pools``) and makes the
calls in another fresh thread, whose glibc arena is new.

The hook is compiled at first use with ``gcc -shared -fPIC`` into the user's cache folder
(``backends._probes.cache_dir``), keyed by valgrind's header version and the source. Why
and the figures: results/tuning/counting.md.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

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

#: glibc's mmap threshold in the counted worker, fixed (``GLIBC_TUNABLES``): glibc's default,
#: 128 KiB, but a set threshold stays put, where the default one rises to the size of any
#: mmapped block freed, so a large array freed before the calls would move later
#: allocations from mmap to the heap.
MMAP_THRESHOLD = 128 * 1024
#: glibc's malloc in the counted worker (``GLIBC_TUNABLES``): the mmap threshold fixed, and no
#: per-thread cache. That cache keeps freed blocks whatever arena they came from, so a
#: thread that frees a block the main thread allocated hands it out again: the fresh
#: threads' heaps (``in_fresh_thread``) would then hold blocks placed by whatever the
#: process did at start-up (a longer environment moved them).
MALLOC_TUNABLES = (f"glibc.malloc.mmap_threshold={MMAP_THRESHOLD}", "glibc.malloc.tcache_count=0")
#: The GIL's switch interval while a fresh thread runs (``in_fresh_thread``): the waiting
#: thread never asks for the GIL, so no hand-over lands among the counted calls.
SWITCH_INTERVAL_S = 1000.0
#: CPython's small-object allocator (pymalloc, 3.10 and later): 16 KiB pools, a 48-byte
#: pool header, 16-byte size classes up to 512 bytes (``pin_small_object_pools``).
POOL_SIZE = 16 * 1024
POOL_HEADER = 48
SIZE_CLASSES = 32
#: Pools' worth of objects ``pin_small_object_pools`` allocates per size class, at most,
#: looking for an empty pool.
POOL_SEARCH = 8
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
    from backends._probes import cache_dir  # here: this module stays stdlib-only for the worker's first lines

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
    env["GLIBC_TUNABLES"] = ":".join(
        [*tunables_except(base.get("GLIBC_TUNABLES", ""), MALLOC_TUNABLES), *MALLOC_TUNABLES]
    )
    return env


#: The variables a counted worker starts with (``startup_env``): the interpreter's, the loader's,
#: valgrind's and those the frameworks read when they are imported (all of ``counting_env``'s
#: pins among them). The rest of the environment is set by the worker after its first imports.
STARTUP_PREFIXES = (
    "PYTHON", "LD_", "VALGRIND", "GLIBC_", "LC_", "OMP_", "KMP_", "MKL_", "OPENBLAS_", "NPY_",
    "ATEN_", "TORCH", "JAX_", "XLA_", "NUMBA_", "CUDA", "TRITON",
)  # fmt: skip
STARTUP_NAMES = frozenset({"LANG", "TMPDIR"})


def startup_env(env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """``env`` split in two: what the counted worker starts with, and what it sets after its first imports.

    The environment is copied onto the heap before anything else (``os.environ``), so its size
    moves where the names that NumPy and the frameworks intern at import land. CPython's type
    attribute cache hashes a name by its address: in one layout in two, two lookups of a call
    share a slot and miss on every call (NumPy ``cumsum`` on 2x8x4 counted 37,228 or 37,715
    instructions a call, ``find_name_in_mro`` and ``_Py_dict_lookup`` the difference, as one
    unrelated variable came or went; results/tuning/counting.md). Started with the variables
    that decide how the libraries load, which a job does not change, and given the rest
    (``CAUSAL_BENCH_*``, a CI's own, the shell's) only after its first imports, the worker lays
    those names out the same whatever else the environment holds.
    """
    first = {k: v for k, v in env.items() if k in STARTUP_NAMES or k.startswith(STARTUP_PREFIXES)}
    return first, {k: v for k, v in env.items() if k not in first}


def tunables_except(tunables: str, ours: Sequence[str]) -> list[str]:
    """``GLIBC_TUNABLES``'s entries but those that ``ours`` sets."""
    names = {t.split("=", 1)[0] for t in ours}
    return [t for t in tunables.split(":") if t and t.split("=", 1)[0] not in names]


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
        """Count ``calls`` calls of ``fn`` (each waited for) into a dump named ``name``.

        Every allocator the calls use starts from a state that does not depend on what the
        process did before (results/tuning/counting.md, "Across revisions"): the cyclic
        collector emptied and everything older frozen; pymalloc's pools pinned
        (``pin_small_object_pools``); the warm-up and counted calls in a fresh thread
        (``in_fresh_thread``), so glibc serves them from an arena of their own.
        """
        # The cyclic collector from a fixed point: every generation empty, what exists so far
        # frozen out of its sight. Its collections then fall on the same calls in every run
        # and look at the calls' own objects only (a collection that fell among the counted
        # calls in one run and not in another moved NumPy cumsum[staged] by 3.6%).
        gc.collect()
        pinned = pin_small_object_pools()
        gc.freeze()
        try:
            in_fresh_thread(self._count, fn, sync, name, calls)
        finally:
            gc.unfreeze()
            del pinned

    def _count(self, fn: Callable[[], Any], sync: Callable[[Any], None], name: str, calls: int) -> None:
        for _ in range(WARMUP_CALLS):
            sync(fn())
        self.lib.cb_start()
        sync(fn())  # instrumented warm-up: the simulated caches hold what a steady call finds
        self.lib.cb_zero()
        for _ in range(calls):
            sync(fn())
        self.lib.cb_stop_dump(name.encode())


def in_fresh_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` run in a new thread, this one waiting: its result, or its exception raised here.

    glibc gives a thread that allocates first an arena of its own while every arena is
    held by a live thread, so ``fn``'s allocations start from an empty heap, the same
    whatever this thread allocated before (the calling thread stays alive, keeping
    its arena). The new thread starts only once this one is parked in ``join``, and the
    switch interval is raised meanwhile: this thread never asks for the GIL while
    ``fn`` runs.
    """
    result: list[T] = []
    failure: list[BaseException] = []
    go = threading.Event()

    def body() -> None:
        go.wait()
        try:
            result.append(fn(*args))
        except BaseException as e:  # re-raised in the caller's thread
            failure.append(e)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        thread = threading.Thread(target=body, name="causal-bench-counted", daemon=True)
        thread.start()
        go.set()
        thread.join()
    finally:
        sys.setswitchinterval(interval)
    if failure:
        raise failure[0]
    return result[0]


def _small_object(size_class: int, i: int) -> object:
    """A new object that pymalloc serves from ``size_class`` >= 1 (blocks of 16 * (class + 1) bytes).

    Neither kind has a free list of its own that would hold it back when it is freed.
    """
    if size_class == 1:
        return 1_000_000 + i  # a one-digit int: 28 bytes
    return bytes(16 * (size_class + 1) - 33)  # a bytes object of n bytes takes 33 + n


def pin_small_object_pools() -> list[object]:
    """Bring pymalloc to one state: for each size class, one pool holding one object. Keep the result alive.

    pymalloc serves small objects from 16 KiB pools, one size class per pool. When a
    call's objects are the only ones in their pool, every call empties the pool and
    takes one again (the pool goes back to its arena, whose place in the arena list is
    re-sorted); when the pool also holds an older object, nothing of that happens. Which
    one a case gets depends on everything allocated before it: NumPy's ``loop`` moved
    by 0.1% between two checkouts that differed in one unused function. Here, for each
    size class, objects are allocated until one whole pool is filled with them (a pool
    that was empty: every pool still partly free before it is now full of them and
    others' objects), then all but the first object of that pool are freed: the class's
    only usable pool is then that one, holding one object, its free list in the same
    order in every run. Returns what must stay alive while the calls are counted
    (the first object of each pool, and the filler objects in the other pools).
    Where pymalloc is not in use (``PYTHONMALLOC``, a debug build), it does nothing.
    """
    if os.environ.get("PYTHONMALLOC", "pymalloc") != "pymalloc" or hasattr(sys, "gettotalrefcount"):
        return []
    keep: list[object] = []
    mask = ~(POOL_SIZE - 1)
    for size_class in range(1, SIZE_CLASSES):
        capacity = (POOL_SIZE - POOL_HEADER) // (16 * (size_class + 1))
        run: list[object] = []
        base = -1
        for i in range(POOL_SEARCH * capacity):
            obj = _small_object(size_class, i)
            pool = id(obj) & mask
            if pool != base:
                keep.extend(run)
                run, base = [], pool
            run.append(obj)
            if len(run) == capacity:  # a whole pool, all of it allocated here: it was empty
                keep.append(run[0])
                del obj
                del run[1:]  # freed last first: the pool's free list is the same every time
                break
        else:
            keep.extend(run)  # no empty pool found: what was allocated stays, nothing pinned
    return keep


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
