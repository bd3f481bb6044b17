"""Guards: reasons to write a case as ``skipped`` instead of running it.

Each guard looks at a ``Case`` and the adapter that would run it, before any
allocation: is the combination supported, would it fit in memory, would its
compile or its calls outlast the limits? A refusal is a human reason, never an
exception.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from backends import Backend
from suite import machine
from suite.cases import Case, RunOptions
from suite.forms import ITEMSIZE, get_form
from suite.reference import make_input
from suite.timing import MIN_SAMPLES_HARD


def unsupported(case: Case, adapter: Backend) -> str | None:
    """Why ``adapter`` cannot run ``case`` as asked, or None."""
    why = (
        adapter.supports(case.form, case.dtype, case.precision)
        or adapter.kernel_unsupported(case.form, case.kernel, case.dtype)
        or adapter.variant_unsupported(case.form, case.variant)
    )
    if why is None and case.precision != "ieee" and not get_form(case.form).uses_matmul:
        # The same computation as the ieee case: running it again would only add
        # a duplicate row to the tables.
        why = f"{case.precision} changes matmul forms only; {case.form} runs as ieee"
    return why


def estimated_bytes(case: Case) -> float:
    """The memory guard's estimate of the case's peak: input, output and the form's working memory.

    Rows carry it as ``est_mem_bytes`` beside the measured peak, so every run checks the model.
    """
    B, T, C = case.shape
    return get_form(case.form).peak_bytes(B, T, C, ITEMSIZE[case.dtype], case.kernel)


def memory_guard(case: Case, adapter: Backend, options: RunOptions) -> str | None:
    """Reason to skip when the case's estimated peak memory would not fit."""
    B, T, C = case.shape
    device_bytes = estimated_bytes(case)
    # The harness holds the float64 input, the reference and the result on the host.
    host_bytes = 3.0 * 8 * B * T * C
    free_device = adapter.memory_available()
    if free_device is None:  # computes on the host: one pool for both
        host_bytes += device_bytes
        device_bytes = 0
    else:
        usable = free_device * options.memory_fraction
        if device_bytes > usable:
            return f"needs ~{_gib(device_bytes)} on {adapter.device()}, {_gib(usable)} usable"
    free_host = machine.memory_available_bytes()
    if free_host is not None and host_bytes > free_host * options.memory_fraction:
        return f"needs ~{_gib(host_bytes)} of host memory, {_gib(free_host * options.memory_fraction)} usable"
    return None


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def compile_guard(case: Case, adapter: Backend, options: RunOptions) -> str | None:
    """Reason to skip when the predicted compile time exceeds the limit."""
    estimate = adapter.estimate_compile_s(case.form, case.shape, case.dtype)
    if estimate is None:
        return None
    seconds, how = estimate
    if seconds > options.compile_limit_s:
        return f"predicted compile {seconds:.0f} s > limit {options.compile_limit_s:.0f} s ({how})"
    return None


#: Calls a timed case makes at the least: the check, warm-up, calibration and
#: ``MIN_SAMPLES_HARD`` samples of one call each.
MIN_CALLS = 3 + MIN_SAMPLES_HARD
#: Python-loop cases up to this many steps run without a cost estimate.
SMALL_LOOP_STEPS = 1024
#: Sequence lengths of the probes that seed a loop's cost model (B=1). At T=64 the
#: per-step Python overhead dominates a call, at T=1024 the O(T) work inside each
#: step does: two probes that far apart separate the two terms of the model.
PROBE_T: tuple[int, ...] = (64, 1024)
#: Timed calls per probe; their median seeds the model, so that one call slowed by a
#: neighbour (or one lucky call) cannot let an hours-long case through.
PROBE_CALLS = 5
#: Probes use the case's C up to this. The work per element of a loop step depends
#: on C, so each C has its own model; past a few hundred the rate settles.
PROBE_C_MAX = 256


@dataclass
class CallCostModel:
    """Seconds per call as ``a * python_steps + b * flops``, fitted to measured calls.

    Observations are probe calls and the medians of cases this process already
    measured. The fit is least squares with both coefficients kept non-negative.
    """

    points: list[tuple[float, float, float]] = field(default_factory=list)

    def add(self, steps: float, flops: float, seconds: float) -> None:
        if seconds > 0:
            self.points.append((steps, flops, seconds))

    def coefficients(self) -> tuple[float, float]:
        pts = np.array(self.points, dtype=float)
        design, y = pts[:, :2], pts[:, 2]
        (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
        if a < 0 or b < 0:  # refit on the one term that stays positive
            col = 1 if a < 0 else 0
            coef = float(design[:, col] @ y / (design[:, col] @ design[:, col]))
            a, b = (0.0, coef) if col == 1 else (coef, 0.0)
        return float(a), float(b)

    def predict(self, steps: float, flops: float) -> float:
        a, b = self.coefficients()
        return a * steps + b * flops

    def describe(self) -> str:
        a, b = self.coefficients()
        return f"{a * 1e6:.3g} us per Python step + {b * 1e9:.3g} s per GFLOP from {len(self.points)} measured calls"


_COSTS: dict[tuple[str, str, str, int], CallCostModel] = {}


def cost_model(case: Case) -> CallCostModel:
    """The process-wide cost model of ``case``'s backend, form (with its variant: a threaded
    loop is not its serial idiom's speed), dtype and (capped) C."""
    key = (case.backend, case.form_kernel, case.dtype, min(case.C, PROBE_C_MAX))
    return _COSTS.setdefault(key, CallCostModel())


def probe_seconds(times: list[float]) -> float:
    """The seconds per call a probe reports: the median of its timed calls."""
    return float(np.median(times))


def _probe(case: Case, adapter: Backend, model: CallCostModel) -> None:
    """Time ``PROBE_CALLS`` single calls of the form at each small T; their median seeds its cost model."""
    form = get_form(case.form)
    C = min(case.C, PROBE_C_MAX)
    for T in PROBE_T:
        x = adapter.to_device(make_input((1, T, C)), case.dtype)
        built = adapter.build_case(case.form, x, case.precision, case.kernel, case.variant)
        built.fn()  # first call may still compile or allocate
        times = []
        for _ in range(PROBE_CALLS):
            t0 = time.perf_counter()
            adapter.sync(built.fn())
            times.append(time.perf_counter() - t0)
        model.add(form.python_steps(1, T), form.flops(1, T, C, ITEMSIZE[case.dtype]), probe_seconds(times))


def cost_guard(case: Case, adapter: Backend, options: RunOptions) -> str | None:
    """Reason to skip when the case would not finish within the per-case timeout.

    Applies to forms that iterate in Python (the loop), whose time per call
    explodes with B*T^2*C: the Python double loop at T = 65536 takes hours.
    """
    form = get_form(case.form)
    steps = form.python_steps(case.B, case.T)
    if steps <= SMALL_LOOP_STEPS:
        return None
    model = cost_model(case)
    if len(model.points) < 2:
        _probe(case, adapter, model)
    per_call = model.predict(steps, form.flops(case.B, case.T, case.C, ITEMSIZE[case.dtype]))
    calls = MIN_CALLS if options.measure else 1
    if per_call * calls > options.case_timeout_s:
        return (
            f"estimated {per_call * calls:.0f} s ({per_call:.2g} s per call x {calls} calls; "
            f"{model.describe()}) exceeds the per-case timeout {options.case_timeout_s:g} s"
        )
    return None


def guarded(case: Case, adapter: Backend, options: RunOptions) -> str | None:
    """Why a guard refuses ``case`` (memory, compile time, run time), or None."""
    for guard in (memory_guard, compile_guard, cost_guard):
        why = guard(case, adapter, options)
        if why:
            return why
    return None


def skip_reason(case: Case, adapter: Backend, options: RunOptions) -> str | None:
    """Why the suite would write ``case`` as a ``skipped`` row, or None to run it."""
    return unsupported(case, adapter) or guarded(case, adapter, options)
