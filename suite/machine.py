"""Run metadata: who ran what, where. Reads the host without importing frameworks.

The fingerprint identifies a machine well enough that runs from different
machines are never compared as if they were one (CPU model, cores, memory, OS,
GPU). Library versions and thread settings are recorded beside it: they explain
numbers but do not make a different machine.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_LIBS = ("numpy", "pandas", "torch", "jax", "jaxlib", "threadpoolctl")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_total_bytes() -> int | None:
    return _meminfo("MemTotal")


def memory_available_bytes() -> int | None:
    """Host memory a case may still use (MemAvailable), or None where unknown."""
    return _meminfo("MemAvailable")


def _meminfo(field: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages = os.sysconf("SC_PHYS_PAGES" if field == "MemTotal" else "SC_AVPHYS_PAGES")
        return int(pages * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


#: Where Linux lists the caches of the first CPU.
CACHE_SYSFS = Path("/sys/devices/system/cpu/cpu0/cache")


def cache_sizes(root: Path = CACHE_SYSFS) -> dict[str, int]:
    """The CPU's data and unified caches by level (``L1``, ``L2``, ``L3``) in bytes, from sysfs; {} where unknown."""
    sizes: dict[str, int] = {}
    for entry in sorted(root.glob("index*")):
        try:
            kind = (entry / "type").read_text().strip()
            level = (entry / "level").read_text().strip()
            text = (entry / "size").read_text().strip().upper()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if kind != "Instruction" and digits.isdigit():
            sizes[f"L{level}"] = max(sizes.get(f"L{level}", 0), int(digits) * scale)
    return sizes


def library_versions() -> dict[str, str]:
    out = {}
    for name in _LIBS:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def blas_info() -> list[dict[str, Any]]:
    """NumPy's BLAS libraries and their thread counts, via threadpoolctl."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    import numpy  # noqa: F401  (loads the BLAS so threadpoolctl can see it)

    keep = ("internal_api", "version", "num_threads", "architecture", "filepath")
    return [{k: p.get(k) for k in keep} for p in threadpool_info() if p.get("user_api") == "blas"]


def gpu_info() -> dict[str, str]:
    """GPU name, driver and CUDA version from nvidia-smi, empty without one."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        head = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    if not out:
        return {}
    name, driver, mem = (s.strip() for s in out.splitlines()[0].split(",", 2))
    cuda = ""
    for token in head.split("CUDA Version:")[1:2]:
        cuda = token.split()[0]
    return {"gpu_name": name, "gpu_driver": driver, "gpu_memory": mem, "cuda_driver_version": cuda}


def fingerprint(info: dict[str, Any]) -> str:
    """A short stable hash of what makes a machine this machine."""
    keys = ("cpu_model", "cpu_count", "memory_gib", "os", "machine", "gpu_name")
    stable = {k: info.get(k) for k in keys}
    return hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()[:12]


def machine_fingerprint(meta: Mapping[str, Any]) -> str | None:
    """The fingerprint stored in a run's metadata (``meta["machine"]``); None when it has none."""
    m = meta.get("machine")
    fp = m.get("fingerprint") if isinstance(m, dict) else None
    return str(fp) if fp else None


def machine_info() -> dict[str, Any]:
    total = memory_total_bytes()
    info: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": round(total / 2**30) if total else None,
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "python": platform.python_version(),
        "libraries": library_versions(),
        "blas": blas_info(),
        "caches": cache_sizes(),  # not in the fingerprint: the report's in-cache wording reads it
    }
    info.update(gpu_info())
    info["fingerprint"] = fingerprint(info)
    return info


def git_state(cwd: Path | None = None) -> dict[str, Any]:
    """Commit and dirtiness of the working tree, or empty outside git."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        return {"git_commit": git("rev-parse", "HEAD"), "git_dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {}


def new_run_id() -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def run_metadata(run_id: str, argv: list[str] | None = None) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "started": now_iso(),
        "command": argv or [],
        **git_state(),
        "machine": machine_info(),
    }


# -- the machine's state at the start of a run (pyperf's collect_metadata as the model) --

#: Other processes' CPU, in cores, over the start-of-run sample beyond which the machine is called busy.
BUSY_CORES = 0.5
#: Seconds of the start-of-run CPU sample. The load average is not judged: its one-minute
#: figure still holds whatever ran before (``nox -s bench``'s pip install read as "load 0.89").
SAMPLE_S = 0.5


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class CpuSample:
    """What other processes did over a short window: their CPU in cores, and the busiest of them."""

    window_s: float
    foreign: float
    busiest: list[dict[str, Any]] = field(default_factory=list)


def sample_cpu(window_s: float = SAMPLE_S, n: int = 5) -> CpuSample:
    """System CPU over ``window_s`` minus this process tree's, and the ``n`` busiest other processes (psutil)."""
    import time

    import psutil

    me = psutil.Process()

    def own() -> float:
        t = me.cpu_times()
        children = 0.0
        for c in me.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                ct = c.cpu_times()
                children += ct.user + ct.system
        return t.user + t.system + children

    def busy() -> float:
        t = psutil.cpu_times()
        return sum(getattr(t, k, 0.0) for k in ("user", "nice", "system", "irq", "softirq", "steal"))

    procs = []
    for p in psutil.process_iter(["pid", "name"]):
        if p.pid == me.pid:
            continue
        try:
            p.cpu_percent(None)  # the first call starts the window
            procs.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    busy0, own0, t0 = busy(), own(), time.monotonic()
    time.sleep(window_s)
    wall = max(time.monotonic() - t0, 1e-9)
    foreign = max(busy() - busy0 - (own() - own0), 0.0) / wall
    used = []
    for p in procs:
        try:
            used.append((p.cpu_percent(None) / 100, p.info["pid"], p.info["name"]))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    used.sort(reverse=True)
    busiest = [{"pid": pid, "name": name, "cores": round(c, 2)} for c, pid, name in used[:n] if c > 0]
    return CpuSample(round(wall, 3), foreign, busiest)


def machine_state(threads: int | None, sample: Callable[[], CpuSample] = sample_cpu) -> dict[str, Any]:
    """What the machine was doing when the run started: other processes' CPU over a short
    sample and the busiest of them, load average, CPU frequency and governor where readable,
    SMT, affinity and isolated CPUs, cores available against threads requested (pyperf's
    ``collect_metadata`` and system checks as the model).

    Recorded in ``results.json`` (``metadata["machine_state"]``); :func:`busy_warning`
    reads it. Every probe is best effort: what cannot be read is left out.
    """
    from suite.contention import cores_available

    state: dict[str, Any] = {"cores_available": cores_available(), "threads_requested": threads}
    with contextlib.suppress(OSError):
        state["load_average"] = [round(x, 2) for x in os.getloadavg()]
    try:
        import psutil

        state["cpu_count_logical"] = psutil.cpu_count(logical=True)
        state["cpu_count_physical"] = psutil.cpu_count(logical=False)
        freq = psutil.cpu_freq()
        if freq is not None and freq.current:
            state["cpu_freq_mhz"] = {"current": round(freq.current), "min": round(freq.min), "max": round(freq.max)}
    except Exception:  # psutil missing or refused: the rest still helps
        pass
    try:
        taken = sample()
        state["foreign_cpu"] = round(taken.foreign, 2)
        state["sample_s"] = taken.window_s
        state["busiest_processes"] = taken.busiest
    except Exception:  # no sample: the machine is not judged
        pass
    with contextlib.suppress(AttributeError, OSError):
        state["cpu_affinity"] = sorted(os.sched_getaffinity(0))
    isolated = _read("/sys/devices/system/cpu/isolated")  # pyperf's check: CPUs kept from the scheduler
    if isolated:
        state["isolated_cpus"] = isolated
    smt = _read("/sys/devices/system/cpu/smt/active")
    if smt:
        state["smt_active"] = smt == "1"
    governor = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    if governor:
        state["cpu_governor"] = governor
    return state


def busy_warning(state: Mapping[str, Any]) -> str | None:
    """One line when other processes used more than ``BUSY_CORES`` over the start-of-run
    sample, or the threads requested leave no core free; else None."""
    cores = int(state.get("cores_available") or 1)
    problems = []
    foreign = state.get("foreign_cpu")
    if foreign is not None and float(foreign) > BUSY_CORES:
        busy = [p for p in state.get("busiest_processes") or [] if p.get("cores", 0) >= 0.1]
        who = ", ".join(f"{p['name']} ({p['cores']:.1f})" for p in busy[:3])
        window = float(state.get("sample_s") or SAMPLE_S)
        problems.append(
            f"machine busy (other processes used {float(foreign):.2f} cores over {window:.1f} s"
            + (f"; {who}" if who else "")
            + ")"
        )
    threads = state.get("threads_requested")
    if threads is not None and int(threads) >= cores:
        problems.append(f"--threads {threads} leaves no core free of {cores}")
    if not problems:
        return None
    return "warning: " + "; ".join(problems) + ": timings may be contended (see the contended column)"
