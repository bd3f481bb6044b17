"""The contract every backend adapter fulfils, and nothing else.

The harness in ``suite`` never imports a framework: it hands an adapter a device
array and a form name, gets back a ready-to-run callable, and asks the adapter to
wait for its device. Everything framework-specific lives behind this interface;
helpers the adapters share live in ``backends._common`` and ``backends._cuda``.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

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


class DeviceTimer(ABC):
    """Brackets a block of device work and reports its device-side duration."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> float:
        """Wait for the bracketed work and return its duration in seconds."""


class Backend(ABC):
    """One framework (and device) that computes the causal-averaging forms.

    Subclasses set ``name`` (the CLI name), ``module`` (the import that must
    succeed), ``extra`` (the pip extra that installs it) and ``forms``, and
    implement the abstract methods. Instances are cheap; nothing is imported
    until asked: adapters import their framework inside methods, never at module
    top, so that ``import backends`` works with NumPy alone.
    """

    name: ClassVar[str]
    module: ClassVar[str]
    extra: ClassVar[str]
    #: The forms this adapter computes, by name, each with what computes it in the
    #: adapter's own terms (read by its :meth:`_build`). An open set: an adapter may
    #: implement a form no other backend knows.
    forms: ClassVar[Mapping[str, Callable[..., Any]]]
    #: Forms this adapter does not implement, each with the reason a skipped row shows.
    unimplemented_forms: ClassVar[Mapping[str, str]] = {}
    #: The kernels this adapter can run a form with (the attention form's fused
    #: kernels), the library's own choice first. A case of such a form names its
    #: kernel (``Case.kernel``); forms not listed take no kernel.
    form_kernels: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    #: Hand-tuned implementations of a form beyond the library's own idiom (``forms``),
    #: by form and variant name, each with what computes it in the adapter's terms
    #: (read by its :meth:`_build_variant`). A case names one in ``Case.variant``.
    form_variants: ClassVar[Mapping[str, Mapping[str, Callable[..., Any]]]] = {}
    #: Forms whose implementation here runs on one thread whatever ``set_threads`` says
    #: (a case of these needs one core: ``suite.contention``).
    serial_forms: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, device: str = "auto") -> None:
        if device not in DEVICES:
            raise ValueError(f"unknown device {device!r}; choose from {', '.join(DEVICES)}")
        self.requested_device = device

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

    def dtype_name(self, x: Any) -> str:
        """The suite's name (one of ``DTYPES``) for the dtype of device array ``x``."""
        return str(x.dtype)

    # -- compute -----------------------------------------------------------------
    def build(self, form: str, x: Any, precision: str) -> Built:
        """Return a ready callable for ``form`` on device input ``x``.

        Raises :class:`CaseUnsupported` with :meth:`supports`' reason for a
        combination this backend cannot run; otherwise the adapter's :meth:`_build`.
        A form with kernels runs with the library's own choice (:meth:`build_kernel`).
        """
        if kernel := self.default_kernel(form):
            return self.build_kernel(form, x, precision, kernel)
        reason = self.supports(form, self.dtype_name(x), precision)
        if reason:
            raise CaseUnsupported(reason)
        return self._build(form, x, precision)

    def build_kernel(self, form: str, x: Any, precision: str, kernel: str) -> Built:
        """:meth:`build` for a form with kernels (the attention form): ``form`` run by ``kernel``.

        Raises :class:`CaseUnsupported` with :meth:`supports`' or
        :meth:`kernel_unsupported`'s reason; otherwise the adapter's :meth:`_build_kernel`.
        """
        dtype = self.dtype_name(x)
        reason = self.supports(form, dtype, precision) or self.kernel_unsupported(form, kernel, dtype)
        if reason:
            raise CaseUnsupported(reason)
        return self._build_kernel(form, x, precision, kernel)

    def build_variant(self, form: str, x: Any, precision: str, variant: str) -> Built:
        """:meth:`build` of a hand-tuned ``variant`` of ``form`` (``form_variants``).

        Raises :class:`CaseUnsupported` with :meth:`supports`' or
        :meth:`variant_unsupported`'s reason; otherwise the adapter's :meth:`_build_variant`.
        """
        reason = self.supports(form, self.dtype_name(x), precision) or self.variant_unsupported(form, variant)
        if reason:
            raise CaseUnsupported(reason)
        return self._build_variant(form, x, precision, variant)

    def build_case(self, form: str, x: Any, precision: str, kernel: str = "", variant: str = "") -> Built:
        """The callable a case names: its ``variant`` if any, else ``form`` with its ``kernel``."""
        if variant:
            return self.build_variant(form, x, precision, variant)
        if kernel:
            return self.build_kernel(form, x, precision, kernel)
        return self.build(form, x, precision)

    @abstractmethod
    def _build(self, form: str, x: Any, precision: str) -> Built:
        """The computation of a supported ``form`` on ``x``, ready to call.

        Any compile or trace step is done here and timed into ``Built.compile_s``.
        """

    def _build_kernel(self, form: str, x: Any, precision: str, kernel: str) -> Built:
        """The computation of a supported ``form`` with a supported ``kernel``, ready to call.

        Adapters that list kernels in ``form_kernels`` implement this. A kernel the
        library refuses for this input (device, head dimension, dtype) raises
        :class:`CaseUnsupported` with the library's reason.
        """
        raise CaseUnsupported(f"{self.name} has no kernels for {form}")

    def _build_variant(self, form: str, x: Any, precision: str, variant: str) -> Built:
        """The computation of a supported ``variant`` of ``form``, ready to call.

        Adapters that list variants in ``form_variants`` implement this.
        """
        raise CaseUnsupported(f"{self.name} has no variants of {form}")

    def variant_unsupported(self, form: str, variant: str) -> str | None:
        """Why this backend has no ``variant`` of ``form`` ("" is the idiom, always offered), or None."""
        if not variant:
            return None
        offered = self.form_variants.get(form, {})
        if variant not in offered:
            choice = f"; it offers {', '.join(offered)}" if offered else ""
            return f"{self.name} has no {form} variant {variant!r}{choice}"
        return None

    @classmethod
    def default_kernel(cls, form: str) -> str:
        """The kernel ``form`` runs with when none is named: the library's own choice ("" for no kernels)."""
        return cls.form_kernels.get(form, ("",))[0]

    def kernel_unsupported(self, form: str, kernel: str, dtype: str) -> str | None:
        """Why ``form`` cannot run with ``kernel`` here (known before any allocation), or None."""
        offered = self.form_kernels.get(form, ())
        if not offered:
            return f"{self.name} has no kernel choice for {form}; got kernel {kernel!r}" if kernel else None
        if kernel not in offered:
            return f"{self.name} has no {form} kernel {kernel!r}; it offers {', '.join(offered)}"
        return None

    @abstractmethod
    def sync(self, result: Any) -> None:
        """Block until ``result`` (and all work queued before it) is finished."""

    def supports(self, form: str, dtype: str, precision: str) -> str | None:
        """Return None when the combination can run, else the reason it cannot."""
        if form in self.unimplemented_forms:
            return f"{self.name} does not implement {form}: {self.unimplemented_forms[form]}"
        if form not in self.forms:
            return f"{self.name} does not implement form {form!r}"
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
        """Set the number of CPU threads the framework may use; return it as the framework reads it back."""
        return n

    def thread_pools(self) -> dict[str, int]:
        """The framework's own CPU thread pools and their sizes as it reports them (BLAS and
        OpenMP pools are read through threadpoolctl by the harness): read back by the worker."""
        return {}

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
