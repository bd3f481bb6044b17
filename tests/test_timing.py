"""The timer on a fake clock: calibration, stopping rules, hooks and statistics.

Nothing here sleeps. A ``FakeClock`` stands in for ``time.perf_counter`` and the
timed function advances it by a known (or seeded random) amount per call, so
every number the timer reports can be predicted.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np
import pytest

from suite.timing import MIN_SAMPLES_HARD, UNSTABLE_IQR, Measurement, Timer, TimerConfig

#: One entry of a call log: ("fn" | "sync" | "flush", the object involved).
Event = tuple[str, Any]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Result:
    """What the fake function returns: one distinct object per call."""

    def __init__(self, index: int) -> None:
        self.index = index


class FakeFn:
    """Advances the clock by ``cost()`` per call and logs the call."""

    def __init__(self, clock: FakeClock, cost, events: list[Event] | None = None) -> None:
        self.clock = clock
        self.cost = cost if callable(cost) else (lambda: cost)
        self.events = events if events is not None else []
        self.calls = 0
        self.costs: list[float] = []

    def __call__(self) -> Result:
        dt = self.cost()
        self.costs.append(dt)
        self.clock.now += dt
        self.calls += 1
        out = Result(self.calls)
        self.events.append(("fn", out))
        return out


def make_timer(cost, *, sync=None, clock=None, events=None, **config) -> tuple[Timer, FakeFn, FakeClock]:
    clock = clock or FakeClock()
    fn = FakeFn(clock, cost, events)
    config.setdefault("warmup_s", 1e-3)
    timer = Timer(fn, sync or (lambda _: None), TimerConfig(**config), clock=clock)
    return timer, fn, clock


def seeded_wide(seed: int, low: float = 0.01, high: float = 0.1):
    """Per-call costs drawn from a wide uniform distribution (each >= 10 ms)."""
    rng = np.random.default_rng(seed)
    return lambda: float(rng.uniform(low, high))


# -- warm-up and calibration ------------------------------------------------------


def test_warmup_runs_until_warmup_s_has_passed():
    timer, fn, _ = make_timer(1e-3, warmup_s=0.0105)
    assert timer.warmup() == 11  # 11 ms is the first multiple of 1 ms past 10.5 ms
    assert fn.calls == 11


def test_warmup_calls_at_least_once():
    timer, fn, _ = make_timer(1e-3, warmup_s=0.0)
    assert timer.warmup() == 1
    assert fn.calls == 1


def test_a_check_call_as_long_as_the_warmup_replaces_it():
    timer, fn, _ = make_timer(1e-3, warmup_s=0.05)
    timer.warmed_s = 0.05
    assert timer.warmup() == 0 and fn.calls == 0


def test_a_shorter_check_call_counts_toward_the_warmup():
    timer, fn, _ = make_timer(1e-3, warmup_s=0.0105)
    timer.warmed_s = 0.005
    assert timer.warmup() == 6  # 5 ms already run: 6 calls of 1 ms reach 10.5 ms
    assert fn.calls == 6


def test_a_single_call_that_settles_calibration_is_the_first_sample():
    timer, fn, _ = make_timer(0.02, warmup_s=1e-3, min_sample_s=1e-2, min_samples=5, budget_s=100.0)
    m = timer.measure()
    assert m.calls_per_sample == 1 and m.n == 5 and m.stop_reason == "ci"
    # 1 warm-up call, then 5 samples of one call, the first of them the calibration call.
    assert fn.calls == 1 + 5


def test_a_block_of_many_calls_that_settles_calibration_is_not_kept():
    timer, fn, _ = make_timer(1e-3, warmup_s=1e-3, min_sample_s=1e-2, min_samples=5, budget_s=100.0)
    m = timer.measure()
    # Calibration: 1 call (1 ms), then 20% past the 10 ms target: 12 calls.
    assert m.calls_per_sample == 12 and m.n == 5 and m.stop_reason == "ci"
    # 1 warm-up call, calibration blocks of 1 and 12 calls, then 5 samples of 12 calls.
    assert fn.calls == 1 + 1 + 12 + 5 * 12


@pytest.mark.parametrize("cost", [1e-7, 1e-5, 3.3e-5, 1e-4, 7e-4, 2e-3, 9.9e-3])
def test_calibration_makes_a_sample_last_at_least_min_sample_s(cost):
    target = 1e-2
    timer, _, _ = make_timer(cost, min_sample_s=target)
    number = timer.calibrate()
    assert number * cost >= target * (1 - 1e-9)
    assert number * cost < 3 * target  # and not absurdly longer


def test_calibration_for_a_10us_call():
    timer, _, _ = make_timer(1e-5, min_sample_s=1e-2)
    number = timer.calibrate()
    # 1 -> 10 -> 100 calls (x10 while a block is under 1% of the target), then
    # aim 20% past the target: ceil(100 * 1.2 * 10 ms / 1 ms) = 1200 calls.
    assert number in (1200, 1201)
    assert 1e-2 <= number * 1e-5 < 3e-2


def test_calibration_of_a_call_longer_than_min_sample_s_is_one():
    timer, _, _ = make_timer(0.05, min_sample_s=1e-2)
    assert timer.calibrate() == 1


def test_measure_reports_calibrated_calls_per_sample_and_seconds_per_call():
    timer, _, _ = make_timer(1e-5, min_sample_s=1e-2)
    m = timer.measure()
    assert m.calls_per_sample * 1e-5 >= 1e-2
    assert m.calls_per_sample * 1e-5 < 3e-2
    assert m.samples == pytest.approx([1e-5] * m.n, rel=1e-6)  # per call, not per block
    assert m.timer == "wall"
    assert m.host_samples == ()


# -- adaptive stopping ------------------------------------------------------------


@pytest.mark.parametrize("min_samples", [3, 5, 8, 20])
def test_constant_durations_stop_by_ci_after_exactly_min_samples(min_samples):
    timer, _, _ = make_timer(1e-3, min_samples=min_samples, budget_s=100.0)
    m = timer.measure()
    assert m.stop_reason == "ci"
    assert m.n == min_samples
    assert m.median == pytest.approx(1e-3, rel=1e-9)
    assert m.rel_ci <= 0.02


def test_noisy_durations_stop_by_budget_once_it_is_spent():
    budget = 0.5
    timer, fn, _ = make_timer(seeded_wide(1234), budget_s=budget, min_sample_s=1e-2)
    m = timer.measure()
    assert m.stop_reason == "budget"
    assert m.calls_per_sample == 1  # every call is >= min_sample_s
    assert m.n >= MIN_SAMPLES_HARD
    assert m.n < 50  # calls of 10-100 ms: a 0.5 s budget holds about ten
    # The samples are exactly the last n calls' costs ...
    sampled = fn.costs[-m.n :]
    assert m.samples == pytest.approx(sampled, rel=1e-9)
    # ... and it stopped on the first sample that took the total past the budget.
    assert math.fsum(sampled[:-1]) < budget <= math.fsum(sampled) * (1 + 1e-12)
    # It did not stop because the CI was reached.
    assert m.rel_ci > 0.02


def test_budget_never_stops_before_min_samples_hard():
    timer, _, _ = make_timer(seeded_wide(7), budget_s=1e-9, min_sample_s=1e-2, min_samples=10)
    m = timer.measure()
    assert m.stop_reason == "budget"
    assert m.n == MIN_SAMPLES_HARD


@pytest.mark.parametrize("max_samples", [5, 7, 12])
def test_max_samples_is_honoured(max_samples):
    timer, _, _ = make_timer(seeded_wide(99), budget_s=1e9, min_sample_s=1e-2, max_samples=max_samples)
    m = timer.measure()
    assert m.stop_reason == "max_samples"
    assert m.n == max_samples


# -- hooks: cold cache, device events, sync ----------------------------------------


def test_cold_cache_flushes_before_every_call_and_samples_single_calls():
    events: list[Event] = []
    clock = FakeClock()
    flushes = 0

    def flush() -> None:
        nonlocal flushes
        flushes += 1
        events.append(("flush", None))
        clock.now += 2.5e-4  # the flush takes time, which must not be in the samples

    timer, fn, _ = make_timer(
        1e-5,
        clock=clock,
        events=events,
        sync=lambda out: events.append(("sync", out)),
        cold_cache=True,
        min_sample_s=1e-2,  # a warm timer would take 1200 calls per sample
    )
    timer.flush = flush
    m = timer.measure()

    assert m.calls_per_sample == 1
    assert m.stop_reason == "ci"
    assert m.n == 5
    assert m.samples == pytest.approx([1e-5] * 5, rel=1e-6)  # flush not timed
    # Every call (warm-up included) is flush, call, wait: one flush per sample.
    assert flushes == fn.calls
    assert fn.calls >= m.n
    assert [kind for kind, _ in events] == ["flush", "fn", "sync"] * fn.calls


def test_flush_is_not_called_without_cold_cache():
    calls = 0

    def flush() -> None:
        nonlocal calls
        calls += 1

    timer, _, _ = make_timer(1e-4)
    timer.flush = flush
    m = timer.measure()
    assert calls == 0
    assert m.calls_per_sample > 1


class FakeDeviceTimer:
    """Reports ``device_cost`` per call of ``fn`` made between start and stop."""

    def __init__(self, fn: FakeFn, device_cost: float) -> None:
        self.fn = fn
        self.device_cost = device_cost
        self.started_at: int | None = None
        self.stops = 0

    def start(self) -> None:
        self.started_at = self.fn.calls

    def stop(self) -> float:
        assert self.started_at is not None, "stop() before start()"
        self.stops += 1
        return (self.fn.calls - self.started_at) * self.device_cost


def test_device_events_take_the_device_time_and_keep_host_samples():
    host_cost, device_cost, sync_cost = 5e-3, 2e-3, 1e-3
    clock = FakeClock()
    made: list[FakeDeviceTimer] = []

    def sync(_out) -> None:
        clock.now += sync_cost  # waiting costs host time only

    timer, fn, _ = make_timer(host_cost, clock=clock, sync=sync, device_events=True, min_sample_s=1e-2)

    def device_timer() -> FakeDeviceTimer:
        made.append(FakeDeviceTimer(fn, device_cost))
        return made[-1]

    timer.device_timer = device_timer
    m = timer.measure()

    assert m.timer == "device-event"
    assert m.stop_reason == "ci"
    number = m.calls_per_sample
    assert number * device_cost >= 1e-2  # calibrated on the device time
    assert number * device_cost < 3e-2
    assert m.samples == pytest.approx([device_cost] * m.n, rel=1e-9)
    assert m.median == pytest.approx(device_cost, rel=1e-9)
    expected_host = (number * host_cost + sync_cost) / number
    assert len(m.host_samples) == m.n
    assert m.host_samples == pytest.approx([expected_host] * m.n, rel=1e-6)
    assert m.host_median == pytest.approx(expected_host, rel=1e-6)
    assert sum(t.stops for t in made) >= m.n


def test_device_events_fall_back_to_wall_when_no_device_timer_is_given():
    timer, _, _ = make_timer(1e-3, device_events=True)
    timer.device_timer = lambda: None  # e.g. a CPU adapter
    m = timer.measure()
    assert m.timer == "wall"
    assert m.host_samples == ()
    assert math.isnan(m.host_median)
    assert m.median == pytest.approx(1e-3, rel=1e-9)


def test_device_timer_is_ignored_without_device_events():
    timer, fn, _ = make_timer(1e-3)
    made: list[FakeDeviceTimer] = []

    def device_timer() -> FakeDeviceTimer:
        made.append(FakeDeviceTimer(fn, 123.0))
        return made[-1]

    timer.device_timer = device_timer
    m = timer.measure()
    assert m.timer == "wall"
    assert made == []
    assert m.median == pytest.approx(1e-3, rel=1e-9)


def test_sync_waits_once_per_sample_on_the_last_result():
    events: list[Event] = []
    timer, fn, _ = make_timer(1e-4, events=events, sync=lambda out: events.append(("sync", out)), min_sample_s=1e-2)
    m = timer.measure()
    assert m.calls_per_sample == 120  # 1 -> 10 -> ceil(10 * 1.2 * 10 ms / 1 ms)

    # Split the log into blocks, each ending with one sync.
    blocks: list[list[Event]] = []
    current: list[Event] = []
    for kind, obj in events:
        current.append((kind, obj))
        if kind == "sync":
            blocks.append(current)
            current = []
    assert current == []  # nothing runs after the last wait

    for block in blocks:
        kinds = [kind for kind, _ in block]
        assert kinds == ["fn"] * (len(block) - 1) + ["sync"]
        assert len(block) >= 2
        # The object waited on is the result of the block's LAST call.
        last_fn_result = block[-2][1]
        assert block[-1][1] is last_fn_result
        assert block[-1][1].index == max(obj.index for _, obj in block[:-1])

    # The sampling phase: one wait per sample, each after calls_per_sample calls.
    sampling = blocks[-m.n :]
    assert [len(b) - 1 for b in sampling] == [m.calls_per_sample] * m.n
    assert sum(len(b) - 1 for b in blocks) == fn.calls


# -- statistics ------------------------------------------------------------------


def test_measurement_statistics_on_known_samples():
    samples = (100.0, 3.0, 1.0, 4.0, 2.0)  # unsorted on purpose
    m = Measurement(samples, calls_per_sample=7)
    q1, q3 = np.percentile(samples, [25, 75])
    assert m.n == 5
    assert m.calls_per_sample == 7
    assert m.median == 3.0
    assert (q1, q3) == (2.0, 4.0)
    assert m.iqr == 2.0
    assert m.min == 1.0
    assert m.mean == 22.0
    assert m.std == pytest.approx(statistics.stdev(samples), rel=1e-12)
    assert m.std == pytest.approx(math.sqrt(7610 / 4), rel=1e-12)  # ddof=1
    assert m.ci == (1.0, 100.0)  # n < 6: the whole range
    assert m.rel_ci == pytest.approx((100.0 - 1.0) / 2 / 3.0)
    assert m.unstable  # iqr/median = 0.67
    assert math.isnan(m.host_median)


def test_measurement_statistics_on_an_even_count():
    samples = (4.0, 1.0, 3.0, 2.0)
    m = Measurement(samples, 1)
    assert m.median == 2.5
    assert m.iqr == pytest.approx(float(np.subtract(*np.percentile(samples, [75, 25]))))
    assert m.iqr == pytest.approx(1.5)  # numpy's linear interpolation: 3.25 - 1.75
    assert m.std == pytest.approx(statistics.stdev(samples))


def test_measurement_of_one_sample():
    m = Measurement((2e-3,), 10)
    assert m.median == m.min == m.mean == 2e-3
    assert m.std == 0.0
    assert m.iqr == 0.0
    assert m.ci == (2e-3, 2e-3)
    assert m.rel_ci == 0.0
    assert not m.unstable


@pytest.mark.parametrize(
    ("samples", "ratio", "unstable"),
    [
        ((0.9, 0.96, 1.0, 1.04, 1.1), 0.08, False),
        ((0.9, 0.955, 1.0, 1.045, 1.1), 0.09, False),
        ((0.9, 0.945, 1.0, 1.055, 1.1), 0.11, True),
        ((0.9, 0.94, 1.0, 1.06, 1.1), 0.12, True),
        ((0.5, 0.5, 1.0, 1.5, 1.5), 1.0, True),
    ],
)
def test_unstable_flag_is_iqr_over_median_above_ten_percent(samples, ratio, unstable):
    m = Measurement(samples, 1)
    assert m.median == 1.0
    assert m.iqr / m.median == pytest.approx(ratio)
    assert UNSTABLE_IQR == 0.10
    assert m.unstable is unstable


def test_all_zero_samples_are_not_unstable_and_have_infinite_rel_ci():
    m = Measurement((0.0, 0.0, 0.0), 1)
    assert not m.unstable
    assert m.rel_ci == math.inf


def test_measurement_equality_ignores_host_samples():
    a = Measurement((1.0, 2.0), 1, host_samples=(3.0, 4.0))
    b = Measurement((1.0, 2.0), 1, host_samples=(5.0,))
    assert a == b
    assert a.host_median == 3.5


# -- configuration ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_rel_ci": 0.0}, "target_rel_ci"),
        ({"target_rel_ci": 1.0}, "target_rel_ci"),
        ({"target_rel_ci": -0.01}, "target_rel_ci"),
        ({"target_rel_ci": float("nan")}, "target_rel_ci"),
        ({"budget_s": 0.0}, "budget_s"),
        ({"budget_s": -1.0}, "budget_s"),
        ({"min_samples": MIN_SAMPLES_HARD - 1}, "min_samples"),
        ({"min_samples": 10, "max_samples": 9}, "min_samples"),
        ({"max_samples": 2}, "min_samples"),
    ],
)
def test_timer_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TimerConfig(**kwargs)


def test_timer_config_accepts_the_edges():
    cfg = TimerConfig(target_rel_ci=0.5, budget_s=1e-6, min_samples=MIN_SAMPLES_HARD, max_samples=MIN_SAMPLES_HARD)
    assert cfg.min_samples == cfg.max_samples == 3
    assert TimerConfig().min_sample_s == 1e-2


def test_timer_config_rejects_nan_budget():
    with pytest.raises(ValueError, match="budget_s"):
        TimerConfig(budget_s=float("nan"))
