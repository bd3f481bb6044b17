"""Steady-state timing: warm-up, calibration, adaptive sampling, statistics.

The timer knows no framework. It gets a zero-argument callable and the adapter's
hooks: ``sync(result)`` to wait for the device, optionally a device timer (CUDA
events) and a cache flush. The algorithm:

1. **Warm-up.** Call until ``warmup_s`` has passed (at least once; the runner's
   check call just before counts, ``Timer.warmed_s``), so lazy
   initialisation, allocator growth and CPU frequency ramps happen before
   measuring. Compile time was already paid and recorded by the adapter.
2. **Calibration.** Find ``calls_per_sample`` so one sample lasts at least
   ``min_sample_s`` (10 ms by default): timer resolution and the per-call loop
   overhead are then negligible, as in ``torch.utils.benchmark``'s
   ``blocked_autorange``. For a call that lasts a sample on its own, that one
   call is the first sample.
   Samples are long on purpose: thread pools (OpenMP under torch and BLAS)
   fall asleep between samples and charge their wake-up to the next call
   (results/tuning/timer-sample-length.md). A sample is ``calls_per_sample``
   back-to-back calls and one wait for the last result;
   the stored value is seconds per call.
3. **Adaptive stopping.** Keep sampling until the distribution-free 95%
   confidence interval of the median (binomial order statistics) is within
   ``target_rel_ci`` of the median (2% by default) with at least
   ``min_samples``, or the per-case ``budget_s`` is spent (with at least
   ``MIN_SAMPLES_HARD``), or ``max_samples`` is reached.
4. **Cold cache** (optional): flush the device cache before every call and time
   single calls, as ``triton.testing.do_bench`` does; the flush is not timed.

Raw samples are kept: comparisons between runs need them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

import numpy as np

from suite.lockstep import LockstepError, Turns
from suite.stats import median_ci, relative_iqr

#: Fewest samples a measurement may stop with, whatever the budget.
MIN_SAMPLES_HARD = 3
#: Within-process spread (IQR / median of one process's samples; with rounds, the
#: median over rounds) above which a measurement is flagged unstable. The spread
#: between processes (``round_spread``) does not count toward it.
UNSTABLE_IQR = 0.10
#: The note an unstable row carries in its ``reason``.
UNSTABLE_NOTE = "unstable: IQR/median within a process above 10%"


def is_unstable(within_spread: float) -> bool:
    """Whether a within-process spread marks the row ``unstable`` (NaN does not)."""
    return within_spread > UNSTABLE_IQR


class DeviceTimerLike(Protocol):
    def start(self) -> None: ...

    def stop(self) -> float: ...


@dataclass(frozen=True)
class TimerConfig:
    """Knobs of the timer; defaults suit a CPU run of the default sweep."""

    target_rel_ci: float = 0.02
    budget_s: float = 0.5
    min_samples: int = 5
    max_samples: int = 10_000
    min_sample_s: float = 1e-2
    warmup_s: float = 0.05
    cold_cache: bool = False
    device_events: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.target_rel_ci < 1:  # False for NaN as well
            raise ValueError(f"target_rel_ci must be in (0, 1); got {self.target_rel_ci}")
        if not self.budget_s > 0:  # NaN too: a NaN budget would never stop
            raise ValueError(f"budget_s must be positive; got {self.budget_s}")
        if self.min_samples < MIN_SAMPLES_HARD or self.max_samples < self.min_samples:
            raise ValueError(
                f"need {MIN_SAMPLES_HARD} <= min_samples <= max_samples; got {self.min_samples}, {self.max_samples}"
            )


@dataclass(frozen=True)
class Measurement:
    """Raw per-call samples and their statistics (computed lazily)."""

    samples: tuple[float, ...]
    calls_per_sample: int
    timer: str = "wall"
    stop_reason: str = ""
    host_samples: tuple[float, ...] = field(default=(), compare=False)

    @cached_property
    def _sorted(self) -> np.ndarray:
        return np.sort(np.asarray(self.samples, dtype=float))

    @property
    def n(self) -> int:
        return len(self.samples)

    @cached_property
    def median(self) -> float:
        return float(np.median(self._sorted))

    @cached_property
    def iqr(self) -> float:
        q1, q3 = np.percentile(self._sorted, [25, 75])
        return float(q3 - q1)

    @property
    def min(self) -> float:
        return float(self._sorted[0])

    @cached_property
    def mean(self) -> float:
        return float(self._sorted.mean())

    @cached_property
    def std(self) -> float:
        return float(self._sorted.std(ddof=1)) if self.n > 1 else 0.0

    @cached_property
    def ci(self) -> tuple[float, float]:
        return median_ci(self._sorted)

    @property
    def rel_ci(self) -> float:
        """Half-width of the median's 95% CI relative to the median."""
        lo, hi = self.ci
        return (hi - lo) / 2 / self.median if self.median > 0 else math.inf

    @cached_property
    def within_spread(self) -> float:
        """IQR / median: the noise inside this one process (``suite.stats.relative_iqr``)."""
        return relative_iqr(self._sorted)

    @property
    def unstable(self) -> bool:
        return is_unstable(self.within_spread)

    @cached_property
    def host_median(self) -> float:
        return float(np.median(self.host_samples)) if self.host_samples else math.nan


Clock = Callable[[], float]


@dataclass
class Timer:
    """Measures ``fn`` with the adapter's ``sync`` and optional device hooks."""

    fn: Callable[[], Any]
    sync: Callable[[Any], None]
    config: TimerConfig = field(default_factory=TimerConfig)
    device_timer: Callable[[], DeviceTimerLike | None] | None = None
    flush: Callable[[], None] | None = None
    clock: Clock = time.perf_counter
    #: Seconds the callable ran just before the timer got it (the runner's check call):
    #: they count toward ``warmup_s``, so a call slower than the warm-up is not repeated.
    warmed_s: float = 0.0
    #: Lockstep (``suite.lockstep``): samples are taken when the conductor gives the turn, and
    #: it decides when to stop. The caller has received the first turn (:meth:`Turns.first`).
    turns: Turns | None = None

    def _block(self, number: int) -> tuple[float, float]:
        """Run ``number`` calls and one wait; return (primary, host) seconds in all."""
        fn, sync, flush = self.fn, self.sync, self.flush
        dev = self.device_timer() if (self.device_timer and self.config.device_events) else None
        if self.config.cold_cache and flush is not None:
            flush()  # the hook waits for its own work; it is not timed
        t0 = self.clock()
        if dev is not None:
            dev.start()
        # Results are dropped at once, as in timeit: holding each one until the
        # next exists would double the live memory and change cache behaviour.
        # Work on one device queue finishes in order, so waiting for the last
        # result waits for all of them.
        for _ in range(number - 1):
            fn()
        out = fn()
        if dev is not None:
            device_s = dev.stop()
        sync(out)
        host_s = self.clock() - t0
        return (device_s if dev is not None else host_s), host_s

    def warmup(self) -> int:
        """Call until ``warmup_s`` has passed, ``warmed_s`` included; return the number of calls.

        At least one call, unless ``warmed_s`` alone covers the warm-up.
        """
        if self.warmed_s > 0 and self.warmed_s >= self.config.warmup_s:
            return 0
        calls = 0
        start = self.clock()
        while True:
            self._block(1)
            calls += 1
            if self.clock() - start + self.warmed_s >= self.config.warmup_s:
                return calls

    def calibrate(self) -> int:
        """Calls per sample so that one sample lasts at least ``min_sample_s``."""
        return self._calibrate()[0]

    def _calibrate(self) -> tuple[int, tuple[float, float] | None]:
        """Calls per sample, and the block that settled it as (primary, host) seconds.

        That last block ran ``number`` calls after the warm-up and lasted at least
        ``min_sample_s``; ``measure`` keeps it as a sample when ``number`` is 1
        (None in cold-cache mode, which calibrates nothing).
        """
        if self.config.cold_cache:
            return 1, None  # every call must start cold, so samples are single calls
        target = self.config.min_sample_s
        number = 1
        while True:
            block = self._block(number)
            elapsed = block[0]
            if elapsed >= target or number >= 10**9:
                return number, block
            if elapsed <= target / 100:
                number *= 10
            else:
                # Aim 20% past the target so the next try lands above it.
                number = max(number + 1, math.ceil(number * 1.2 * target / elapsed))

    def measure(self) -> Measurement:
        """Warm up, calibrate, then sample until the CI target or the budget is met (in lockstep: by turns)."""
        cfg = self.config
        events = bool(cfg.device_events and self.device_timer and self.device_timer() is not None)
        if self.turns is not None:
            return self._measure_by_turns(self.turns, events)
        self.warmup()
        number, settled = self._calibrate()
        samples: list[float] = []
        host: list[float] = []
        start = self.clock()
        if settled is not None and number == 1:
            # A call long enough to be a sample on its own: the block that settled the
            # calibration is the first sample, and its time counts against the budget as
            # if the sampling had begun with it. (A block of many calls follows a ramp of
            # short blocks, and read slow often enough to widen the IQR: not kept.)
            samples.append(settled[0] / number)
            host.append(settled[1] / number)
            start -= settled[1]
        reason = "max_samples"
        while len(samples) < cfg.max_samples:
            primary, host_s = self._block(number)
            samples.append(primary / number)
            host.append(host_s / number)
            n = len(samples)
            if n >= cfg.min_samples:
                m = Measurement(tuple(samples), number)
                if m.rel_ci <= cfg.target_rel_ci:
                    reason = "ci"
                    break
            if n >= MIN_SAMPLES_HARD and self.clock() - start >= cfg.budget_s:
                reason = "budget"
                break
        return Measurement(
            tuple(samples),
            number,
            timer="device-event" if events else "wall",
            stop_reason=reason,
            host_samples=tuple(host) if events else (),
        )

    def _measure_by_turns(self, turns: Turns, events: bool) -> Measurement:
        """Lockstep: warm up and calibrate in the first turn, then one sample a turn until told to stop."""
        self.warmup()
        number, _ = self._calibrate()
        turns.done()
        samples: list[float] = []
        host: list[float] = []
        while turns.wait():
            primary, host_s = self._block(number)
            samples.append(primary / number)
            host.append(host_s / number)
            turns.done(primary / number, host_s)
        if len(samples) < 2:
            raise LockstepError(f"the lockstep stopped after {len(samples)} samples (another side failed)")
        return Measurement(
            tuple(samples),
            number,
            timer="device-event" if events else "wall",
            stop_reason="lockstep",
            host_samples=tuple(host) if events else (),
        )


def measure_overhead(config: TimerConfig | None = None) -> Measurement:
    """Per-call cost of the timer's own loop, measured on an empty function."""
    return Timer(lambda: None, lambda _: None, config or TimerConfig()).measure()
