"""Measurements an adapter keeps between processes: the cold compiles that seed a compile-time model.

The probe behind torch.compile's loop model (``TorchCompileBackend._probe_loop``)
costs seconds: 13 s on the project's 2-core CPU, a warm-up compile and two cold
ones. Every fresh process needs it: each round of a sweep (fresh workers), each
probe of ``ab`` and ``bisect``. Its points depend on the machine and the library
version, not on the run, so they are kept in a small JSON file under the user's
cache folder, keyed by both, as Inductor keeps its compiled graphs. The key also
names the dtype and the device. A file that cannot be read or written costs only
the probe, which then runs again; delete the file to measure afresh.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
from pathlib import Path

#: Environment variable naming the folder (tests point it at a temporary one).
CACHE_ENV = "CAUSAL_BENCH_CACHE_DIR"
FILE_NAME = "compile-probes.json"

Points = list[tuple[int, float]]


def cache_dir() -> Path:
    """``$CAUSAL_BENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/causal-bench`` (``~/.cache/causal-bench``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "causal-bench"


def host_id() -> str:
    """The machine as compile times see it: architecture, CPU model, logical cores, Python."""
    model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    py = ".".join(map(str, sys.version_info[:2]))
    return f"{platform.machine()} {model} x{os.cpu_count()} python {py}"


def _read(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load(key: str) -> Points:
    """The points kept under ``key``; empty when there are none or the file is unreadable."""
    entry = _read(cache_dir() / FILE_NAME).get(key)
    if not isinstance(entry, list):
        return []
    points: Points = []
    for item in entry:
        if (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], int)
            and isinstance(item[1], float)
            and item[0] > 0
            and item[1] > 0
        ):
            points.append((item[0], item[1]))
    return points


def save(key: str, points: Points) -> Path | None:
    """Keep ``points`` under ``key`` (replacing what was there); the file's path, or None if it could not be written."""
    path = cache_dir() / FILE_NAME
    data = _read(path)
    data[key] = [[int(s), float(t)] for s, t in points]
    tmp = path.with_name(f".{FILE_NAME}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)  # atomic: a reader sees the old file or the new one
    except OSError:
        with contextlib.suppress(OSError):  # the folder itself may be unusable
            tmp.unlink(missing_ok=True)
        return None
    return path
