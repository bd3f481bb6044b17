"""Inputs, the float64 reference, and the tolerances results are held to.

Every result is compared with ``reference(x)`` computed in float64 from the very
input the backend received (after its rounding to the case dtype), so input
rounding is never counted as the backend's error.

Tolerances bound the relative norm error ``||y - ref|| / ||ref||``:

========  =========  ==============================================================
dtype     precision  tolerance
========  =========  ==============================================================
float64   ieee       ``5 * eps64 * sqrt(T)``
float32   ieee       ``5 * eps32 * sqrt(T)`` (1.7e-6 at T=8, 3.8e-5 at T=4096)
float32   tf32       ``2e-3 + 5 * eps32 * sqrt(T)``: TF32 keeps 10 mantissa bits
                     (unit roundoff 4.9e-4); TF32-rounded inputs emulated on the
                     CPU err by 2.9e-4 (tests/test_reference.py; not yet measured
                     on a GPU), far above any float32 tolerance
float16   ieee       ``1e-2``
bfloat16  ieee       ``4e-2``
========  =========  ==============================================================

Accumulation error of a length-T sum grows like ``eps * sqrt(T)`` for random
rounding, hence the factor for float32/64; the factor 5 leaves room for the
backends' summation orders without admitting TF32 (each run's worst error as a
fraction of its tolerance is in its report's summary: results/reference-cpu). For
float16 and bfloat16 the rounding of every output dominates and the tolerance is
a flat multiple of the unit roundoff.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Input kinds: ``normal`` is seeded standard normal; ``offset`` adds 1e4 to it, a
#: large common offset under which prefix-sum cancellation error grows.
INPUT_KINDS: tuple[str, ...] = ("normal", "offset")
#: The input kind of a case whose input is a user's array (``check --input-file``).
FILE_INPUT = "file"
OFFSET = 1e4
DEFAULT_SEED = 1337

_EPS = {
    "float64": float(np.finfo(np.float64).eps),
    "float32": float(np.finfo(np.float32).eps),
}
_FLAT = {
    ("float32", "tf32"): 2e-3,
    ("float16", "ieee"): 1e-2,
    ("bfloat16", "ieee"): 4e-2,
}


class InputError(ValueError):
    """The input cannot be used: wrong shape, or NaN/Inf values."""


def make_input(shape: tuple[int, int, int], kind: str = "normal", seed: int = DEFAULT_SEED) -> np.ndarray:
    """A float64 input of ``shape``; backends round it to their dtype."""
    if kind not in INPUT_KINDS:
        raise InputError(f"unknown input kind {kind!r}; choose from {', '.join(INPUT_KINDS)}")
    x = np.random.default_rng(seed).standard_normal(shape)
    if kind == "offset":
        x = x + OFFSET
    return x


def load_input(path: str | Path) -> np.ndarray:
    """A user's (B, T, C) array from a ``.npy`` file, validated."""
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot load {path} as a .npy array: {e}") from None
    validate_input(x)
    return np.asarray(x, dtype=np.float64)


def validate_input(x: np.ndarray) -> None:
    """Refuse inputs no backend should see: not (B, T, C), empty, or not finite."""
    if x.ndim != 3:
        raise InputError(f"input must have shape (B, T, C); got {x.ndim} dimensions {x.shape}")
    if 0 in x.shape:
        raise InputError(f"input has an empty dimension: shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise InputError(f"input must be floating point; got {x.dtype}")
    finite = np.isfinite(x)
    if not finite.all():
        bad = int(x.size - finite.sum())
        kinds = [k for k, m in (("NaN", np.isnan(x)), ("Inf", np.isinf(x))) if m.any()]
        raise InputError(f"input holds {bad} non-finite values ({'/'.join(kinds)}); refusing to run")


def reference(x: np.ndarray) -> np.ndarray:
    """Causal mean in float64: cumsum along T divided by the count."""
    x64 = np.asarray(x, dtype=np.float64)
    T = x64.shape[1]
    return np.cumsum(x64, axis=1) / np.arange(1, T + 1, dtype=np.float64).reshape(1, T, 1)


def tolerance(dtype: str, precision: str, T: int) -> float:
    """The relative norm error allowed for ``dtype`` under ``precision`` at length T."""
    if (dtype, precision) in _FLAT:
        base = _FLAT[(dtype, precision)]
        return base + (5 * _EPS["float32"] * math.sqrt(T) if precision == "tf32" else 0.0)
    if precision != "ieee" or dtype not in _EPS:
        raise ValueError(f"no tolerance defined for dtype {dtype} with precision {precision}")
    return 5 * _EPS[dtype] * math.sqrt(max(T, 1))


@dataclass(frozen=True)
class Agreement:
    """How one result compares with the reference."""

    rel_err: float
    max_abs_err: float
    tol: float
    nonfinite: int

    @property
    def passed(self) -> bool:
        return self.nonfinite == 0 and self.rel_err <= self.tol

    def describe(self) -> str:
        if self.nonfinite:
            return f"{self.nonfinite} non-finite values in the result"
        verdict = "within" if self.passed else "exceeds"
        return f"relative error {self.rel_err:.2e} {verdict} tolerance {self.tol:.2e}"


def compare(result: np.ndarray, ref: np.ndarray, tol: float) -> Agreement:
    """Relative norm error, max abs error and non-finite count of ``result``."""
    y = np.asarray(result, dtype=np.float64)
    if y.shape != ref.shape:
        raise ValueError(f"result shape {y.shape} differs from reference {ref.shape}")
    finite = np.isfinite(y)
    nonfinite = int(y.size - finite.sum())
    diff = np.where(finite, y - ref, 0.0)
    norm = float(np.linalg.norm(ref))
    rel = float(np.linalg.norm(diff)) / norm if norm > 0 else float(np.linalg.norm(diff))
    if nonfinite:
        rel = math.inf
    max_abs = float(np.abs(diff).max()) if nonfinite == 0 else math.inf
    return Agreement(rel_err=rel, max_abs_err=max_abs, tol=tol, nonfinite=nonfinite)
