"""The selftest's table, from injected timers (nothing is timed), and its pyperf command line."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from suite import selftest
from suite.pyperf_timer import THREAD_VARS, pinned_env, timeit_command
from suite.selftest import KERNELS, Kernel, KernelTimes, measure, table


def fixed(values: dict[str, float | None]) -> selftest.TimerFn:
    return lambda k, threads: values[k.name]


def test_the_kernels_are_the_default_sweeps_forms_and_sizes() -> None:
    assert ("torch", "matrix", (8, 1024, 256)) in KERNELS
    assert {(b, f) for b, f, _ in KERNELS} == {(b, f) for b in ("numpy", "torch") for f in ("cumsum", "matrix")}


def test_the_table_has_every_timer_and_the_largest_disagreement_with_the_suite() -> None:
    ks = [Kernel("numpy", "cumsum", (8, 8, 256), lambda: None), Kernel("torch", "matrix", (8, 1024, 256), lambda: None)]
    a, b = ks[0].name, ks[1].name
    seen: list[int] = []

    def suite_timer(k: Kernel, threads: int) -> float:
        seen.append(threads)
        return {a: 1e-5, b: 2e-3}[k.name]

    timers = {
        "suite": suite_timer,
        "timeit": fixed({a: 1.1e-5, b: 2e-3}),
        "torch.utils.benchmark": fixed({a: 0.95e-5, b: 1.8e-3}),
        "pyperf": fixed({a: None, b: 2.5e-3}),  # could not run: NaN, and no disagreement from it
    }
    results = measure(ks, 4, timers)
    assert seen == [4, 4]  # one thread count for every timer
    assert results[0].medians["pyperf"] != results[0].medians["pyperf"]  # NaN
    assert results[0].disagreement == pytest.approx(0.10)
    assert results[1].disagreement == pytest.approx(0.25)
    lines = table(results)
    assert lines[0] == (
        "| kernel | suite median | timeit median | torch.utils.benchmark median | pyperf median | max disagreement |"
    )
    assert lines[2] == "| numpy cumsum 8x8x256 | 10 us | 11 us | 9.5 us | - | 10.0% |"
    assert lines[3] == "| torch matrix 8x1024x256 | 2 ms | 2 ms | 1.8 ms | 2.5 ms | 25.0% |"


def test_no_disagreement_without_the_suite_or_a_peer() -> None:
    assert math.isnan(KernelTimes("k", {"suite": math.nan, "timeit": 1.0}).disagreement)
    assert math.isnan(KernelTimes("k", {"suite": 1.0, "timeit": math.nan}).disagreement)


def test_main_prints_one_table_and_writes_it(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(selftest, "KERNELS", (("numpy", "cumsum", (2, 8, 4)),))
    monkeypatch.setattr(
        selftest, "kernels", lambda threads, specs=None: [Kernel("numpy", "cumsum", (2, 8, 4), lambda: None)]
    )
    timers = {name: (lambda k, threads: 1e-3) for name in selftest.TIMERS}
    out = tmp_path / "sub" / "selftest.md"
    assert selftest.main(out, threads=1, timers=timers) == 0
    printed = capsys.readouterr().out
    written = out.read_text()
    assert written in printed and written.count("| kernel |") == 1
    assert "| numpy cumsum 2x8x4 | 1 ms | 1 ms | 1 ms | 1 ms | 0.0% |" in written
    assert "on 1 threads" in written


def test_pyperf_runs_in_workers_that_inherit_the_thread_count(tmp_path: Path) -> None:
    cmd = timeit_command("fn = print", "fn()", tmp_path / "b.json")
    assert cmd[1:4] == ["-m", "pyperf", "timeit"]
    inherit = next(c for c in cmd if c.startswith("--inherit-environ="))
    assert set(inherit.split("=", 1)[1].split(",")) == {"PYTHONPATH", *THREAD_VARS}
    assert cmd[-3:] == ["-s", "fn = print", "fn()"] and str(tmp_path / "b.json") in cmd
    env = pinned_env(3)
    assert all(env[v] == "3" for v in THREAD_VARS)
    assert env["PYTHONPATH"].split(":")[0] == str(Path(selftest.__file__).resolve().parent.parent)
