"""Measured memory and ``--profile``: what a case allocates, traces that open, and timings left alone."""

from __future__ import annotations

import json
import math
import pstats
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backends import get_backend
from suite import profiling
from suite.cases import Case, RunOptions
from suite.guards import estimated_bytes
from suite.runner import run_case
from suite.timing import TimerConfig

MIB = 1 << 20


def options(tmp_path: Path | None = None, budget_s: float = 0.05) -> RunOptions:
    config = TimerConfig(budget_s=budget_s, min_samples=5, warmup_s=0.01)
    return RunOptions(timer=config, profile_dir=str(tmp_path / "profiles") if tmp_path else "", ceilings=False)


needs_linux_counter = pytest.mark.skipif(not profiling.reset_peak_rss(), reason="no resettable VmHWM here")


@needs_linux_counter
def test_peak_counts_what_the_calls_allocate_after_a_reset() -> None:
    memory = profiling.HostMemory()
    memory.start()
    held = np.ones(64 * MIB // 8)  # the case's input: resident before the calls
    big = np.ones(256 * MIB // 8)
    del big  # an earlier peak that the reset must forget
    memory.arm()

    def call() -> np.ndarray:
        tmp = np.ones(128 * MIB // 8)  # working memory of one call
        return tmp[:1] + held[:1]

    call()
    peak = memory.peak_bytes(call, lambda _: None)
    assert 0.9 * 192 * MIB <= peak <= 192 * MIB + 48 * MIB  # input + working memory, not the 256 MiB


def test_without_the_os_counter_a_sampling_thread_watches_one_extra_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profiling, "reset_peak_rss", lambda: False)
    memory = profiling.HostMemory()
    memory.start()
    memory.arm()
    calls = []

    def call() -> int:
        tmp = np.ones(128 * MIB // 8)
        time.sleep(0.05)  # the sampler's interval is 1 ms
        calls.append(1)
        return int(tmp[0])

    peak = memory.peak_bytes(call, lambda _: None)
    assert calls == [1]
    assert 0.9 * 128 * MIB <= peak <= 128 * MIB + 48 * MIB


def test_every_timed_row_has_its_measured_peak_and_the_guards_estimate(tmp_path: Path) -> None:
    adapter = get_backend("numpy", "auto")
    case = Case("numpy", "matrix", 2, 2048, 64)
    row = run_case(case, adapter, options())
    assert row.status == "ok", row.reason
    assert row.est_mem_bytes == estimated_bytes(case)
    assert row.peak_rss_bytes > 0 and math.isfinite(row.peak_rss_bytes)
    if profiling.reset_peak_rss():
        # The T x T weights (16 MiB each) dominate: measured within 2x of the model.
        assert 0.5 <= row.peak_rss_bytes / row.est_mem_bytes <= 2.0
    skipped = run_case(Case("numpy", "matrix", 2, 2048, 64, dtype="bfloat16"), adapter, options())
    assert skipped.status == "skipped" and math.isnan(skipped.peak_rss_bytes)


def test_numpy_profile_is_a_cprofile_file_that_pstats_reads(tmp_path: Path) -> None:
    adapter = get_backend("numpy", "auto")
    row = run_case(Case("numpy", "chunked", 2, 256, 16), adapter, options(tmp_path))
    assert row.status == "ok", row.reason
    assert row.profile == "profiles/numpy_chunked_2x256x16_float32_ieee_normal.prof"
    stats = pstats.Stats(str(tmp_path / row.profile))
    called = {name for (_, _, name) in stats.stats}  # type: ignore[attr-defined]
    assert "chunked" in called  # the form's own function is in the trace
    assert "not profiled" not in row.reason


def test_torch_profile_is_a_chrome_trace(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    adapter = get_backend("torch", "cpu")
    adapter.set_threads(1)
    row = run_case(Case("torch", "cumsum", 2, 256, 16), adapter, options(tmp_path))
    assert row.status == "ok", row.reason
    assert row.profile.endswith(".json")
    trace = json.loads((tmp_path / row.profile).read_text())
    names = {e.get("name", "") for e in trace["traceEvents"]}
    assert any("cumsum" in n for n in names)


def test_a_missing_profiler_is_said_in_the_row_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(profiling.PROFILER, "numpy", "torch")
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    adapter = get_backend("numpy", "auto")
    row = run_case(Case("numpy", "cumsum", 2, 64, 8), adapter, options(tmp_path))
    assert row.status == "ok" and math.isfinite(row.median_s)
    assert row.profile == ""
    assert "not profiled: torch profiler unavailable" in row.reason


def test_profiling_starts_only_after_the_timer_returns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    from suite import timing

    real_measure = timing.Timer.measure
    real_profile = profiling.profile_case

    def measure(self: timing.Timer) -> timing.Measurement:
        events.append("timer start")
        m = real_measure(self)
        events.append("timer end")
        return m

    def profile(*args: Any, **kwargs: Any) -> profiling.Profile:
        events.append("profile")
        return real_profile(*args, **kwargs)

    monkeypatch.setattr(timing.Timer, "measure", measure)
    monkeypatch.setattr(profiling, "profile_case", profile)
    row = run_case(Case("numpy", "cumsum", 2, 64, 8), get_backend("numpy", "auto"), options(tmp_path))
    assert row.status == "ok" and row.profile
    assert events[-1] == "profile" and "profile" not in events[:-1]


def test_medians_with_and_without_profile_agree_within_the_runs_own_noise(tmp_path: Path) -> None:
    """Interleaved runs of one case, with and without ``--profile``: the difference between
    the two kinds is no larger than the spread the plain runs show among themselves."""
    adapter = get_backend("numpy", "auto")
    case = Case("numpy", "cumsum", 4, 512, 64)
    plain: list[float] = []
    profiled: list[float] = []
    iqrs: list[float] = []
    for i in range(3):
        for with_profile in (False, True):
            row = run_case(case, adapter, options(tmp_path / str(i) if with_profile else None, budget_s=0.1))
            assert row.status == "ok"
            assert bool(row.profile) == with_profile
            (profiled if with_profile else plain).append(row.median_s)
            iqrs.append(row.iqr_s)
    own_noise = max(plain) - min(plain) + 2 * max(iqrs)
    assert abs(float(np.median(profiled)) - float(np.median(plain))) <= own_noise


def test_jax_profile_is_a_trace_folder(tmp_path: Path) -> None:
    pytest.importorskip("jax")
    adapter = get_backend("jax", "cpu")
    row = run_case(Case("jax", "cumsum", 2, 256, 16), adapter, options(tmp_path))
    assert row.status == "ok", row.reason
    assert row.profile.endswith(".jax") and "not profiled" not in row.reason
    written = [p.name for p in (tmp_path / row.profile).rglob("*") if p.is_file()]
    assert any(name.endswith(".xplane.pb") for name in written), written
