"""What a run covers: ``SweepSpec`` expands into ``Case``s; ``RunOptions`` says how they run.

A ``Case`` is frozen and is the identity of a measurement across runs (its
``key``); the ``Row`` a run records holds its ``Case`` rather than copying its
fields (``suite.results``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from backends import DTYPES, PRECISIONS, REGISTRY
from suite.canary import DRIFT_LIMIT
from suite.contention import default_policy
from suite.forms import FORM_NAMES, form_names
from suite.isolation import AUTO, DEFAULT_STEPS
from suite.placement import RANDOM
from suite.reference import FILE_INPUT, INPUT_KINDS
from suite.timing import TimerConfig

Shape = tuple[int, int, int]

#: What a case can measure (``Case.metric``): wall-clock time, or instructions counted under valgrind.
METRICS: tuple[str, ...] = ("time", "instructions")

#: Named size lists. Apart from ``seed`` (the notebook's example) and ``check``,
#: each varies T at fixed B and C, so the report can fit how time scales with T.
#: ``default`` is the sweep ``nox -s bench`` runs; ``check`` is the agreement
#: matrix's adversarial shapes (B=1, C=1, T=1, T not a power of two).
PRESETS: dict[str, tuple[Shape, ...]] = {
    "seed": ((4, 8, 2),),
    "small": ((4, 8, 16), (4, 32, 16), (4, 128, 16)),
    "medium": ((8, 256, 256), (8, 512, 256), (8, 1024, 256)),
    "large": ((8, 1024, 1024), (8, 2048, 1024), (8, 4096, 1024)),
    # Five T values, so every fitted exponent rests on five points; sized, with the
    # budget ``nox -s bench`` passes, to finish in 2 minutes here (results/tuning/sweep-budget.md).
    "default": ((8, 8, 256), (8, 32, 256), (8, 128, 256), (8, 512, 256), (8, 1024, 256)),
    "gpu": ((8, 1024, 1024), (8, 4096, 1024), (8, 16384, 1024)),
    # The CI gate's set (suite.track.gate): counted and timed at two T per backend and form.
    "gate": ((8, 32, 256), (8, 128, 256)),
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
    #: The kernel that computes a form offering several (the attention form's
    #: ``flash``, ``math``, ...; ``Backend.form_kernels``); "" for the other forms.
    #: Left empty for such a form, it becomes the backend's default kernel.
    kernel: str = ""
    #: A hand-tuned implementation of the form on this backend (NumPy's
    #: ``cumsum[staged]``, Numba's ``cumsum[parallel]``); "" is the library's own
    #: idiom. Names are promises: a tuned row never stands under the library's name.
    variant: str = ""
    #: What a measurement counts: ``time`` (wall-clock, the default) or
    #: ``instructions`` (executed instructions under valgrind, suite.counting).
    #: No table or gate mixes the two.
    metric: str = "time"

    def __post_init__(self) -> None:
        if not self.kernel and self.backend in REGISTRY:
            # A form with kernels always names one: the library's own choice unless given.
            object.__setattr__(self, "kernel", REGISTRY[self.backend].default_kernel(self.form))

    @property
    def shape(self) -> Shape:
        return (self.B, self.T, self.C)

    @property
    def key(self) -> str:
        """The identity of a case across runs: what was computed, not how it went."""
        form = f"{self.form}[{self.variant}]" if self.variant else self.form
        key = f"{self.backend}:{form}:{self.B}x{self.T}x{self.C}:{self.dtype}:{self.precision}:{self.input}"
        # Only cases with a kernel, or a metric other than time, carry it, so the
        # keys of stored runs stay valid.
        key = f"{key}:{self.kernel}" if self.kernel else key
        return key if self.metric == "time" else f"{key}@{self.metric}"

    @property
    def form_kernel(self) -> str:
        """The form with its kernel or variant where it has one (``attention[flash]``,
        ``cumsum[staged]``): one curve of the scaling wing, one label in every table."""
        tags = [t for t in (self.kernel, self.variant) if t]
        return f"{self.form}[{','.join(tags)}]" if tags else self.form

    def label(self) -> str:
        extra = "" if self.precision == "ieee" else f" {self.precision}"
        extra += "" if self.input == "normal" else f" {self.input}"
        return f"{self.backend} {self.form_kernel} {self.B}x{self.T}x{self.C} {self.dtype}{extra}"


#: The names of the case's fields, which a ``Row`` forwards to its case.
CASE_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Case))


def known_kernels() -> tuple[str, ...]:
    """Every kernel some registered backend offers for some form, in registry order."""
    return tuple(dict.fromkeys(k for cls in REGISTRY.values() for ks in cls.form_kernels.values() for k in ks))


def backend_kernels(backend: str, form: str, requested: tuple[str, ...]) -> tuple[str, ...]:
    """The kernels a sweep runs ``form`` with on ``backend``: ("",) for a form without kernels.

    Of the ``requested`` kernels (empty: the library's own choice, listed first),
    those the backend offers for the form; none when it offers none of them.
    """
    offered = REGISTRY[backend].form_kernels.get(form, ())
    if not offered:
        return ("",)
    return tuple(k for k in requested if k in offered) if requested else offered[:1]


def known_variants() -> tuple[str, ...]:
    """Every variant name some registered backend offers for some form, in registry order."""
    return tuple(dict.fromkeys(v for cls in REGISTRY.values() for vs in cls.form_variants.values() for v in vs))


def variant_form_names() -> tuple[str, ...]:
    """Every ``form[variant]`` some registered backend offers: what ``--forms`` takes beside the forms."""
    return tuple(
        dict.fromkeys(f"{f}[{v}]" for cls in REGISTRY.values() for f, vs in cls.form_variants.items() for v in vs)
    )


def split_form(name: str) -> tuple[str, str]:
    """``cumsum[staged]`` -> (``cumsum``, ``staged``); ``cumsum`` -> (``cumsum``, "")."""
    form, bracket, rest = name.partition("[")
    return (form, rest[:-1]) if bracket and rest.endswith("]") else (name, "")


def backend_variants(backend: str, form: str, requested: tuple[str, ...] | None) -> tuple[str, ...]:
    """The variants a sweep runs ``form`` with on ``backend``: "" (the idiom) first, always.

    ``requested`` None runs every variant the backend offers for the form; a tuple
    runs those of its names the backend offers (empty: the idiom alone).
    """
    offered = tuple(REGISTRY[backend].form_variants.get(form, {}))
    return ("", *(v for v in offered if requested is None or v in requested))


@dataclass(frozen=True)
class SweepSpec:
    """The cross product a run covers; ``cases()`` expands it in run order."""

    backends: tuple[str, ...] = tuple(REGISTRY)
    forms: tuple[str, ...] = FORM_NAMES
    sizes: tuple[Shape, ...] = ((4, 8, 2),)
    dtypes: tuple[str, ...] = ("float32",)
    precisions: tuple[str, ...] = ("ieee",)
    inputs: tuple[str, ...] = ("normal",)
    #: Kernels for the forms that have them (``--attention-kernels``); each backend
    #: runs those it offers. Empty: each library's own choice.
    kernels: tuple[str, ...] = ()
    #: What every case measures: ``time`` or ``instructions`` (``Case.metric``).
    metric: str = "time"
    #: Variants run beside each form's idiom (``--variants``): None every variant a
    #: backend offers, a tuple those named (empty: idioms only). A form given as
    #: ``cumsum[staged]`` runs that variant alone, without its idiom.
    variants: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; choose from {', '.join(METRICS)}")
        for label, values, known in (
            ("backend", self.backends, tuple(REGISTRY)),
            ("form", tuple(split_form(f)[0] for f in self.forms), form_names()),
            ("dtype", self.dtypes, DTYPES),
            ("precision", self.precisions, PRECISIONS),
            ("input", self.inputs, (*INPUT_KINDS, FILE_INPUT)),
        ):
            if not values:
                raise ValueError(f"no {label} given")
            for v in values:
                if v not in known:
                    raise ValueError(f"unknown {label} {v!r}; choose from {', '.join(known)}")
        known = known_kernels()
        for k in self.kernels:
            if k not in known:
                raise ValueError(f"unknown kernel {k!r}; choose from {', '.join(known)}")
        known = known_variants()
        for v in (*(self.variants or ()), *(split_form(f)[1] for f in self.forms)):
            if v and v not in known:
                raise ValueError(f"unknown variant {v!r}; choose from {', '.join(known)}")
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
            Case(b, f, *s, dtype=d, precision=p, input=i, kernel=k, variant=v, metric=self.metric)
            for b in self.backends
            for s in sizes
            for d in self.dtypes
            for p in self.precisions
            for i in self.inputs
            for f, vs in self._forms_and_variants(b)
            for k in backend_kernels(b, f, self.kernels)
            for v in vs
        ]

    def _forms_and_variants(self, backend: str) -> list[tuple[str, tuple[str, ...]]]:
        """Each form with the variants ``backend`` runs it as; a ``form[variant]`` entry that
        the backend does not offer runs nothing there."""
        out: list[tuple[str, tuple[str, ...]]] = []
        for name in self.forms:
            form, only = split_form(name)
            offered = REGISTRY[backend].form_variants.get(form, {})
            out.append(
                (form, ((only,) if only in offered else ()) if only else backend_variants(backend, form, self.variants))
            )
        return out


def parse_sizes(text: str) -> tuple[Shape, ...]:
    """``4x8x2,8x256x64`` and preset names, comma separated, into shapes; ValueError if malformed."""
    sizes: list[Shape] = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        if item in PRESETS:
            sizes.extend(PRESETS[item])
            continue
        parts = item.lower().split("x")
        if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(
                f"bad size {item!r}: expected BxTxC with positive integers (e.g. 4x8x2) "
                f"or a preset ({', '.join(PRESETS)})"
            )
        shape = (int(parts[0]), int(parts[1]), int(parts[2]))
        if min(shape) < 1:
            raise ValueError(f"bad size {item!r}: every dimension must be at least 1")
        sizes.append(shape)
    if not sizes:
        raise ValueError("no sizes given")
    return tuple(dict.fromkeys(sizes))


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
    profile_dir: str = ""  # ``--profile``: traces of extra calls after timing go here (suite.profiling)
    # Contention (suite.contention): the policy for a case measured while other
    # processes competed for its cores, and the bound on waiting for quiet.
    on_contention: str = field(default_factory=default_policy)
    contention_wait_s: float = 20.0
    # Rounds: each case measured in this many fresh worker processes, interleaved
    # across the sweep (suite.session.run_cases), pooled into one row (suite.rounds).
    rounds: int = 1
    # The machine canary (suite.canary): a row is ``drifted`` when the canary's speed
    # moved by more than this fraction from run start; 0 turns the canary off.
    drift_limit: float = DRIFT_LIMIT
    # Fleet (suite.fleet): the Ray cluster that places the cases (auto, local,
    # ray://HOST:PORT, HOST:PORT); "" runs them on this machine.
    cluster: str = ""
    # Counted runs (``--metric instructions``, suite.count_runner): the folder their
    # callgrind files go to (``<out>/counts``); "" keeps none.
    counts_dir: str = ""
    # Isolation (suite.isolation): the cores a worker is pinned to (AUTO: all this
    # process may use but one, which the harness keeps; 0: all; N: the last N, the
    # harness keeping the rest) and the steps
    # taken (pin, quiet, passive).
    worker_cores: int = AUTO
    isolation: tuple[str, ...] = DEFAULT_STEPS
    # Lockstep (suite.lockstep, ``suite run --lockstep``): the conductor's SOCKET#NAME; the
    # case samples by turns with the other sides of a ``suite ab`` round. "" samples alone.
    lockstep: str = ""
    # Placement (suite.placement, ``suite run --input-offset``): the timed input's byte offset
    # within its page, or RANDOM (-1): drawn afresh in each worker process, so per round.
    input_offset: int = RANDOM
