"""Ceilings: what the machine can do, and how close each row gets to it.

At the start of a run the harness measures the host (NumPy: a memory copy and a
matmul per dtype); GPU adapters add their device through
``Backend.measure_ceilings``. Every timed row is then judged by the roofline
model: a form whose arithmetic intensity (FLOP per byte of compulsory traffic,
``suite.forms.Form.intensity``, recorded in the row as ``flops / bytes``) lies
below the device's ridge point (matmul rate / copy bandwidth) is ``memory``
bound and its ``ceiling_frac`` is ``gbs / copy_gbs``; at or above the ridge it is
``compute`` bound and the fraction is ``gflops / matmul_gflops``.

The matmul rate stands in for the compute ceiling of every form: it is the best
rate the device shows on dense work in that dtype and precision mode. Rows whose
device, dtype or mode has no measured ceiling get no bound (``""``, NaN).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from backends._common import best_seconds
from backends.base import Ceilings, matmul_key
from suite.results import Row

#: The device string of host rows (what CPU adapters report from ``device()``).
HOST_DEVICE = "cpu"
#: The copy buffer is this many times the last-level cache, and at least ``MIN_COPY_BYTES``.
CACHE_MULTIPLE = 4
MIN_COPY_BYTES = 64 << 20
MAX_COPY_BYTES = 512 << 20
#: Square matmul sizes for the host's compute ceiling; the best rate counts. On
#: the project's 2-core CPU OpenBLAS peaked near n = 512 (blocks that stay in L2)
#: and fell at n = 1024-2048, where XLA ran faster than it: a single size would put
#: JAX above "the ceiling" (the figures were not kept in results/; each run stores
#: the ceilings it measured in its results.json).
HOST_MATMUL_SIZES: tuple[int, ...] = (512, 1024)
HOST_DTYPES: tuple[str, ...] = ("float32", "float64")
REPEATS = 5


def last_level_cache_bytes() -> int:
    """Size of the largest CPU cache, from sysfs; 32 MiB where unknown."""
    sizes = []
    for entry in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        try:
            text = entry.read_text().strip().upper()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes) if sizes else 32 << 20


#: Seconds each ceiling keeps timing at the least, so that BLAS threads are awake
#: (why, measured: results/tuning/ceilings.md).
MIN_TIME_S = 0.1


def host_copy_gbs(nbytes: int | None = None, threads: int | None = None) -> tuple[float, int]:
    """Best copy rate of a buffer much larger than the last-level cache, and its size.

    Bytes counted are the bytes read plus the bytes written (2 x the buffer).
    Both buffers are written first so page faults stay out of the timing. The
    copy is timed on one thread and split over ``threads`` (default: every
    core; NumPy releases the GIL while it copies), and the faster counts: one
    core alone often cannot saturate the memory system, and a parallel compiled
    loop should be judged against what all cores can move.
    """
    if nbytes is None:
        nbytes = min(max(CACHE_MULTIPLE * last_level_cache_bytes(), MIN_COPY_BYTES), MAX_COPY_BYTES)
    src = np.ones(nbytes // 8, dtype=np.float64)
    dst = np.zeros_like(src)
    seconds = best_seconds(lambda: np.copyto(dst, src), REPEATS, MIN_TIME_S)
    threads = threads or os.cpu_count() or 1
    if threads > 1:
        edges = np.linspace(0, src.size, threads + 1).astype(int)
        parts = [slice(int(a), int(b)) for a, b in itertools.pairwise(edges)]
        with ThreadPoolExecutor(threads) as pool:

            def split_copy() -> None:
                for _ in pool.map(lambda s: np.copyto(dst[s], src[s]), parts):
                    pass

            seconds = min(seconds, best_seconds(split_copy, REPEATS, MIN_TIME_S))
    return 2.0 * src.nbytes / seconds / 1e9, int(src.nbytes)


def host_matmul_gflops(dtype: str, n: int = 1024) -> float:
    """Best rate of an n x n x n matmul in ``dtype`` through NumPy's BLAS."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    out = np.empty_like(a)
    seconds = best_seconds(lambda: np.matmul(a, b, out=out), REPEATS, MIN_TIME_S)
    return 2.0 * n**3 / seconds / 1e9


def measure_host() -> Ceilings:
    """The host's copy bandwidth and float32/float64 matmul rates (about half a second)."""
    copy_gbs, nbytes = host_copy_gbs()
    matmul = {matmul_key(d, "ieee"): max(host_matmul_gflops(d, n) for n in HOST_MATMUL_SIZES) for d in HOST_DTYPES}
    return Ceilings(
        device=HOST_DEVICE,
        copy_gbs=copy_gbs,
        matmul_gflops=matmul,
        measured_by="numpy",
        notes=(
            f"np.copyto of {nbytes >> 20} MiB on 1 and {os.cpu_count()} threads; "
            f"n^3 matmuls for n in {', '.join(map(str, HOST_MATMUL_SIZES))}; "
            f"each the best of {REPEATS} or more calls over {MIN_TIME_S:g} s or more"
        ),
    )


# -- the roofline arithmetic --------------------------------------------------------------


def ridge_point(ceiling: Ceilings, dtype: str, precision: str) -> float | None:
    """FLOP per byte where the compute ceiling meets the memory ceiling; None if unknown."""
    peak = ceiling.matmul_gflops.get(matmul_key(dtype, precision))
    if peak is None or not ceiling.copy_gbs > 0:
        return None
    return peak / ceiling.copy_gbs


def bound_and_fraction(
    intensity: float, gflops: float, gbs: float, ceiling: Ceilings, dtype: str, precision: str
) -> tuple[str, float]:
    """(``memory`` or ``compute``, achieved fraction of that ceiling) for one timed row.

    ``("", nan)`` when the ceiling for the row's dtype and mode was not measured
    or the row has no rates.
    """
    ridge = ridge_point(ceiling, dtype, precision)
    if ridge is None or not math.isfinite(intensity) or math.isnan(gbs) or math.isnan(gflops):
        return "", math.nan
    if intensity < ridge:
        return "memory", gbs / ceiling.copy_gbs
    return "compute", gflops / ceiling.matmul_gflops[matmul_key(dtype, precision)]


def annotate(row: Row, ceilings: Mapping[str, Ceilings]) -> None:
    """Fill ``row.bound`` and ``row.ceiling_frac`` from the ceiling of the row's device."""
    ceiling = ceilings.get(row.device)
    if ceiling is None or row.status != "ok" or not row.bytes > 0:
        return
    row.bound, row.ceiling_frac = bound_and_fraction(
        row.flops / row.bytes, row.gflops, row.gbs, ceiling, row.dtype, row.precision
    )


def to_metadata(ceilings: Mapping[str, Ceilings]) -> dict[str, dict[str, Any]]:
    """The ceilings as stored in ``meta["ceilings"]``: device -> fields."""
    return {device: dataclasses.asdict(c) for device, c in ceilings.items()}


def from_metadata(stored: Mapping[str, Any] | None) -> dict[str, Ceilings]:
    """Ceilings back from ``meta["ceilings"]``; entries that do not parse are dropped."""
    out: dict[str, Ceilings] = {}
    for device, fields in (stored or {}).items():
        try:
            out[device] = Ceilings(
                device=str(fields["device"]),
                copy_gbs=float(fields["copy_gbs"]),
                matmul_gflops={str(k): float(v) for k, v in dict(fields.get("matmul_gflops") or {}).items()},
                measured_by=str(fields.get("measured_by", "")),
                notes=str(fields.get("notes", "")),
            )
        except (KeyError, TypeError, ValueError):
            continue
    return out
