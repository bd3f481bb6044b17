"""A test-only backend that misbehaves on request, registered as a plugin.

``CAUSAL_BENCH_BACKENDS=tests.fake_backends:FaultyBackend`` adds it to the
registry in every process, worker processes included. It computes like the NumPy
adapter; environment variables (read when a case is built, so the worker sees
what the test set) make chosen cases fail the way real frameworks do:

- ``FAULTY_KILL_T``: the worker SIGKILLs itself while building a case of this T
  (a segfault or an out-of-memory kill, as far as the parent can tell);
- ``FAULTY_HANG_T``: building a case of this T hangs;
- ``FAULTY_RAISE_T``: building a case of this T raises;
- ``FAULTY_DELAY_S``: every build sleeps this long first (a slow run to interrupt);
- ``FAULTY_LOG``: every build appends ``T`` to this file (who ran what, and how often).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Callable, Mapping
from itertools import repeat
from pathlib import Path
from typing import Any, ClassVar

from backends._common import HostBackend, forms_table
from backends.base import Backend, Built
from backends.numpy_backend import NumpyBackend, loop, matrix
from suite.reference import reference, tolerance

PLUGIN = "tests.fake_backends:FaultyBackend"


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None


class FaultyBackend(NumpyBackend):
    name = "faulty"
    #: Its hooks wrap ``build``: it runs the idioms only, no variant.
    form_variants: ClassVar[Mapping[str, Mapping[str, Callable[..., Any]]]] = {}

    def build(self, form: str, x: Any, precision: str) -> Built:
        T = x.shape[1]
        if log := os.environ.get("FAULTY_LOG"):
            with open(log, "a") as f:
                f.write(f"{form} {T}\n")
        time.sleep(float(os.environ.get("FAULTY_DELAY_S", "0")))
        if _env_int("FAULTY_KILL_T") == T:
            os.kill(os.getpid(), signal.SIGKILL)
        if _env_int("FAULTY_HANG_T") == T:
            time.sleep(3600)
        if _env_int("FAULTY_RAISE_T") == T:
            raise RuntimeError(f"deliberate failure at T={T}")
        return super().build(form, x, precision)


# -- SlowedNumpy: a known extra fraction of work, the compare gate's test subject ----------
#
# ``CAUSAL_BENCH_BACKENDS=tests.fake_backends:SlowedNumpy`` replaces ``numpy`` under the
# same name, so its cases keep their keys and compare against plain runs.
# ``CAUSAL_BENCH_SLOWDOWN`` (a fraction, default 0) is read when a case is built: the
# adapter times the plain kernel there (the fastest of short blocks of calls) and every
# call then does the kernel and spins for that fraction of its time. With 0 the call path
# is the same (the spin returns at once), so runs at 0 and 0.10 differ in the injected
# work alone. Used by ``scripts/gatebench.py``.

SLOWED_PLUGIN = "tests.fake_backends:SlowedNumpy"
SLOWDOWN_ENV = "CAUSAL_BENCH_SLOWDOWN"


def spin(seconds: float) -> None:
    """Busy-wait ``seconds`` (a sleep would give the core away and oversleep)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def kernel_seconds(fn: Any, min_block_s: float = 2e-3, blocks: int = 7) -> float:
    """Seconds per call of the fastest of ``blocks`` blocks of at least ``min_block_s`` each.

    The fastest block is the kernel with the least interference from neighbours;
    the timed median carries some, so the injected work is at most the nominal
    fraction of what the timer sees (a detection figure is then conservative).
    """
    fn()
    number = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        if time.perf_counter() - t0 >= min_block_s:
            break
        number *= 2
    per_call = []
    for _ in range(blocks):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        per_call.append((time.perf_counter() - t0) / number)
    return min(per_call)


class SlowedNumpy(NumpyBackend):
    name = "numpy"
    #: Its hooks wrap ``build``: it runs the idioms only, no variant.
    form_variants: ClassVar[Mapping[str, Mapping[str, Callable[..., Any]]]] = {}

    #: A fixed planted fraction (the paired conditions below); None: read ``CAUSAL_BENCH_SLOWDOWN``.
    fraction: ClassVar[float | None] = None

    def build(self, form: str, x: Any, precision: str) -> Built:
        built = super().build(form, x, precision)
        fraction = self.fraction if self.fraction is not None else float(os.environ.get(SLOWDOWN_ENV, "0") or 0)
        if fraction < 0:
            raise ValueError(f"{SLOWDOWN_ENV} must be a fraction >= 0, got {fraction}")
        plain = built.fn
        extra = fraction * kernel_seconds(plain) if fraction else 0.0

        def slowed() -> Any:
            out = plain()
            spin(extra)
            return out

        return Built(slowed, built.compile_s, f"{built.notes} slowed by {fraction:.0%}".strip())


# -- Paired conditions: every condition of the gate's power run as its own backend ----------
#
# ``scripts/gatebench.py --mode pairs`` runs these four in one ``suite run --rounds R``:
# each round measures every case under every condition, each in its own fresh worker,
# seconds apart, so round ``i`` of one condition pairs with round ``i`` of another as
# ``suite ab`` pairs base and head. Two copies with nothing planted give the A/A pairs.


class PairA(SlowedNumpy):
    name = "pair-a"
    fraction = 0.0


class PairB(SlowedNumpy):
    name = "pair-b"
    fraction = 0.0


class Slowed10(SlowedNumpy):
    name = "slowed-10"
    fraction = 0.10


class Slowed25(SlowedNumpy):
    name = "slowed-25"
    fraction = 0.25


#: Condition backend -> planted fraction, in the order ``--mode pairs`` names them.
PAIRED_CONDITIONS = {c.name: float(c.fraction or 0.0) for c in (PairA, PairB, Slowed10, Slowed25)}
PAIRED_PLUGINS = ",".join(f"tests.fake_backends:{c.__name__}" for c in (PairA, PairB, Slowed10, Slowed25))


# -- NotedNumpy: NumPy whose row says where its input lay within its page ------------------
#
# ``CAUSAL_BENCH_BACKENDS=tests.fake_backends:NotedNumpy`` replaces ``numpy`` with the same
# idioms whose built notes (the row's reason) are ``input at N``, N the input's offset within
# its page as the timed calls see it (``suite.placement``).

NOTED_PLUGIN = "tests.fake_backends:NotedNumpy"


class NotedNumpy(NumpyBackend):
    name = "numpy"
    form_variants: ClassVar[Mapping[str, Mapping[str, Callable[..., Any]]]] = {}

    def build(self, form: str, x: Any, precision: str) -> Built:
        built = super().build(form, x, precision)
        return Built(built.fn, built.compile_s, f"input at {x.ctypes.data % 4096}")


# -- OffByTolerance: a finite result wrong by a chosen multiple of the tolerance ------------
#
# ``CAUSAL_BENCH_BACKENDS=tests.fake_backends:OffByTolerance`` adds the backend ``off``.
# ``CAUSAL_BENCH_OFF_BY`` (a multiple of the case's tolerance, default 0) is read when a
# case is built: every call returns the float64 reference of the input scaled by
# ``1 + OFF_BY * tol``, whose relative norm error is ``OFF_BY * tol`` (finite, no
# overflow). 0.9 must pass the agreement check, 1.1 and 10 must be a ``mismatch``.

OFF_PLUGIN = "tests.fake_backends:OffByTolerance"
OFF_BY_ENV = "CAUSAL_BENCH_OFF_BY"


class OffByTolerance(NumpyBackend):
    name = "off"
    #: Its hooks wrap ``build``: it runs the idioms only, no variant.
    form_variants: ClassVar[Mapping[str, Mapping[str, Callable[..., Any]]]] = {}

    def build(self, form: str, x: Any, precision: str) -> Built:
        built = super().build(form, x, precision)
        tol = tolerance(self.dtype_name(x), precision, x.shape[1])
        wrong = reference(x) * (1 + float(os.environ.get(OFF_BY_ENV, "0") or 0) * tol)
        return Built(lambda: wrong.copy(), built.compile_s, built.notes)


# -- Planted: a known extra amount of counted work, the counted gate's test subject ----------
#
# ``CAUSAL_BENCH_BACKENDS=tests.fake_backends:Planted`` adds the backend ``planted``: NumPy's
# adapter (its idioms and its variants), whose every call also runs ``sum(repeat(0, steps))``,
# deterministic extra work that costs the same number of instructions per step whatever
# the case (no allocation: ``repeat`` hands out one object, and the sum stays 0, a cached
# int). ``CAUSAL_BENCH_PLANT_FILE`` (read when a case is built) names a JSON file from
# plant ids (``plant_id``: the case key without its backend and what follows its
# precision) to steps, ``"*"`` for any case not named; unset, 0. With 0 the call path is
# the same (the sum runs over nothing), so the base and a planted run differ in the steps
# alone; a file, not the steps themselves, so that the environment of a planted run is as
# long as that of a plain one (a longer environment moves what the interpreter allocates,
# results/tuning/counting.md). The steps are sized by count, not by a model:
# ``scripts/gatebench.py`` counts each case with 0 steps and with ``CALIBRATION_STEPS``,
# whose difference is exactly the instructions of that many steps (counts are
# deterministic and the cost linear), and plants ``round(fraction * base / per_step)``
# steps in each case.

PLANTED_PLUGIN = "tests.fake_backends:Planted"
PLANT_FILE_ENV = "CAUSAL_BENCH_PLANT_FILE"
#: Steps of the calibration run: enough that the per-step cost is read to 1e-4 or better.
CALIBRATION_STEPS = 20_000


def write_plant(folder: Path, plant: Mapping[str, int]) -> Path:
    """``plant`` as a file in ``folder`` whose name has the same length whatever the plant."""
    text = json.dumps(dict(plant), sort_keys=True)
    path = folder / f"plant-{hashlib.sha256(text.encode()).hexdigest()[:12]}.json"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def plant_id(key: str) -> str:
    """The plant's name for a case key: ``planted:cumsum[staged]:4x16x32:float32:ieee:normal@instructions``
    -> ``cumsum[staged]:4x16x32:float32:ieee``."""
    return ":".join(key.split("@")[0].split(":")[1:5])


def plant_steps(plant: Mapping[str, int], key: str) -> int:
    """Steps planted in the case of ``key``: its own entry, else ``"*"``, else 0."""
    return int(plant.get(plant_id(key), plant.get("*", 0)))


def steps_for(fraction: float, base: float, per_step: float) -> int:
    """Steps that add ``fraction`` of ``base`` instructions at ``per_step`` instructions a step."""
    return max(0, round(fraction * base / per_step)) if per_step > 0 else 0


class Planted(NumpyBackend):
    name = "planted"

    def build_case(self, form: str, x: Any, precision: str, kernel: str = "", variant: str = "") -> Built:
        built = super().build_case(form, x, precision, kernel, variant)
        where = os.environ.get(PLANT_FILE_ENV)
        plant = json.loads(Path(where).read_text(encoding="utf-8")) if where else {}
        label = f"{form}[{variant}]" if variant else form
        B, T, C = x.shape
        key = f"{self.name}:{label}:{B}x{T}x{C}:{self.dtype_name(x)}:{precision}"
        plain, steps = built.fn, plant_steps(plant, key)
        if steps < 0:
            raise ValueError(f"{PLANT_FILE_ENV}: steps must be >= 0, got {steps} for {plant_id(key)}")

        def planted() -> Any:
            out = plain()
            sum(repeat(0, steps))
            return out

        return Built(planted, built.compile_s, f"{built.notes} planted {steps} steps".strip())


# -- FakeGpuBackend: a backend whose cases a fleet places on a GPU, with no GPU ----------------
#
# ``CAUSAL_BENCH_BACKENDS=tests.fake_backends:FakeGpuBackend`` adds ``fake-gpu``. It is not
# a ``HostBackend``, so on a cluster that offers a ``GPU`` resource (a fake one will do:
# ``num_gpus=1`` on a node) every case of it asks Ray for a GPU (``suite.fleet.uses_gpu``).
# It computes with NumPy on the host; each row's reason names the ``CUDA_VISIBLE_DEVICES``
# its worker process saw, so a test sees the GPU Ray gave the case reach the worker.

FAKE_GPU_PLUGIN = "tests.fake_backends:FakeGpuBackend"


class FakeGpuBackend(Backend):
    name = "fake-gpu"
    module = "numpy"
    extra = "numpy"
    forms = forms_table(loop, matrix)

    def device(self) -> str:
        return "cpu"

    def versions(self) -> dict[str, str]:
        return {}

    to_device = HostBackend.to_device
    to_numpy = HostBackend.to_numpy
    sync = HostBackend.sync

    def _build(self, form: str, x: Any, precision: str) -> Built:
        impl = self.forms[form]
        time.sleep(float(os.environ.get("FAKE_GPU_DELAY_S", "0")))
        return Built(lambda: impl(x), notes=f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')}")
