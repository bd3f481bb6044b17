"""Sweeps to rows: expand a ``SweepSpec`` into cases, run each, record a ``Row``.

One case goes: guards (supported? fits in memory? compile time within limit?)
-> the adapter puts the seeded input on its device and builds the callable
(compile timed apart) -> the result is checked against the float64 reference
(``mismatch`` stops here) -> the timer measures steady state -> a row.

Each backend runs in its own worker process (``spawn``): JAX preallocates GPU
memory when it starts, frameworks crash, and one bad case must not cost the
others. A worker that dies or runs past the per-case timeout is replaced and the
case becomes an ``error`` or ``timeout`` row. Rows go to the ``RowLog`` the
moment they arrive, so an interrupted run loses nothing finished.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from backends import REGISTRY, Backend, Built, CaseUnsupported, get_backend
from backends.base import DTYPES, FORM_NAMES, PRECISIONS, Ceilings, numpy_input_dtype
from suite import machine
from suite.ceilings import annotate
from suite.forms import get_form
from suite.reference import (
    FILE_INPUT,
    INPUT_KINDS,
    Agreement,
    InputError,
    compare,
    load_input,
    make_input,
    reference,
    tolerance,
    validate_input,
)
from suite.results import Row, case_key
from suite.timing import MIN_SAMPLES_HARD, Measurement, Timer, TimerConfig

ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}

Shape = tuple[int, int, int]

#: Named size lists. Apart from ``seed`` (the notebook's example) and ``check``,
#: each varies T at fixed B and C, so the report can fit how time scales with T.
#: ``default`` is the sweep ``nox -s bench`` runs (about 100 s on a 2-core CPU,
#: compiles included); ``check`` is the agreement matrix's adversarial shapes
#: (B=1, C=1, T=1, T not a power of two).
PRESETS: dict[str, tuple[Shape, ...]] = {
    "seed": ((4, 8, 2),),
    "small": ((4, 8, 16), (4, 32, 16), (4, 128, 16)),
    "medium": ((8, 256, 256), (8, 512, 256), (8, 1024, 256)),
    "large": ((8, 1024, 1024), (8, 2048, 1024), (8, 4096, 1024)),
    "default": ((8, 8, 256), (8, 128, 256), (8, 1024, 256)),
    "gpu": ((8, 1024, 1024), (8, 4096, 1024), (8, 16384, 1024)),
    "check": ((4, 8, 2), (1, 64, 8), (4, 64, 1), (4, 1, 8), (2, 1000, 4), (1, 4097, 2)),
}


@dataclass(frozen=True)
class Case:
    """One point of a sweep: what to compute, where, in which precision."""

    backend: str
    form: str
    B: int
    T: int
    C: int
    dtype: str = "float32"
    precision: str = "ieee"
    input: str = "normal"

    @property
    def shape(self) -> Shape:
        return (self.B, self.T, self.C)

    @property
    def key(self) -> str:
        return case_key(self.backend, self.form, self.B, self.T, self.C, self.dtype, self.precision, self.input)

    def label(self) -> str:
        extra = "" if self.precision == "ieee" else f" {self.precision}"
        extra += "" if self.input == "normal" else f" {self.input}"
        return f"{self.backend} {self.form} {self.B}x{self.T}x{self.C} {self.dtype}{extra}"

    def row(self, **fields: Any) -> Row:
        return Row(
            backend=self.backend,
            form=self.form,
            B=self.B,
            T=self.T,
            C=self.C,
            dtype=self.dtype,
            precision=self.precision,
            input=self.input,
            **fields,
        )


@dataclass(frozen=True)
class SweepSpec:
    """The cross product a run covers; ``cases()`` expands it in run order."""

    backends: tuple[str, ...] = tuple(REGISTRY)
    forms: tuple[str, ...] = FORM_NAMES
    sizes: tuple[Shape, ...] = ((4, 8, 2),)
    dtypes: tuple[str, ...] = ("float32",)
    precisions: tuple[str, ...] = ("ieee",)
    inputs: tuple[str, ...] = ("normal",)

    def __post_init__(self) -> None:
        for label, values, known in (
            ("backend", self.backends, tuple(REGISTRY)),
            ("form", self.forms, FORM_NAMES),
            ("dtype", self.dtypes, DTYPES),
            ("precision", self.precisions, PRECISIONS),
            ("input", self.inputs, (*INPUT_KINDS, FILE_INPUT)),
        ):
            if not values:
                raise ValueError(f"no {label} given")
            for v in values:
                if v not in known:
                    raise ValueError(f"unknown {label} {v!r}; choose from {', '.join(known)}")
        for shape in self.sizes:
            if len(shape) != 3 or any(int(d) < 1 for d in shape):
                raise ValueError(f"sizes must be three positive integers BxTxC; got {shape}")

    def cases(self) -> list[Case]:
        """Backend by backend (one worker each), smallest sizes first within it.

        Small sizes first lets the compile-time model learn before large sizes
        are judged, and gives early rows quickly.
        """
        sizes = sorted(self.sizes, key=lambda s: (s[0] * s[1] * s[2], s))
        return [
            Case(b, f, *s, dtype=d, precision=p, input=i)
            for b in self.backends
            for s in sizes
            for d in self.dtypes
            for p in self.precisions
            for i in self.inputs
            for f in self.forms
        ]


@dataclass(frozen=True)
class RunOptions:
    """How cases are run; everything here travels to the worker processes."""

    timer: TimerConfig = field(default_factory=TimerConfig)
    measure: bool = True  # False: agreement check only (``suite check``)
    device: str = "auto"
    threads: int | None = None
    seed: int = 1337
    case_timeout_s: float = 120.0
    compile_limit_s: float = 30.0
    memory_fraction: float = 0.8
    isolate: bool = True
    input_file: str | None = None  # the array for cases whose input is ``file``
    ceilings: bool = True  # measure device ceilings when a backend opens (timed runs only)


# -- one case, inside whichever process owns the adapter --------------------------------


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


def memory_guard(case: Case, adapter: Backend, options: RunOptions) -> str | None:
    """Reason to skip when the case's estimated peak memory would not fit."""
    form = get_form(case.form)
    B, T, C = case.shape
    device_bytes = form.peak_bytes(B, T, C, ITEMSIZE[case.dtype])
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
#: Probes use the case's C up to this. The work per element of a loop step depends
#: on C (a reduction over (t, 8) runs at another rate than over (t, 256)), so each
#: C has its own model; past a few hundred the rate settles.
PROBE_C_MAX = 256


def cost_model(case: Case) -> CallCostModel:
    return _COSTS.setdefault((case.backend, case.form, case.dtype, min(case.C, PROBE_C_MAX)), CallCostModel())


def _probe(case: Case, adapter: Backend, model: CallCostModel) -> None:
    """Time single calls of the form at small T to seed its cost model."""
    form = get_form(case.form)
    C = min(case.C, PROBE_C_MAX)
    for T in PROBE_T:
        x = adapter.to_device(make_input((1, T, C)), case.dtype)
        built = adapter.build(case.form, x, case.precision)
        built.fn()  # first call may still compile or allocate
        t0 = time.perf_counter()
        adapter.sync(built.fn())
        model.add(form.python_steps(1, T), form.flops(1, T, C, ITEMSIZE[case.dtype]), time.perf_counter() - t0)


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


def unsupported(case: Case, adapter: Backend) -> str | None:
    """Why ``adapter`` cannot run ``case`` as asked, or None."""
    why = adapter.supports(case.form, case.dtype, case.precision)
    if why is None and case.precision != "ieee" and not get_form(case.form).uses_matmul:
        # The same computation as the ieee case: running it again would only add
        # a duplicate row to the tables.
        why = f"{case.precision} changes matmul forms only; {case.form} runs as ieee"
    return why


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


def build_and_check(
    case: Case, adapter: Backend, x_host: np.ndarray, tol: float
) -> tuple[Built, np.ndarray, Agreement]:
    """Put ``x_host`` on the device, build the form, run it once: (built, reference, agreement).

    The reference is computed from the input as the backend holds it, so input
    rounding is never counted as the backend's error. The peak-memory window
    starts after the input is on the device.
    """
    x = adapter.to_device(x_host, case.dtype)
    ref = reference(adapter.to_numpy(x))
    adapter.reset_peak_memory()
    built = adapter.build(case.form, x, case.precision)
    result = built.fn()
    adapter.sync(result)
    return built, ref, compare(adapter.to_numpy(result), ref, tol)


def run_case(case: Case, adapter: Backend, options: RunOptions, threads: int | None = None) -> Row:
    """Check, then time, one case on an adapter living in this process."""
    start = time.perf_counter()
    common: dict[str, Any] = {"threads": threads or 0, "cold_cache": options.timer.cold_cache}

    def done(**fields: Any) -> Row:
        return case.row(**common, elapsed_s=time.perf_counter() - start, **fields)

    try:
        common["device"] = adapter.device()
        why = unsupported(case, adapter)
        if why:
            return done(status="skipped", reason=why)
        form = get_form(case.form)
        B, T, C = case.shape
        common["tol"] = tolerance(case.dtype, case.precision, T)
        common["flops"] = form.flops(B, T, C, ITEMSIZE[case.dtype])
        common["bytes"] = form.min_bytes(B, T, C, ITEMSIZE[case.dtype])
        why = guarded(case, adapter, options)
        if why:
            return done(status="skipped", reason=why)

        built, _, agreement = build_and_check(case, adapter, case_input(case, options), common["tol"])
        common.update(compile_s=built.compile_s, rel_err=agreement.rel_err, max_abs_err=agreement.max_abs_err)
        if not agreement.passed:
            return done(status="mismatch", reason=agreement.describe())
        if not options.measure:
            return done(status="ok", peak_mem_bytes=_nan_if_none(adapter.peak_memory()))

        m = Timer(
            built.fn,
            adapter.sync,
            options.timer,
            device_timer=adapter.device_timer,
            flush=adapter.flush_cache,
        ).measure()
        cost_model(case).add(form.python_steps(B, T), common["flops"], m.median)
        return done(
            status="ok",
            reason="; ".join(filter(None, ["unstable: IQR/median above 10%" if m.unstable else "", built.notes])),
            **measurement_fields(m),
            calls_per_sample=m.calls_per_sample,
            stop_reason=m.stop_reason,
            timer=m.timer,
            host_median_s=m.host_median,
            gflops=common["flops"] / m.median / 1e9,
            gbs=common["bytes"] / m.median / 1e9,
            peak_mem_bytes=_nan_if_none(adapter.peak_memory()),
        )
    except CaseUnsupported as e:
        return done(status="skipped", reason=str(e))
    except InputError as e:
        return done(status="error", reason=f"bad input: {e}")
    except Exception as e:  # a backend failure is a row, never a lost run
        return done(status="error", reason=_first_line(e))


def measurement_fields(m: Measurement) -> dict[str, Any]:
    """The row columns that hold a measurement's samples and their statistics."""
    lo, hi = m.ci
    return {
        "median_s": m.median,
        "iqr_s": m.iqr,
        "min_s": m.min,
        "mean_s": m.mean,
        "std_s": m.std,
        "ci_low_s": lo,
        "ci_high_s": hi,
        "n_samples": m.n,
        "unstable": m.unstable,
        "samples_s": list(m.samples),
    }


def _nan_if_none(v: int | None) -> float:
    return math.nan if v is None else float(v)


# -- worker processes ------------------------------------------------------------------


@dataclass
class BackendInfo:
    name: str
    available: bool
    reason: str = ""
    device: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    threads: int | None = None
    ceilings: Ceilings | None = None
    ceilings_error: str = ""


def open_backend(name: str, options: RunOptions) -> tuple[Backend, BackendInfo]:
    adapter = get_backend(name, options.device)
    avail = adapter.availability()
    if not avail.ok:
        return adapter, BackendInfo(name, False, avail.reason)
    threads = adapter.set_threads(options.threads)
    info = BackendInfo(name, True, device=adapter.device(), versions=adapter.versions(), threads=threads)
    if options.ceilings and options.measure:
        try:
            info.ceilings = adapter.measure_ceilings()
        except Exception as e:  # a failed ceiling costs the roofline columns, not the run
            info.ceilings_error = _first_line(e)
    return adapter, info


def _worker_main(conn: Connection, name: str, options: RunOptions) -> None:
    """Worker loop: report the backend, then answer each case with a row."""
    # The parent decides what Ctrl-C means; a worker must not die mid-row from it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        adapter, info = open_backend(name, options)
    except Exception as e:
        conn.send(("info", BackendInfo(name, False, f"failed to start: {_first_line(e)}")))
        return
    conn.send(("info", info))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        row = run_case(msg, adapter, options, info.threads)
        conn.send(("row", row))


class WorkerDied(Exception):
    pass


class Worker:
    """One backend in a child process; restarted by the caller when it dies."""

    def __init__(self, name: str, options: RunOptions) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, name, options), daemon=True)
        self.process.start()
        child.close()
        self.info: BackendInfo = self._expect("info", options.case_timeout_s + 60)

    def _expect(self, kind: str, timeout: float) -> Any:
        if not self._conn.poll(timeout):
            self.kill()
            raise TimeoutError
        try:
            got_kind, payload = self._conn.recv()
        except (EOFError, ConnectionError, OSError):
            self.process.join(5)
            raise WorkerDied(_exit_description(self.process.exitcode)) from None
        if got_kind != kind:
            raise WorkerDied(f"worker sent {got_kind!r} where {kind!r} was due")
        return payload

    def run(self, case: Case, timeout: float) -> Row:
        self._conn.send(case)
        row: Row = self._expect("row", timeout)
        return row

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._conn.send(None)
        self.process.join(10)
        self.kill()


def _exit_description(code: int | None) -> str:
    if code is None:
        return "worker process vanished"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out-of-memory kill?)" if -code == signal.SIGKILL else ""
        return f"worker process killed by {name}{hint}"
    return f"worker process exited with status {code}"


# -- the sweep ------------------------------------------------------------------------


class InProcessRunner:
    """Runs cases in this process (``--no-isolate``; tests and debugging)."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self._open: dict[str, tuple[Backend, BackendInfo]] = {}

    def info(self, name: str) -> BackendInfo:
        if name not in self._open:
            self._open[name] = open_backend(name, self.options)
        return self._open[name][1]

    def run(self, case: Case) -> Row:
        adapter, info = self._open[case.backend]
        return run_case(case, adapter, self.options, info.threads)

    def close(self) -> None:
        self._open.clear()


class IsolatedRunner:
    """Runs each backend's cases in its own worker process."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self._workers: dict[str, Worker] = {}
        self._infos: dict[str, BackendInfo] = {}

    def info(self, name: str) -> BackendInfo:
        if name not in self._infos:
            for other in list(self._workers):  # one framework at a time: no noise from idle ones
                self._workers.pop(other).close()
            self._start(name)
        return self._infos[name]

    def _start(self, name: str) -> None:
        try:
            worker = Worker(name, self.options)
        except (TimeoutError, WorkerDied) as e:
            self._infos[name] = BackendInfo(name, False, f"worker failed to start: {e}")
            return
        self._workers[name] = worker
        self._infos[name] = worker.info

    def run(self, case: Case) -> Row:
        worker = self._workers.get(case.backend)
        if worker is None:
            self._start(case.backend)
            worker = self._workers.get(case.backend)
            if worker is None:
                return case.row(status="error", reason=self._infos[case.backend].reason)
        start = time.perf_counter()
        try:
            return worker.run(case, self.options.case_timeout_s)
        except TimeoutError:
            self._workers.pop(case.backend, None)
            return case.row(
                status="timeout",
                device=worker.info.device,
                reason=f"ran past the per-case timeout of {self.options.case_timeout_s:g} s; worker stopped",
                elapsed_s=time.perf_counter() - start,
            )
        except WorkerDied as e:
            self._workers.pop(case.backend, None)
            worker.kill()
            return case.row(
                status="error", device=worker.info.device, reason=str(e), elapsed_s=time.perf_counter() - start
            )

    def close(self) -> None:
        for w in self._workers.values():
            w.close()
        self._workers.clear()


def make_runner(options: RunOptions) -> InProcessRunner | IsolatedRunner:
    return IsolatedRunner(options) if options.isolate else InProcessRunner(options)


ProgressFn = Callable[[int, int, Case, Row | None, float], None]


def estimated_case_s(case: Case, options: RunOptions) -> float:
    """A rough prior for how long a case takes, for the progress bar's ETA."""
    compile_s = 1.0 if case.backend in ("torch-compile", "jax") else 0.0
    if not options.measure:
        return 0.1 + compile_s
    return options.timer.warmup_s + options.timer.budget_s * 0.6 + compile_s


def run_cases(
    cases: Sequence[Case],
    options: RunOptions,
    on_row: Callable[[Row], None],
    progress: ProgressFn | None = None,
    infos: dict[str, BackendInfo] | None = None,
    ceilings: dict[str, Ceilings] | None = None,
) -> Iterator[Row]:
    """Run ``cases`` in order, handing every row to ``on_row`` as soon as it exists.

    Unavailable backends give ``skipped`` rows with the reason. ``infos`` collects
    each backend's availability, device and versions for the run metadata. With
    ``ceilings`` (device -> ceilings, the host's measured by the caller), device
    ceilings the backends measure are added and every row gets its roofline
    bound and fraction (``suite.ceilings.annotate``) before ``on_row`` sees it.
    """
    runner = make_runner(options)
    infos = infos if infos is not None else {}
    try:
        for i, case in enumerate(cases):
            if progress:
                progress(i, len(cases), case, None, 0.0)
            t0 = time.perf_counter()
            info = runner.info(case.backend)
            infos[case.backend] = info
            row = case.row(status="skipped", reason=info.reason) if not info.available else runner.run(case)
            if ceilings is not None:
                if info.ceilings is not None:
                    # First measurement of a device wins: every row of the run is
                    # judged against the same ceiling, the one stored in the metadata.
                    ceilings.setdefault(info.ceilings.device, info.ceilings)
                annotate(row, ceilings)
            on_row(row)
            if progress:
                progress(i + 1, len(cases), case, row, time.perf_counter() - t0)
            yield row
    finally:
        runner.close()
