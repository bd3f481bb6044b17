"""One case, inside whichever process owns the adapter: guards, build, check, time, row.

The pipeline: guards (``suite.guards``) -> the adapter puts the seeded input on
its device and builds the callable (compile timed apart) -> the result is checked
against the float64 reference (``mismatch`` stops here) -> the timer measures
steady state -> a ``Row``. ``InProcessRunner`` runs cases this way in this
process; ``suite.workers.IsolatedRunner`` runs them in one worker per backend.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from backends import Backend, Built, CaseUnsupported, get_backend
from backends._common import numpy_input_dtype
from backends.base import Ceilings
from suite.cases import Case, RunOptions
from suite.contention import CpuMonitor, measure_watched
from suite.counting import COUNTED, Hook
from suite.forms import ITEMSIZE, get_form
from suite.guards import cost_model, estimated_bytes, guarded, unsupported
from suite.isolation import WorkerPlan, limit_pools, read_back
from suite.lockstep import LockstepError, Turns, joined
from suite.placement import RANDOM, draw, place
from suite.profiling import HostMemory, after_timing
from suite.reference import (
    FILE_INPUT,
    Agreement,
    InputError,
    compare,
    load_input,
    make_input,
    reference,
    tolerance,
    validate_input,
)
from suite.results import Row, measurement_fields
from suite.timing import UNSTABLE_NOTE, Timer


def first_line(e: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


def case_input(case: Case, options: RunOptions) -> np.ndarray:
    """The host input of ``case`` in its dtype: seeded, or the user's file; NaN/Inf refused."""
    if case.input == FILE_INPUT:
        if options.input_file is None:
            raise InputError("a 'file' input case needs an input file")
        x_host = load_input(options.input_file)
    else:
        x_host = make_input(case.shape, case.input, options.seed)
    validate_input(x_host)
    return x_host.astype(numpy_input_dtype(case.dtype))


def input_offset(case: Case, options: RunOptions) -> int:
    """Where the timed input starts within its page (``suite.placement``): ``--input-offset``, else
    drawn afresh in this process (so per round); a counted case's at 0, whatever came before."""
    if options.input_offset != RANDOM:
        return options.input_offset
    return 0 if case.metric == COUNTED else draw()


class Checked(NamedTuple):
    """A built case after its check call."""

    built: Built
    ref: np.ndarray
    agreement: Agreement
    #: Seconds of the check call (result and wait): the timer counts them as warm-up.
    check_s: float


def build_and_check(case: Case, adapter: Backend, x_host: np.ndarray, tol: float) -> Checked:
    """Put ``x_host`` on the device, build the form, run it once: (built, reference, agreement, seconds).

    The reference is computed from the input as the backend holds it, so input
    rounding is never counted as the backend's error. The peak-memory window
    starts after the input is on the device.
    """
    x = adapter.to_device(x_host, case.dtype)
    ref = reference(adapter.to_numpy(x))
    adapter.reset_peak_memory()
    built = adapter.build_case(case.form, x, case.precision, case.kernel, case.variant)
    t0 = time.perf_counter()
    result = built.fn()
    adapter.sync(result)
    check_s = time.perf_counter() - t0
    return Checked(built, ref, compare(adapter.to_numpy(result), ref, tol), check_s)


def run_case(
    case: Case,
    adapter: Backend,
    options: RunOptions,
    threads: int | None = None,
    notify: Callable[[str], None] | None = None,
) -> Row:
    """Check, then time, one case on an adapter living in this process.

    The timing runs inside a contention window (``suite.contention``): waited out,
    re-measured or flagged by ``options.on_contention``; ``notify`` hears the waits.
    ``threads`` is the runtime's; a form the adapter runs serially may use one.
    With ``options.lockstep`` a timed case joins its conductor first (``suite.lockstep``)
    and samples by turns; leaving early (a skip, a mismatch) closes the socket, which
    stops the other sides.
    """
    address = options.lockstep if case.metric != COUNTED and options.measure else ""
    try:
        with joined(address) as turns:
            return _run_case(case, adapter, options, threads, notify, turns)
    except LockstepError as e:
        return Row(case, status="error", reason=str(e))


def _run_case(
    case: Case,
    adapter: Backend,
    options: RunOptions,
    threads: int | None,
    notify: Callable[[str], None] | None,
    turns: Turns | None,
) -> Row:
    start = time.perf_counter()
    timer_config = options.timer
    if case.form in adapter.serial_forms:
        threads = 1
    common: dict[str, Any] = {"threads": threads or 0, "cold_cache": False}

    def done(**fields: Any) -> Row:
        return Row(case, **common, elapsed_s=time.perf_counter() - start, **fields)

    try:
        common["device"] = adapter.device()
        # Cold-cache timing only where the adapter has a cache to flush: elsewhere the row
        # says false and the timer calibrates as usual (one call per sample inflates it).
        if timer_config.cold_cache and adapter.cache_bytes() == 0:
            timer_config = dataclasses.replace(timer_config, cold_cache=False)
        common["cold_cache"] = timer_config.cold_cache
        why = unsupported(case, adapter)
        if why:
            return done(status="skipped", reason=why)
        form = get_form(case.form)
        B, T, C = case.shape
        common["tol"] = tolerance(case.dtype, case.precision, T)
        common["flops"] = form.flops(B, T, C, ITEMSIZE[case.dtype])
        common["bytes"] = form.min_bytes(B, T, C, ITEMSIZE[case.dtype])
        common["est_mem_bytes"] = estimated_bytes(case)
        why = guarded(case, adapter, options)
        if why:
            return done(status="skipped", reason=why)

        memory = HostMemory()
        memory.start()  # before the input exists: the case's memory is what comes after
        x_host = place(case_input(case, options), input_offset(case, options))
        built, _, agreement, check_s = build_and_check(case, adapter, x_host, common["tol"])
        common.update(compile_s=built.compile_s, rel_err=agreement.rel_err, max_abs_err=agreement.max_abs_err)
        if not agreement.passed:
            return done(status="mismatch", reason=agreement.describe())
        if not options.measure:
            return done(status="ok", reason=built.notes, peak_mem_bytes=_nan_if_none(adapter.peak_memory()))

        if case.metric == COUNTED:  # under callgrind (suite.count_worker): counted, not timed
            Hook().count(built.fn, adapter.sync, case.key)
            return done(status="ok", reason=built.notes, peak_mem_bytes=_nan_if_none(adapter.peak_memory()))

        timer = Timer(
            built.fn,
            adapter.sync,
            timer_config,
            device_timer=adapter.device_timer,
            flush=adapter.flush_cache,
            warmed_s=check_s,
            turns=turns,
        )
        policy, monitor_for = options.on_contention, None
        if turns is not None:
            # The other sides work on these cores in their turns: their CPU is not a neighbour's.
            # A re-measure would break the lockstep, so contention is flagged, never waited out.
            peers = turns.first()
            policy = "flag"
            monitor_for = lambda: CpuMonitor(threads or 0, peers=peers)  # noqa: E731
        memory.arm()  # resets the OS's peak counter: nothing runs beside the timer
        watched = measure_watched(
            timer.measure, threads or 0, policy, options.contention_wait_s, notify, monitor_for=monitor_for
        )
        m = watched.value
        cost_model(case).add(form.python_steps(B, T), common["flops"], m.median)
        # Measured memory and the --profile trace: untimed, after the timed calls.
        extras, why_not = after_timing(
            memory, case.backend, case.key, built.fn, adapter.sync, options.profile_dir, m.median
        )
        notes = [UNSTABLE_NOTE if m.unstable else "", watched.reason(), built.notes, why_not]
        return done(
            status="ok",
            reason="; ".join(filter(None, notes)),
            foreign_cpu=watched.foreign_cpu,
            contended=watched.contended,
            **measurement_fields(m),
            calls_per_sample=m.calls_per_sample,
            stop_reason=m.stop_reason,
            timer=m.timer,
            host_median_s=m.host_median,
            gflops=common["flops"] / m.median / 1e9,
            gbs=common["bytes"] / m.median / 1e9,
            peak_mem_bytes=_nan_if_none(adapter.peak_memory()),
            **extras,
        )
    except CaseUnsupported as e:
        return done(status="skipped", reason=str(e))
    except InputError as e:
        return done(status="error", reason=f"bad input: {e}")
    except Exception as e:  # a backend failure is a row, never a lost run
        return done(status="error", reason=first_line(e))


def _nan_if_none(v: int | None) -> float:
    return math.nan if v is None else float(v)


@dataclass
class BackendInfo:
    """What a run learnt about a backend when it opened it: for the run's metadata."""

    name: str
    available: bool
    reason: str = ""
    device: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    threads: int | None = None
    ceilings: Ceilings | None = None
    ceilings_error: str = ""
    #: The process's settings as read back (``suite.isolation.Placement``): its cores
    #: ("0-1"), every thread pool's size, and what did not take (empty when all did).
    cores: str = ""
    pools: dict[str, int] = field(default_factory=dict)
    isolation: str = ""


def placed(row: Row, info: BackendInfo) -> Row:
    """``row`` with its process's cores and, when a setting did not take, the reason."""
    row.cores = info.cores
    if info.isolation and row.status == "ok":
        row.reason = "; ".join(filter(None, [row.reason, info.isolation]))
    return row


def open_backend(name: str, options: RunOptions, plan: WorkerPlan | None = None) -> tuple[Backend, BackendInfo]:
    """The adapter ``name``, its threads set, and what it reports about itself.

    ``plan`` is what the worker was started with (``suite.isolation``); without one
    the threads are ``options.threads``. Every pool is sized to the plan's threads,
    then read back: what differs goes into ``BackendInfo.isolation``.
    """
    plan = plan or WorkerPlan(None, options.threads)
    adapter = get_backend(name, options.device)
    avail = adapter.availability()
    if not avail.ok:
        return adapter, BackendInfo(name, False, avail.reason)
    threads = adapter.set_threads(plan.threads)
    if plan.threads is not None:
        limit_pools(plan.threads)
    info = BackendInfo(name, True, device=adapter.device(), versions=adapter.versions(), threads=threads)
    placement = read_back(plan, name, threads, adapter.thread_pools())
    info.cores, info.pools, info.isolation = placement.cores, placement.pools, placement.note()
    if options.ceilings and options.measure:
        try:
            info.ceilings = adapter.measure_ceilings()
        except Exception as e:  # a failed ceiling costs the roofline columns, not the run
            info.ceilings_error = first_line(e)
    return adapter, info


class InProcessRunner:
    """Runs cases in this process (``--no-isolate``; tests and debugging): no timeouts."""

    def __init__(self, options: RunOptions, on_note: Callable[[str], None] | None = None) -> None:
        self.options = options
        self.on_note = on_note
        self._open: dict[str, tuple[Backend, BackendInfo]] = {}

    def info(self, name: str) -> BackendInfo:
        if name not in self._open:
            self._open[name] = open_backend(name, self.options)
        return self._open[name][1]

    def run(self, case: Case) -> Row:
        adapter, info = self._open[case.backend]
        return placed(run_case(case, adapter, self.options, info.threads, self.on_note), info)

    def close(self) -> None:
        self._open.clear()
