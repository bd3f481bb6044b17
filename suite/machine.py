"""Run metadata: who ran what, where. Reads the host without importing frameworks.

The fingerprint identifies a machine well enough that runs from different
machines are never compared as if they were one (CPU model, cores, memory, OS,
GPU). Library versions and thread settings are recorded beside it: they explain
numbers but do not make a different machine.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import uuid
from collections.abc import Mapping
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
