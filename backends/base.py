"""The contract every backend adapter fulfils, plus helpers the adapters share.

The harness in ``suite`` never imports a framework: it hands an adapter a NumPy
array and a form name, gets back a ready-to-run callable, and asks the adapter to
wait for its device. Everything framework-specific lives behind this interface.

Adapters import their framework inside methods (never at module top) so that
``import backends`` works with NumPy alone.
"""

from __future__ import annotations

import importlib.util
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

#: The form names every backend is asked about. Their definitions and cost models
#: live in ``suite.forms``; this tuple only fixes the vocabulary both sides share.
FORM_NAMES: tuple[str, ...] = ("loop", "matrix", "softmax", "cumsum", "chunked")

#: Dtypes the suite knows. bfloat16 has no NumPy dtype; adapters that support it
#: convert on their device.
DTYPES: tuple[str, ...] = ("float32", "float64", "float16", "bfloat16")

#: Precision modes for matmul-based forms. ``ieee`` computes in the dtype with no
#: reduced-precision shortcut; ``tf32`` lets float32 matmuls use TF32 tensor cores
#: (the JAX default on Ampere and Hopper GPUs). Other forms ignore the mode.
PRECISIONS: tuple[str, ...] = ("ieee", "tf32")

#: Device choices a user can ask for. ``auto`` takes the GPU when there is one.
DEVICES: tuple[str, ...] = ("auto", "cpu", "gpu")


class CaseUnsupported(Exception):
    """This backend cannot run this (form, dtype, precision, device) combination."""


@dataclass(frozen=True)
class Availability:
    """Whether an adapter can run, and if not, a reason a user can act on."""

    ok: bool
    reason: str = ""


@dataclass
class Ceilings:
    """What one device demonstrably sustains: the roofline a row is judged against.

    Measured once at the start of a run (``suite.ceilings`` for the host, the
    adapter's :meth:`Backend.measure_ceilings` for its device). ``copy_gbs`` counts
    the bytes read plus the bytes written per second (1e9) by a plain copy of a
    buffer far larger than the last-level cache; ``matmul_gflops`` maps
    :func:`matmul_key` (dtype and precision mode) to the best dense matmul rate.
    """

    device: str
    copy_gbs: float
    matmul_gflops: dict[str, float] = field(default_factory=dict)
    measured_by: str = ""
    notes: str = ""


def matmul_key(dtype: str, precision: str) -> str:
    """The ``Ceilings.matmul_gflops`` key of a dtype under a precision mode."""
    return f"{dtype}:{precision}"


@dataclass
class Built:
    """A ready-to-run callable and what it cost to get there.

    ``fn`` takes no arguments (the input is bound) and returns the device result.
    ``compile_s`` is the time spent in tracing or compilation, including the first
    call that triggers it; it is never part of steady-state samples.
    """

    fn: Callable[[], Any]
    compile_s: float = 0.0
    notes: str = ""


@dataclass
class CompileModel:
    """A fitted model of compile seconds against the number of unrolled steps.

    ``seconds = a * steps ** k`` fitted in log-log space by least squares on the
    compile times actually measured in this process; ``k`` is floored at 1 because
    unrolled graphs never compile faster than linearly in their length.
    """

    points: list[tuple[int, float]] = field(default_factory=list)

    def add(self, steps: int, seconds: float) -> None:
        self.points.append((steps, seconds))

    def distinct_steps(self) -> int:
        return len({s for s, _ in self.points})

    def fit(self) -> tuple[float, float]:
        """Return (a, k) for ``seconds = a * steps**k``."""
        pts = [(s, t) for s, t in self.points if s > 0 and t > 0]
        if len({s for s, _ in pts}) < 2:
            raise ValueError("need compile times at two or more sizes to fit")
        logs = np.log(np.array([s for s, _ in pts], dtype=float))
        logt = np.log(np.array([t for _, t in pts], dtype=float))
        k, log_a = np.polyfit(logs, logt, 1)
        k = max(float(k), 1.0)
        # Refit the intercept with the floored slope so the line still passes the data.
        log_a = float(np.mean(logt - k * logs))
        return float(np.exp(log_a)), k

    def predict(self, steps: int) -> float:
        a, k = self.fit()
        return float(a * steps**k)

    def describe(self) -> str:
        a, k = self.fit()
        n = len(self.points)
        return f"fit {a:.3g} s * steps^{k:.2f} from {n} measured compiles"


class Backend(ABC):
    """One framework (and device) that computes the causal-averaging forms.

    Subclasses set ``name`` (the CLI name), ``module`` (the import that must
    succeed) and ``extra`` (the pip extra that installs it), and implement the
    abstract methods. Instances are cheap; nothing is imported until asked.
    """

    name: ClassVar[str]
    module: ClassVar[str]
    extra: ClassVar[str]
    #: Forms this adapter does not implement, each with the reason a skipped row shows.
    unimplemented_forms: ClassVar[Mapping[str, str]] = {}
    #: Forms whose cost grows with compile time (unrolled loops) have a model.
    compile_models: dict[str, CompileModel]

    def __init__(self, device: str = "auto") -> None:
        if device not in DEVICES:
            raise ValueError(f"unknown device {device!r}; choose from {', '.join(DEVICES)}")
        self.requested_device = device
        self.compile_models = {}

    # -- discovery -------------------------------------------------------------
    def availability(self) -> Availability:
        """Cheap check that never imports the framework (find_spec only)."""
        if importlib.util.find_spec(self.module) is None:
            return Availability(
                False,
                f"{self.module} is not installed: pip install '.[{self.extra}]'",
            )
        return self._device_availability()

    def _device_availability(self) -> Availability:
        """Override to refuse a requested device that is not there."""
        return Availability(True)

    @abstractmethod
    def device(self) -> str:
        """The device this adapter computes on, e.g. ``cpu`` or ``cuda:0 (NVIDIA H100)``."""

    @abstractmethod
    def versions(self) -> dict[str, str]:
        """Library versions that matter for the numbers (framework, CUDA, ...)."""

    # -- data --------------------------------------------------------------------
    @abstractmethod
    def to_device(self, x: np.ndarray, dtype: str) -> Any:
        """Copy a NumPy array onto the device as ``dtype``; wait until it is there."""

    @abstractmethod
    def to_numpy(self, y: Any) -> np.ndarray:
        """Copy a device result back as a float64 NumPy array."""

    # -- compute -----------------------------------------------------------------
    @abstractmethod
    def build(self, form: str, x: Any, precision: str) -> Built:
        """Return a ready callable for ``form`` on device input ``x``.

        Any compile or trace step is done here and timed into ``Built.compile_s``.
        Raise :class:`CaseUnsupported` for combinations this backend cannot run.
        """

    @abstractmethod
    def sync(self, result: Any) -> None:
        """Block until ``result`` (and all work queued before it) is finished."""

    def supports(self, form: str, dtype: str, precision: str) -> str | None:
        """Return None when the combination can run, else the reason it cannot."""
        if form not in FORM_NAMES:
            return f"{self.name} does not implement form {form!r}"
        if form in self.unimplemented_forms:
            return f"{self.name} does not implement {form}: {self.unimplemented_forms[form]}"
        if precision == "tf32":
            if dtype != "float32":
                return "tf32 applies to float32 only"
            if not self.is_gpu():
                return f"tf32 is a GPU tensor-core mode; {self.name} runs on {self.device()}"
        return None

    def is_gpu(self) -> bool:
        return False

    def estimate_compile_s(self, form: str, shape: tuple[int, int, int], dtype: str) -> tuple[float, str] | None:
        """Predicted compile seconds for a case and how it was predicted.

        None means compile time is not a concern for this form here. Adapters whose
        compile time grows with the shape (unrolled loops) override this with a
        model fitted to compiles they measured.
        """
        return None

    # -- optional hooks (defaults are right for host-synchronous CPU code) -------
    def set_threads(self, n: int | None) -> int | None:
        """Set the number of CPU threads the framework may use; return it."""
        return n

    def device_timer(self) -> DeviceTimer | None:
        """A timer that measures on the device (CUDA events), if there is one."""
        return None

    def flush_cache(self) -> None:
        """Evict the device's last-level cache (cold-cache timing); no-op on CPU."""

    def cache_bytes(self) -> int:
        """Bytes of the cache that :meth:`flush_cache` evicts (0 when it does nothing)."""
        return 0

    def memory_available(self) -> int | None:
        """Bytes free on the device for one case, or None when the host memory applies."""
        return None

    def peak_memory(self) -> int | None:
        """Peak device bytes allocated since :meth:`reset_peak_memory`, if tracked."""
        return None

    def reset_peak_memory(self) -> None:
        """Start a new peak-memory window."""

    def measure_ceilings(self) -> Ceilings | None:
        """The device's copy bandwidth and matmul rates, for devices other than the host.

        None (the default) means the host ceilings apply: the harness measures
        those itself. GPU adapters time a device-to-device copy and matmuls per
        dtype and precision mode on the device, in well under a second.
        """
        return None


class DeviceTimer(ABC):
    """Brackets a block of device work and reports its device-side duration."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> float:
        """Wait for the bracketed work and return its duration in seconds."""


class HostBackend(Backend):
    """An adapter that computes on the host with NumPy arrays in and out.

    Its calls return when the work is done, so there is nothing to wait for.
    """

    def _device_availability(self) -> Availability:
        if self.requested_device == "gpu":
            return Availability(False, f"{self.name} runs on the CPU only")
        return Availability(True)

    def device(self) -> str:
        return "cpu"

    def to_device(self, x: np.ndarray, dtype: str) -> np.ndarray:
        return np.ascontiguousarray(x, dtype=numpy_input_dtype(dtype))

    def to_numpy(self, y: Any) -> np.ndarray:
        return np.asarray(y, dtype=np.float64)

    def sync(self, result: Any) -> None:
        return None


def timed_first_call(fn: Callable[[], Any], sync: Callable[[Any], None]) -> tuple[Any, float]:
    """Run ``fn`` once, wait for it, and return (result, seconds)."""
    t0 = time.perf_counter()
    out = fn()
    sync(out)
    return out, time.perf_counter() - t0


def best_seconds(fn: Callable[[], Any], repeats: int, min_time: float = 0.0) -> float:
    """Fastest timed call after one untimed warm-up: at least ``repeats`` calls and ``min_time`` seconds.

    ``fn`` must return only when its work is done (wait for the device inside it).
    """
    fn()
    best = float("inf")
    calls, start = 0, time.perf_counter()
    while calls < repeats or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        calls += 1
    return best


def flush_bytes(cache_bytes: int) -> int:
    """Bytes to write so that nothing a call left in a cache of ``cache_bytes`` survives.

    Twice the cache (replacement is not strictly LRU), and at least 1 MiB for a
    device that reports no cache size. ``triton.testing.do_bench`` writes 256 MB
    whatever the device; sizing by the cache keeps the flush itself short.
    """
    return max(2 * cache_bytes, 1 << 20)


def numpy_input_dtype(dtype: str) -> np.dtype[Any]:
    """The NumPy dtype an input travels as before the adapter casts it on device."""
    # bfloat16 travels as float32 and is rounded on the device.
    return np.dtype("float32" if dtype == "bfloat16" else dtype)


def dtype_table(module: Any, names: Mapping[str, str]) -> dict[str, Any]:
    """Map suite dtype names to a framework's dtype objects (``module.float32`` ...)."""
    return {k: getattr(module, v) for k, v in names.items()}
