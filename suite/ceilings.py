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
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from backends._common import best_seconds
from backends.base import Ceilings, matmul_key
from suite.copy_probes import COPY_PROBES, MIN_TIME_S, REPEATS, CopyProbe
from suite.machine import cache_sizes
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


def last_level_cache_bytes() -> int:
    """Size of the largest CPU cache (``suite.machine.cache_sizes``); 32 MiB where unknown."""
    return max(cache_sizes().values(), default=32 << 20)


@dataclass(frozen=True)
class CopyCeiling:
    """The host's copy ceiling: the best probe's rate, the buffer, and every probe's rate."""

    gbs: float
    nbytes: int
    best: str
    rates: dict[str, float]


def host_copy(
    nbytes: int | None = None, threads: int | None = None, probes: Mapping[str, CopyProbe] = COPY_PROBES
) -> CopyCeiling:
    """The best copy rate of a buffer much larger than the last-level cache over every probe.

    Bytes counted are the bytes read plus the bytes written (2 x the buffer). Both
    buffers are written first so page faults stay out of the timing. ``threads``
    is the run's thread count (default: every core); each probe copies on it
    (``suite.copy_probes``), and the fastest is the ceiling, so a parallel
    compiled loop is judged against the best the cores can move.
    """
    if nbytes is None:
        nbytes = min(max(CACHE_MULTIPLE * last_level_cache_bytes(), MIN_COPY_BYTES), MAX_COPY_BYTES)
    src = np.ones(nbytes // 8, dtype=np.float64)
    dst = np.zeros_like(src)
    threads = threads or os.cpu_count() or 1
    rates: dict[str, float] = {}
    for name, probe in probes.items():
        seconds = probe(dst, src, threads)
        if seconds is not None and seconds > 0:
            rates[name] = 2.0 * src.nbytes / seconds / 1e9
    if not rates:
        raise RuntimeError("no copy probe ran")
    best = max(rates, key=lambda k: rates[k])
    return CopyCeiling(rates[best], int(src.nbytes), best, rates)


def host_matmul_gflops(dtype: str, n: int = 1024) -> float:
    """Best rate of an n x n x n matmul in ``dtype`` through NumPy's BLAS."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    out = np.empty_like(a)
    seconds = best_seconds(lambda: np.matmul(a, b, out=out), REPEATS, MIN_TIME_S)
    return 2.0 * n**3 / seconds / 1e9


def measure_host(threads: int | None = None) -> Ceilings:
    """The host's copy bandwidth on ``threads`` and float32/float64 matmul rates (one to two seconds)."""
    copy = host_copy(threads=threads)
    matmul = {matmul_key(d, "ieee"): max(host_matmul_gflops(d, n) for n in HOST_MATMUL_SIZES) for d in HOST_DTYPES}
    return Ceilings(
        device=HOST_DEVICE,
        copy_gbs=copy.gbs,
        matmul_gflops=matmul,
        measured_by="numpy",
        notes=(
            f"copy of {copy.nbytes >> 20} MiB on {threads or os.cpu_count()} threads, best of "
            + ", ".join(f"{k} {v:.3g} GB/s" for k, v in copy.rates.items())
            + f" ({copy.best}); "
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


def smallest_cache_holding(nbytes: float, caches: Mapping[str, int]) -> str | None:
    """The smallest cache level (``L2``) that holds ``nbytes``; None when none does or sizes are unknown."""
    fits = [(size, level) for level, size in caches.items() if size > 0 and nbytes <= size]
    return min(fits)[1] if fits else None


def beyond_ceiling(row: Row, caches: Mapping[str, int]) -> str:
    """What a row above its ceiling (``ceiling_frac`` > 1) means; "" for a row at or below it.

    A memory-bound row whose working set (the form's bytes model, ``row.bytes``:
    input read plus output written) fits a cache of the measuring machine
    (``caches``, ``suite.machine.cache_sizes``) ran from that cache: ``in cache``.
    Any other row above its ceiling is ``ceiling exceeded``: the ceiling is not
    the upper bound it must be, a bug in the ceiling, not a fast row.
    """
    if not row.ceiling_frac > 1:
        return ""
    level = smallest_cache_holding(row.bytes, caches) if row.bound == "memory" else None
    if level is not None:
        return f"in cache: its {row.bytes / 2**20:.3g} MiB fit in {level}"
    return "ceiling exceeded: out of cache, so the ceiling is too low (a bug in the ceiling)"


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
