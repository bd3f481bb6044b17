"""Why a case is slow: its measured host memory, and a trace of extra calls (``--profile``).

Both stay out of the timed samples. The host memory figure comes from the OS's own
peak counter: on Linux, writing ``5`` to ``/proc/self/clear_refs`` resets the
process's resident high-water mark (``VmHWM``), which the kernel then keeps for
free, so nothing runs beside the timer. Where that counter cannot be reset, a
psutil sampling thread watches one extra, untimed call instead.

A profile is taken on extra calls after the timed ones, with the profiler the
framework's users open: torch.profiler's Chrome trace (``.json``, Perfetto or
``chrome://tracing``) for torch, torch.compile and Triton, ``jax.profiler.trace``
(a TensorBoard/Perfetto folder) for JAX, and cProfile's ``.prof`` (snakeviz) for
NumPy, Numba and the Python loops. A profiler that is missing gives a note, never
a failed case.
"""

from __future__ import annotations

import cProfile
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends._common import kineto_quiet

#: The folder, inside a results folder, that holds the traces.
PROFILES_DIR = "profiles"
#: Profiled calls: at least this many, and more up to ``PROFILE_MIN_S`` of calls.
PROFILE_MIN_CALLS = 3
PROFILE_MAX_CALLS = 50
PROFILE_MIN_S = 0.2
#: Which profiler each backend's users open; any other backend gets cProfile.
PROFILER: dict[str, str] = {"torch": "torch", "torch-compile": "torch", "triton": "torch", "jax": "jax"}
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
#: Seconds between samples of the psutil fallback.
SAMPLE_INTERVAL_S = 1e-3


def _status_bytes(field: str) -> int | None:
    """A ``kB`` line of ``/proc/self/status`` in bytes, or None off Linux."""
    try:
        match = re.search(rf"^{field}:\s+(\d+)\s+kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) * 1024 if match else None


def rss_bytes() -> int:
    """This process's resident set now."""
    now = _status_bytes("VmRSS")
    if now is not None:
        return now
    import psutil

    return int(psutil.Process().memory_info().rss)


def release_free_memory() -> None:
    """Hand memory the C allocator holds but no array uses back to the OS (glibc ``malloc_trim``).

    Arrays under glibc's mmap threshold come from its heap and stay resident after
    they are freed: the harness's float64 reference would otherwise count as the case's.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)
    except OSError:
        pass


def reset_peak_rss() -> bool:
    """Reset the OS's resident high-water mark of this process; False where it cannot be."""
    release_free_memory()
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    peak, now = _status_bytes("VmHWM"), _status_bytes("VmRSS")
    # A kernel that ignores the write leaves the old, higher mark in place.
    return peak is not None and now is not None and peak <= now + (1 << 20)


def peak_rss() -> int | None:
    """The resident high-water mark since the last reset, or None off Linux."""
    return _status_bytes("VmHWM")


@dataclass
class HostMemory:
    """The host memory of one case: resident bytes above what the process held before it.

    ``start()`` is called before the case's input exists; ``arm()`` right before the
    calls to be watched (it resets the OS counter); ``peak_bytes()`` after them.
    The figure is the case's input, output and working memory as the OS saw them;
    arrays that the allocator serves from memory it already holds (small ones,
    under glibc's mmap threshold) are not seen, so small cases read low.
    """

    base: int = 0
    armed: bool = False

    def start(self) -> None:
        release_free_memory()
        self.base = rss_bytes()

    def arm(self) -> None:
        self.armed = reset_peak_rss()

    def peak_bytes(self, fn: Callable[[], Any], sync: Callable[[Any], None]) -> float:
        """The peak over the watched calls; with no OS counter, over one extra call of ``fn``."""
        peak = peak_rss() if self.armed else None
        if peak is None:
            peak = sampled_peak(fn, sync)
        return float(max(peak - self.base, 0))


def sampled_peak(fn: Callable[[], Any], sync: Callable[[Any], None]) -> int:
    """The largest RSS a psutil thread sees during one untimed call of ``fn``."""
    import psutil

    proc = psutil.Process()
    peak = [int(proc.memory_info().rss)]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], int(proc.memory_info().rss))
            stop.wait(SAMPLE_INTERVAL_S)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        sync(fn())
    finally:
        stop.set()
        thread.join()
    return max(peak[0], int(proc.memory_info().rss))


def trace_name(key: str, suffix: str) -> str:
    """A file name for the trace of the case ``key``: its key with path-unsafe characters replaced."""
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", key) + suffix


def profile_calls(median_s: float) -> int:
    """How many calls a profile records: enough for ``PROFILE_MIN_S``, within the bounds."""
    if not median_s > 0 or not math.isfinite(median_s):
        return PROFILE_MIN_CALLS
    return int(min(PROFILE_MAX_CALLS, max(PROFILE_MIN_CALLS, math.ceil(PROFILE_MIN_S / median_s))))


@dataclass(frozen=True)
class Profile:
    """Where a case's trace went (relative to the results folder), or why there is none."""

    path: str = ""
    note: str = ""


def profile_case(
    backend: str, key: str, fn: Callable[[], Any], sync: Callable[[Any], None], folder: str, median_s: float
) -> Profile:
    """Record extra calls of ``fn`` under ``backend``'s profiler into ``folder``; never raises."""
    kind = PROFILER.get(backend, "cprofile")
    calls = profile_calls(median_s)
    target = Path(folder)
    try:
        target.mkdir(parents=True, exist_ok=True)
        if kind == "torch":
            name = _torch_trace(fn, sync, calls, target / trace_name(key, ".json"))
        elif kind == "jax":
            name = _jax_trace(fn, sync, calls, target / trace_name(key, ".jax"))
        else:
            name = _cprofile(fn, sync, calls, target / trace_name(key, ".prof"))
    except ImportError as e:
        return Profile(note=f"not profiled: {kind} profiler unavailable ({e})")
    except Exception as e:  # a profiler that fails costs the trace, never the row
        text = str(e).strip().splitlines()
        return Profile(note=f"not profiled: {kind} profiler failed ({type(e).__name__}: {text[0] if text else ''})")
    return Profile(path=f"{PROFILES_DIR}/{name}")


def _calls(fn: Callable[[], Any], sync: Callable[[Any], None], calls: int) -> None:
    for _ in range(calls):
        sync(fn())


def _cprofile(fn: Callable[[], Any], sync: Callable[[Any], None], calls: int, path: Path) -> str:
    prof = cProfile.Profile()
    prof.enable()
    try:
        _calls(fn, sync, calls)
    finally:
        prof.disable()
    prof.dump_stats(str(path))
    return path.name


def _torch_trace(fn: Callable[[], Any], sync: Callable[[Any], None], calls: int, path: Path) -> str:
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    with kineto_quiet(), profile(activities=activities, record_shapes=True) as prof:
        _calls(fn, sync, calls)
    prof.export_chrome_trace(str(path))
    return path.name


def _jax_trace(fn: Callable[[], Any], sync: Callable[[Any], None], calls: int, path: Path) -> str:
    import jax

    with jax.profiler.trace(str(path), create_perfetto_trace=True):
        _calls(fn, sync, calls)
    if not any(path.rglob("*")):
        raise RuntimeError(f"jax.profiler wrote nothing under {path}")
    return path.name


def after_timing(
    memory: HostMemory,
    backend: str,
    key: str,
    fn: Callable[[], Any],
    sync: Callable[[Any], None],
    profile_dir: str,
    median_s: float,
) -> tuple[dict[str, Any], str]:
    """The row fields a timed case gains here (``peak_rss_bytes``, ``profile``) and a note for its reason."""
    fields: dict[str, Any] = {"peak_rss_bytes": memory.peak_bytes(fn, sync)}
    if not profile_dir:
        return fields, ""
    profiled = profile_case(backend, key, fn, sync, profile_dir, median_s)
    fields["profile"] = profiled.path
    return fields, profiled.note


def tool_hint(path: str) -> str:
    """How to open a trace of this kind."""
    if path.endswith(".prof"):
        return "snakeviz" if _has_module("snakeviz") else "python -m pstats (pip install snakeviz to browse)"
    if path.endswith(".json"):
        return "ui.perfetto.dev or chrome://tracing"
    return "tensorboard --logdir, or the perfetto_trace.json.gz inside at ui.perfetto.dev"


def _has_module(name: str) -> bool:
    from importlib.util import find_spec

    return find_spec(name) is not None


__all__ = [
    "PROFILER",
    "PROFILES_DIR",
    "HostMemory",
    "Profile",
    "after_timing",
    "peak_rss",
    "profile_case",
    "reset_peak_rss",
    "rss_bytes",
    "tool_hint",
    "trace_name",
]
