"""When a timing difference counts: thresholds and their TOML configuration.

Thresholds come from ``[tool.causal-bench.compare]`` in ``pyproject.toml`` (see
:func:`load_config`), per backend and per form, a form's setting winning over a
backend's, which wins over the default; the command line wins over the file.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from suite.stats import min_pairs, min_rank_p, min_rounds, min_signed_rank_p

#: Default regression threshold: a case must be more than this fraction slower.
#: 5%, so that 10% slowdowns are caught; measured in results/tuning/compare-threshold.md.
DEFAULT_THRESHOLD = 0.05
#: Default significance level of the Mann-Whitney test. It mostly guards small
#: sample counts (3 against 3 samples can never reach it); for many samples the
#: threshold does the work, since samples of one process are not independent.
DEFAULT_ALPHA = 0.01
#: Default threshold of counted rows (``--metric instructions``): counts are deterministic,
#: so 0.5% more instructions per call is a regression (suite.track.counted).
DEFAULT_COUNT_THRESHOLD = 0.005


class CompareError(Exception):
    """The runs cannot be compared (other machines) or the configuration is bad."""


@dataclass(frozen=True)
class Thresholds:
    """When a difference counts: timings beyond ``1 + threshold`` with ``p`` within ``alpha``
    (``suite.track.compare``); instruction counts beyond ``1 + count_threshold``."""

    threshold: float = DEFAULT_THRESHOLD
    alpha: float = DEFAULT_ALPHA
    count_threshold: float = DEFAULT_COUNT_THRESHOLD


@dataclass(frozen=True)
class CompareConfig:
    """The default thresholds and their per-backend and per-form overrides.

    Each override table may set ``threshold``, ``alpha`` or both; what it leaves
    out comes from the level below (form over backend over default).
    """

    default: Thresholds = field(default_factory=Thresholds)
    backend: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    form: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    source: str = "built-in defaults"

    def for_case(self, backend: str, form: str) -> Thresholds:
        t = self.default
        for table in (self.backend.get(backend, {}), self.form.get(form, {})):
            t = replace(t, **table)
        return t

    def with_cli(
        self, threshold: float | None, alpha: float | None, count_threshold: float | None = None
    ) -> CompareConfig:
        """The command line wins over every level of the file."""
        if threshold is None and alpha is None and count_threshold is None:
            return self
        pairs = (("threshold", threshold), ("alpha", alpha), ("count_threshold", count_threshold))
        given = {k: v for k, v in pairs if v is not None}

        def strip(tables: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
            return {name: {k: v for k, v in t.items() if k not in given} for name, t in tables.items()}

        return CompareConfig(
            replace(self.default, **given), strip(self.backend), strip(self.form), self.source + " + command line"
        )

    def strictest_alpha(self) -> float:
        """The smallest alpha any level of the configuration sets (what the rounds must reach)."""
        tables = [*self.backend.values(), *self.form.values()]
        return min([self.default.alpha, *(t["alpha"] for t in tables if "alpha" in t)])

    def describe(self) -> str:
        d = self.default
        parts = [
            f"slower/faster when every round lies beyond every round of the other side by {d.threshold:.0%} "
            f"and the rank test gives p <= {d.alpha:g} where the rounds can reach it (rounds interleaved in "
            f"pairs by `ab`: the median pair ratio beyond {d.threshold:.0%} and the signed-rank test "
            f"p <= {d.alpha:g}); "
            f"counted instructions beyond {d.count_threshold:.1%}"
        ]
        for kind, tables in (("backend", self.backend), ("form", self.form)):
            for name, t in sorted(tables.items()):
                if t:
                    parts.append(f"{kind} {name}: " + ", ".join(f"{k} {v:g}" for k, v in sorted(t.items())))
        return "; ".join(parts) + f" ({self.source})"


def _check_value(where: str, key: str, value: Any) -> float:
    if key not in ("threshold", "alpha", "count_threshold"):
        raise CompareError(f"{where}: unknown key {key!r} (expected threshold, alpha, count_threshold, backend, form)")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CompareError(f"{where}: {key} must be a number, got {value!r}")
    if key in ("threshold", "count_threshold") and not 0 <= value < 10:
        raise CompareError(f"{where}: {key} must be a fraction in [0, 10) (0.1 means 10%), got {value!r}")
    if key == "alpha" and not 0 < value < 1:
        raise CompareError(f"{where}: alpha must be in (0, 1), got {value!r}")
    return float(value)


def rounds_warning(rounds: int, alpha: float, paired: bool = False) -> str:
    """One line when ``rounds`` a side cannot reach ``alpha`` at the round level, else "".

    The exact rank test of n against n rounds cannot give p below ``1 / C(2n, n)``; below
    the minimum the gate judges on the separation beyond the threshold alone. ``paired``
    (``suite ab``, rounds interleaved in pairs): the signed-rank test of n pairs cannot give
    p below ``2 ** -n``; below the minimum every pair must lie beyond the threshold.
    """
    need = min_pairs(alpha) if paired else min_rounds(alpha)
    if rounds >= need:
        return ""
    if paired:
        return (
            f"warning: {rounds} interleaved pairs cannot reach alpha {alpha:g} (smallest exact p "
            f"{min_signed_rank_p(rounds):.2g}); {need} rounds or more can; with fewer, every pair must lie "
            "beyond the threshold"
        )
    return (
        f"warning: {rounds} rounds a side cannot reach alpha {alpha:g} (smallest exact p "
        f"{min_rank_p(rounds, rounds):.2g}); {need} rounds or more can; with fewer, verdicts rest on "
        "the separation of rounds beyond the threshold alone"
    )


def _overrides(where: str, table: Any, known: Sequence[str] | None) -> dict[str, dict[str, float]]:
    if not isinstance(table, dict):
        raise CompareError(f"{where} must be a table")
    out: dict[str, dict[str, float]] = {}
    for name, sub in table.items():
        if known is not None and name not in known:
            raise CompareError(f"{where}: unknown name {name!r}; choose from {', '.join(known)}")
        if not isinstance(sub, dict):
            raise CompareError(f"{where}.{name} must be a table")
        out[name] = {k: _check_value(f"{where}.{name}", k, v) for k, v in sub.items()}
    return out


def config_from_table(
    table: Mapping[str, Any],
    source: str,
    backends: Sequence[str] | None = None,
    forms: Sequence[str] | None = None,
) -> CompareConfig:
    """Validate a ``[tool.causal-bench.compare]`` table; raise CompareError naming what is wrong."""
    where = f"{source}: [tool.causal-bench.compare]"
    base = {k: _check_value(where, k, v) for k, v in table.items() if k not in ("backend", "form")}
    return CompareConfig(
        default=Thresholds(**base),
        backend=_overrides(f"{where} backend", table.get("backend", {}), backends),
        form=_overrides(f"{where} form", table.get("form", {}), forms),
        source=source,
    )


def load_config(
    path: str | Path | None,
    backends: Sequence[str] | None = None,
    forms: Sequence[str] | None = None,
) -> CompareConfig:
    """Thresholds from a TOML file's ``[tool.causal-bench.compare]`` table.

    ``path`` None means ``./pyproject.toml`` when there is one (and built-in
    defaults otherwise); a given path must exist. For example::

        [tool.causal-bench.compare]
        threshold = 0.05          # 5%
        alpha = 0.01
        count_threshold = 0.005   # counted runs: 0.5% more instructions
        [tool.causal-bench.compare.backend.jax]
        threshold = 0.20
        [tool.causal-bench.compare.form.loop]
        threshold = 0.15

    ``backends`` and ``forms``, where given, are the names an override may use.
    """
    if path is None:
        path = Path("pyproject.toml")
        if not path.is_file():
            return CompareConfig()
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise CompareError(f"cannot read config {p}: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise CompareError(f"config {p} is not valid TOML: {e}") from None
    tool = doc.get("tool", {})
    table = tool.get("causal-bench", {}).get("compare") if isinstance(tool, dict) else None
    if table is None:
        return CompareConfig(source=f"{p} (no [tool.causal-bench.compare]; built-in defaults)")
    if not isinstance(table, dict):
        raise CompareError(f"{p}: [tool.causal-bench.compare] must be a table")
    return config_from_table(table, str(p), backends, forms)
