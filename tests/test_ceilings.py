"""Ceilings: the roofline arithmetic on synthetic ceilings, the host measurement, the run metadata."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from backends.base import Ceilings, matmul_key
from suite import ceilings
from suite.cases import Case
from suite.cli import main
from suite.copy_probes import COPY_PROBES
from suite.forms import get_form
from suite.machine import cache_sizes
from suite.results import Row, load_run
from tests.conftest import adapter_or_skip

# A made-up device: 100 GB/s copy, 1000 GFLOP/s float32, 250 float64, so the
# float32 ridge is at 10 FLOP/byte and the float64 one at 2.5.
SYNTHETIC = Ceilings(
    device="cpu",
    copy_gbs=100.0,
    matmul_gflops={matmul_key("float32", "ieee"): 1000.0, matmul_key("float64", "ieee"): 250.0},
    measured_by="test",
)


def timed_row(form: str, B: int, T: int, C: int, dtype: str = "float32", seconds: float = 1e-3, **fields) -> Row:
    """A timed row as the runner makes it: flops and bytes from the form's cost model."""
    itemsize = {"float32": 4, "float64": 8, "float16": 2}[dtype]
    f = get_form(form)
    flops, nbytes = f.flops(B, T, C, itemsize), f.min_bytes(B, T, C, itemsize)
    defaults = {
        "device": "cpu",
        "status": "ok",
        "median_s": seconds,
        "flops": flops,
        "bytes": nbytes,
        "gflops": flops / seconds / 1e9,
        "gbs": nbytes / seconds / 1e9,
    }
    return Row(Case("numpy", form, B, T, C, dtype=dtype), **{**defaults, **fields})


def test_ridge_point_is_matmul_rate_over_copy_bandwidth() -> None:
    assert ceilings.ridge_point(SYNTHETIC, "float32", "ieee") == pytest.approx(10.0)
    assert ceilings.ridge_point(SYNTHETIC, "float64", "ieee") == pytest.approx(2.5)
    assert ceilings.ridge_point(SYNTHETIC, "float32", "tf32") is None
    assert ceilings.ridge_point(Ceilings("cpu", 0.0, {"float32:ieee": 1.0}), "float32", "ieee") is None


def test_memory_bound_fraction_is_of_the_copy_bandwidth() -> None:
    # cumsum: 2 FLOP per 8 bytes (float32) = 0.25 FLOP/byte, far below the ridge.
    bound, frac = ceilings.bound_and_fraction(
        0.25, gflops=10.0, gbs=40.0, ceiling=SYNTHETIC, dtype="float32", precision="ieee"
    )
    assert bound == "memory"
    assert frac == pytest.approx(0.4)


def test_compute_bound_fraction_is_of_the_matmul_rate() -> None:
    bound, frac = ceilings.bound_and_fraction(
        64.0, gflops=250.0, gbs=3.9, ceiling=SYNTHETIC, dtype="float32", precision="ieee"
    )
    assert bound == "compute"
    assert frac == pytest.approx(0.25)


def test_the_ridge_itself_counts_as_compute_bound_and_dtype_moves_it() -> None:
    assert ceilings.bound_and_fraction(10.0, 500.0, 50.0, SYNTHETIC, "float32", "ieee") == ("compute", 0.5)
    # 5 FLOP/byte: memory bound for float32 (ridge 10), compute bound for float64 (ridge 2.5).
    assert ceilings.bound_and_fraction(5.0, 100.0, 20.0, SYNTHETIC, "float32", "ieee")[0] == "memory"
    assert ceilings.bound_and_fraction(5.0, 100.0, 20.0, SYNTHETIC, "float64", "ieee") == ("compute", 0.4)


def test_no_ceiling_for_the_mode_gives_no_bound() -> None:
    bound, frac = ceilings.bound_and_fraction(0.25, 1.0, 1.0, SYNTHETIC, "float16", "ieee")
    assert bound == ""
    assert math.isnan(frac)


def test_annotate_uses_the_forms_intensity() -> None:
    """Row-level: 8x1024x256 float32 cumsum in 1 ms moves 16.8 GB/s, matrix is compute bound."""
    row = timed_row("cumsum", 8, 1024, 256)
    ceilings.annotate(row, {"cpu": SYNTHETIC})
    assert row.flops / row.bytes == pytest.approx(get_form("cumsum").intensity(8, 1024, 256, 4))
    assert row.bound == "memory"
    assert row.ceiling_frac == pytest.approx(2 * 8 * 1024 * 256 * 4 / 1e-3 / 1e9 / 100.0)

    matrix = timed_row("matrix", 8, 1024, 256, seconds=0.5)
    ceilings.annotate(matrix, {"cpu": SYNTHETIC})
    assert get_form("matrix").intensity(8, 1024, 256, 4) > 10
    assert matrix.bound == "compute"
    assert matrix.ceiling_frac == pytest.approx(matrix.gflops / 1000.0)


def test_annotate_leaves_rows_without_a_ceiling_or_timing_alone() -> None:
    other_device = timed_row("cumsum", 2, 8, 2, device="cuda:0 (NVIDIA H100)")
    skipped = timed_row("cumsum", 2, 8, 2, status="skipped", gbs=math.nan, gflops=math.nan)
    for row in (other_device, skipped):
        ceilings.annotate(row, {"cpu": SYNTHETIC})
        assert row.bound == ""
        assert math.isnan(row.ceiling_frac)


def test_metadata_round_trip_drops_what_does_not_parse() -> None:
    stored = json.loads(json.dumps(ceilings.to_metadata({"cpu": SYNTHETIC})))
    stored["broken"] = {"device": "x"}  # no copy_gbs
    back = ceilings.from_metadata(stored)
    assert back == {"cpu": SYNTHETIC}
    assert ceilings.from_metadata(None) == {}


def test_host_measurement_is_plausible() -> None:
    """Real numbers from this machine: positive, finite, and a copy slower than 10 TB/s."""
    host = ceilings.measure_host()
    assert host.device == ceilings.HOST_DEVICE
    assert 0.1 < host.copy_gbs < 10_000
    for dtype in ceilings.HOST_DTYPES:
        rate = host.matmul_gflops[matmul_key(dtype, "ieee")]
        assert 0.1 < rate < 100_000
    # float64 matmuls never beat float32 ones by much on a CPU (half the SIMD lanes).
    assert host.matmul_gflops["float64:ieee"] < 1.5 * host.matmul_gflops["float32:ieee"]


def _fixed_probe(seconds: float | None, seen: list[tuple[int, int]] | None = None):
    def probe(dst: np.ndarray, src: np.ndarray, threads: int) -> float | None:
        if seen is not None:
            seen.append((src.nbytes, threads))
        return seconds

    return probe


def test_copy_buffer_is_far_larger_than_the_last_level_cache() -> None:
    llc = ceilings.last_level_cache_bytes()
    assert llc >= 1 << 20
    seen: list[tuple[int, int]] = []
    copy = ceilings.host_copy(threads=3, probes={"fake": _fixed_probe(0.5, seen)})
    assert copy.nbytes >= min(ceilings.CACHE_MULTIPLE * llc, ceilings.MAX_COPY_BYTES)
    assert copy.nbytes >= ceilings.MIN_COPY_BYTES
    assert seen == [(copy.nbytes, 3)]  # the probe copied that buffer on the run's threads
    # An explicit size is honoured (float64 elements).
    assert ceilings.host_copy(nbytes=8 << 20, threads=2, probes={"fake": _fixed_probe(0.5)}).nbytes == 8 << 20


def test_copy_ceiling_is_the_best_of_the_probes() -> None:
    probes = {"slow": _fixed_probe(0.004), "fast": _fixed_probe(0.001), "absent": _fixed_probe(None)}
    copy = ceilings.host_copy(nbytes=1 << 20, threads=2, probes=probes)
    assert copy.best == "fast"
    assert copy.gbs == pytest.approx(2 * (1 << 20) / 0.001 / 1e9)
    assert copy.rates == pytest.approx({"slow": 2 * (1 << 20) / 0.004 / 1e9, "fast": copy.gbs})
    with pytest.raises(RuntimeError, match="no copy probe ran"):
        ceilings.host_copy(nbytes=1 << 20, probes={"absent": _fixed_probe(None)})


def test_copy_probes_include_a_compiled_parallel_copy() -> None:
    # One-pass forms compiled with prange (Numba's cumsum[parallel]) beat np.copyto:
    # the ceiling must include a copy built the same way (issue 22).
    assert {"numpy", "numpy-split", "numba-prange"} <= set(COPY_PROBES)
    adapter_or_skip("numba")
    src = np.arange(1 << 16, dtype=np.float64)
    dst = np.zeros_like(src)
    seconds = COPY_PROBES["numba-prange"](dst, src, 2)
    assert seconds is not None and seconds > 0
    np.testing.assert_array_equal(dst, src)


def _memory_row(gbs: float, nbytes: float) -> Row:
    row = timed_row("cumsum", 8, 4096, 1024, gbs=gbs)
    row.bytes, row.bound, row.ceiling_frac = nbytes, "memory", gbs / 33.2
    return row


def test_above_the_ceiling_is_in_cache_only_when_the_working_set_fits_a_cache() -> None:
    caches = {"L1": 48 << 10, "L2": 2 << 20, "L3": 32 << 20}
    out_of_cache = _memory_row(36.3, 256 << 20)  # issue 22: Numba cumsum at 8x4096x1024
    assert ceilings.beyond_ceiling(out_of_cache, caches).startswith("ceiling exceeded")
    in_l2 = _memory_row(60.0, 1 << 20)
    assert ceilings.beyond_ceiling(in_l2, caches) == "in cache: its 1 MiB fit in L2"
    assert ceilings.beyond_ceiling(in_l2, {}).startswith("ceiling exceeded")  # sizes unknown: never "in cache"
    assert ceilings.beyond_ceiling(_memory_row(20.0, 1 << 20), caches) == ""


def test_cache_sizes_read_data_and_unified_caches_from_sysfs(tmp_path) -> None:
    for i, (kind, level, size) in enumerate(
        [("Data", 1, "48K"), ("Instruction", 1, "32K"), ("Unified", 2, "2048K"), ("Unified", 3, "32M")]
    ):
        d = tmp_path / f"index{i}"
        d.mkdir()
        (d / "type").write_text(kind + "\n")
        (d / "level").write_text(f"{level}\n")
        (d / "size").write_text(size + "\n")
    assert cache_sizes(tmp_path) == {"L1": 48 << 10, "L2": 2 << 20, "L3": 32 << 20}
    assert cache_sizes(tmp_path / "missing") == {}


def test_run_stores_ceilings_and_annotates_rows(tmp_path) -> None:
    out = tmp_path / "run"
    code = main(["run", "--backends", "numpy", "--forms", "cumsum,matrix", "--sizes", "2x64x8", "--budget", "0.05",
                 "--no-isolate", "--quiet", "--out", str(out)])  # fmt: skip
    assert code == 0
    meta, rows = load_run(out)
    host = ceilings.from_metadata(meta["ceilings"])["cpu"]
    assert host.copy_gbs > 0 and host.matmul_gflops["float32:ieee"] > 0
    by_form = {r.form: r for r in rows}
    assert by_form["cumsum"].bound == "memory"
    assert by_form["cumsum"].ceiling_frac == pytest.approx(by_form["cumsum"].gbs / host.copy_gbs)
    # matrix at T=64: 2*T*C*B*T / (2*B*T*C*4 + T*T*4) FLOP/byte, compared with the measured ridge.
    m = by_form["matrix"]
    ridge = ceilings.ridge_point(host, "float32", "ieee")
    assert ridge is not None
    expected = "compute" if m.flops / m.bytes >= ridge else "memory"
    assert m.bound == expected
    assert np.isfinite(m.ceiling_frac) and m.ceiling_frac > 0


def test_no_ceilings_flag_leaves_the_columns_empty(tmp_path) -> None:
    out = tmp_path / "run"
    code = main(["run", "--backends", "numpy", "--forms", "cumsum", "--sizes", "2x8x2", "--budget", "0.05",
                 "--no-isolate", "--quiet", "--no-ceilings", "--out", str(out)])  # fmt: skip
    assert code == 0
    meta, rows = load_run(out)
    assert "ceilings" not in meta
    assert rows[0].bound == "" and math.isnan(rows[0].ceiling_frac)


@pytest.mark.gpu
def test_gpu_ceilings_from_torch() -> None:
    adapter_or_skip("torch")  # fails where torch is required, as a broken install must
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    from backends import get_backend

    adapter = get_backend("torch", "gpu")
    measured = adapter.measure_ceilings()
    assert measured is not None
    assert measured.device == adapter.device()
    assert 50 < measured.copy_gbs < 20_000
    rates = measured.matmul_gflops
    assert set(rates) >= {"float32:ieee", "float32:tf32", "bfloat16:ieee", "float16:ieee"}
    # Tensor cores: TF32 and the 16-bit types beat IEEE float32.
    assert rates["float32:tf32"] > rates["float32:ieee"]
    assert rates["bfloat16:ieee"] > rates["float32:ieee"]
    assert adapter.measure_ceilings() is measured  # measured once per adapter


@pytest.mark.gpu
def test_gpu_ceilings_from_jax() -> None:
    adapter_or_skip("jax")
    from backends import get_backend

    adapter = get_backend("jax", "gpu")
    if not adapter.availability().ok:
        pytest.skip(adapter.availability().reason)
    measured = adapter.measure_ceilings()
    assert measured is not None
    assert 50 < measured.copy_gbs < 20_000
    assert measured.matmul_gflops["bfloat16:ieee"] > measured.matmul_gflops["float32:ieee"]
    assert "float64:ieee" not in measured.matmul_gflops  # JAX computes float64 only in x64 mode


def test_cpu_adapters_leave_ceilings_to_the_host() -> None:
    from backends import get_backend

    assert get_backend("numpy").measure_ceilings() is None
    adapter_or_skip("torch")
    assert get_backend("torch", "cpu").measure_ceilings() is None


def test_the_run_measures_its_ceilings_on_the_workers_cores_and_threads(monkeypatch) -> None:
    """A worker on one core of two is judged by what one core moves, not two."""
    import os

    from suite import session
    from suite.cases import RunOptions
    from suite.isolation import allowed_cpus

    seen: dict[str, object] = {}

    def fake_measure(threads):
        seen["threads"], seen["cpus"] = threads, os.sched_getaffinity(0)
        return Ceilings(device="cpu", copy_gbs=1.0)

    monkeypatch.setattr(session, "measure_host", fake_measure)
    before = os.sched_getaffinity(0)
    cpus = allowed_cpus()
    session.run_ceilings({}, RunOptions())  # auto: every core but the harness's
    assert seen == {"threads": len(cpus[1:] or cpus), "cpus": set(cpus[1:] or cpus)}
    session.run_ceilings({}, RunOptions(threads=1, worker_cores=0))
    assert seen == {"threads": 1, "cpus": set(cpus)}
    assert os.sched_getaffinity(0) == before
