"""Lockstep: sides alive at once, one sample a turn, ABBA; a side that leaves stops the rest."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest

from suite.cli import main
from suite.contention import CpuMonitor
from suite.lockstep import Conductor, LockstepError, Turns, order, parse_address
from suite.placement import offsets
from suite.timing import Timer, TimerConfig
from suite.track import ab
from suite.track.compare import compare_rows
from tests.fake_backends import NOTED_PLUGIN

ROOT = Path(__file__).resolve().parents[1]


def side(address: str, log: list[str], lock: threading.Lock, seconds: float, got: dict[str, object]) -> None:
    """A side as a thread: joins, takes its turns with a timer whose calls log their side's name."""
    turns = Turns(address)
    name = parse_address(address)[1]

    def call() -> None:
        with lock:
            log.append(name)
        time.sleep(seconds)

    try:
        got["peers"] = turns.first()
        got[name] = Timer(call, lambda _: None, TimerConfig(min_sample_s=0.0, warmup_s=0.0), turns=turns).measure()
    except LockstepError as e:
        got[name] = e
    finally:
        turns.close()


def conduct(names: list[str], seconds: dict[str, float], **kw: object) -> tuple[list[str], dict[str, object], object]:
    log: list[str] = []
    lock = threading.Lock()
    got: dict[str, object] = {}
    with Conductor(names, **kw) as c:  # type: ignore[arg-type]
        threads = [
            threading.Thread(target=side, args=(c.address(n), log, lock, seconds[n], got)) for n in reversed(names)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        result = c.join(30)
    return log, got, result


def test_sides_sample_by_turns_in_abba_order_until_every_side_has_its_budget() -> None:
    log, got, result = conduct(["base", "head"], {"base": 0.001, "head": 0.003}, budget_s=0.03, min_samples=4)
    samples = result.samples  # type: ignore[attr-defined]
    assert result.error == "" and result.stop == "budget"  # type: ignore[attr-defined]
    n = len(samples["base"])
    assert n == len(samples["head"]) >= 10  # base, the faster, waits for head's budget: 0.03 s / 0.001 s
    # The first turns warm up and calibrate (one side after the other); then AB BA AB ...
    sampled = log[-2 * n :]
    assert sampled == [name for k in range(n) for name in order(["base", "head"], k)]
    base, head = got["base"], got["head"]
    assert base.n == head.n == n and base.stop_reason == "lockstep"  # type: ignore[attr-defined]
    assert list(base.samples) == pytest.approx(samples["base"])  # type: ignore[attr-defined]
    assert np.median(np.array(samples["head"]) / np.array(samples["base"])) > 1.5


def test_min_and_max_samples_bound_a_round() -> None:
    _, _, result = conduct(["a", "b", "c"], {"a": 0.0, "b": 0.0, "c": 0.0}, budget_s=0.0, min_samples=7)
    assert [len(v) for v in result.samples.values()] == [7, 7, 7]  # type: ignore[attr-defined]
    _, _, capped = conduct(["a", "b"], {"a": 0.0, "b": 0.0}, budget_s=60.0, min_samples=2, max_samples=5)
    assert capped.stop == "max_samples" and len(capped.samples["a"]) == 5  # type: ignore[attr-defined]


def test_a_side_that_leaves_before_its_turn_stops_the_others() -> None:
    with Conductor(["base", "head"], 1.0) as c:
        leaver = Turns(c.address("base"))
        leaver.close()  # a mismatch: its case ends before the timer
        stayer = Turns(c.address("head"))
        with pytest.raises(LockstepError, match="another side failed"):
            stayer.first()
        stayer.close()
        assert "lockstep broke" in c.join(10).error


def test_a_side_that_comes_after_the_lockstep_ended_is_refused_not_left_waiting() -> None:
    _, _, result = conduct(["a", "b"], {"a": 0.0, "b": 0.0}, budget_s=0.0, min_samples=2)
    assert result.stop == "budget"  # type: ignore[attr-defined]
    with Conductor(["a", "b"], 0.0, min_samples=2) as c:
        a, b = Turns(c.address("a")), Turns(c.address("b"))
        for t in (a, b):  # the first turns, one side after the other
            assert len(t.first()) == 1
            t.done()
        for t in (a, b, b, a):  # two samples each, ABBA
            assert t.wait()
            t.done(1e-6, 1e-6)
        assert not a.wait() and not b.wait()  # min_samples in, budget 0: stop
        c.join(10)
        with pytest.raises(LockstepError, match="cannot join"):
            Turns(c.address("a"))  # a second case of the same run, say


def test_a_side_that_never_joins_is_given_up_on_cancel() -> None:
    with Conductor(["base", "head"], 1.0) as c:
        Turns(c.address("base"))
        c.cancel()  # what ab does once the sides' processes have all exited
        error = c.join(10).error
        assert error.endswith("never joined") and "head" in error
    with pytest.raises(ValueError, match="distinct"):
        Conductor(["a", "a"], 1.0)


def test_a_bad_address_and_a_lockstep_with_rounds_are_usage_errors(tmp_path: Path, capsys) -> None:
    for address in ("nohash", "#name", "path#"):
        with pytest.raises(ValueError, match="SOCKET#NAME"):
            parse_address(address)
    argv = ["run", "--backends", "numpy", "--forms", "cumsum", "--sizes", "1x8x2", "--out", str(tmp_path / "o")]
    assert main([*argv, "--lockstep", "nohash"]) == 2
    assert "--lockstep: expected SOCKET#NAME" in capsys.readouterr().err
    assert main([*argv, "--lockstep", "/tmp/x#base", "--rounds", "2"]) == 2
    assert "use --rounds 1" in capsys.readouterr().err
    assert main([*argv[:6], "1x8x2,1x16x2", *argv[7:], "--lockstep", "/tmp/x#base", "--rounds", "1"]) == 2
    assert "select one case" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    with pytest.raises(LockstepError, match="cannot join"):
        Turns(str(tmp_path / "nothing-listens") + "#base")


def test_a_peers_cpu_is_not_foreign() -> None:
    """While one side samples, the others' CPU (their turns) must not read as a neighbour's."""
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    spin = "import time\nend = time.time() + 30\nwhile time.time() < end: pass"
    busy = subprocess.Popen([sys.executable, "-c", spin])
    try:
        time.sleep(0.3)
        plain, stepped = CpuMonitor(1, pid=idle.pid), CpuMonitor(1, pid=idle.pid, peers=[busy.pid])
        plain.start()
        stepped.start()
        time.sleep(1.0)
        foreign, peer_excluded = plain.stop().foreign, stepped.stop().foreign
        assert foreign - peer_excluded > 0.3  # the busy peer's share of a core, read in the same window
    finally:
        for p in (idle, busy):
            p.kill()
            p.wait()


def _args(budget: float) -> types.SimpleNamespace:
    return types.SimpleNamespace(
        budget=budget,
        target_ci=0.01,
        min_samples=10,
        warmup=0.01,
        device="cpu",
        seed=1,
        timeout=120.0,
        compile_limit=30.0,
        threads=None,
        no_isolate=False,
    )


@pytest.mark.slow
def test_ab_rounds_in_lockstep_give_paired_samples_and_a_lockstep_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAUSAL_BENCH_ON_CONTENTION", "flag")
    noted = {"CAUSAL_BENCH_BACKENDS": NOTED_PLUGIN}  # rows say where the input lay
    sides = (ab.Side("base", ROOT, noted), ab.Side("head", ROOT, noted))
    group = ["--backends", "numpy", "--forms", "cumsum", "--sizes", "2x16x8"]
    lines: list[str] = []
    base, head = ab.interleave(sides, [group], ab.run_flags(_args(0.02)), 2, tmp_path, progress=lines.append)
    assert base.design == head.design == "lockstep"
    (key,) = base.rounds
    # Both sides of a round time their input at the round's offset, drawn from the seed (suite.placement).
    assert base.input_offsets == head.input_offsets == offsets(1, 2)
    for b, h, at in zip(base.rounds[key], head.rounds[key], base.input_offsets, strict=True):
        assert b.status == h.status == "ok", (b.reason, h.reason)
        assert f"input at {at}" in b.reason and f"input at {at}" in h.reason
        assert b.stop_reason == h.stop_reason == "lockstep" and len(b.samples_s) == len(h.samples_s) >= 10
        assert b.rel_err <= b.tol  # each side checked its own result against float64
    extra = {"job": "j", "design": base.design}
    (bm, br), (hm, hr) = base.merged(extra), head.merged(extra)
    assert bm["ab"]["input_offsets"] == hm["ab"]["input_offsets"] == base.input_offsets
    (case,) = compare_rows(br, hr, base_meta=bm, head_meta=hm).cases
    assert "in lockstep" in case.note
    # A side whose `suite run` predates --lockstep: the job falls back to ABBA and says so.
    real = ab.supported_flags
    monkeypatch.setattr(ab, "supported_flags", lambda s, flags: real(s, [f for f in flags if f[0] != ab.LOCKSTEP_FLAG]))
    base, _ = ab.interleave(sides, [group], ab.run_flags(_args(0.02)), 1, tmp_path / "old", progress=lines.append)
    assert base.design == "ABBA" and any("does not know --lockstep" in line for line in lines)


#: A test-only plugin under NumPy's name whose cumsum is off by one everywhere.
WRONG_NUMPY = """
from backends.base import Built
from backends.numpy_backend import NumpyBackend


class Wrong(NumpyBackend):
    name = "numpy"
    form_variants = {}

    def build(self, form, x, precision):
        built = super().build(form, x, precision)
        return Built(lambda: built.fn() + 1, built.compile_s)
"""


@pytest.mark.slow
def test_a_side_that_fails_its_check_stops_the_other_with_a_row(tmp_path: Path, monkeypatch) -> None:
    """One side's backend is wrong (a mismatch row); the other side's row says the lockstep stopped."""
    monkeypatch.setenv("CAUSAL_BENCH_ON_CONTENTION", "flag")
    (tmp_path / "wrongnumpy.py").write_text(WRONG_NUMPY)
    good = ab.Side("base", ROOT)
    bad = ab.Side("head", ROOT, {"PYTHONPATH": str(tmp_path), "CAUSAL_BENCH_BACKENDS": "wrongnumpy:Wrong"})
    group = ["--backends", "numpy", "--forms", "cumsum", "--sizes", "2x16x8", "--variants", "none"]
    base, head = ab.interleave((good, bad), [group], ab.run_flags(_args(0.02)), 1, tmp_path / "w")
    ((b,),), ((h,),) = base.rounds.values(), head.rounds.values()
    assert h.status == "mismatch"
    assert b.status == "error" and "another side failed" in b.reason
