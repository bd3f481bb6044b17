"""The one results table's schema: ``Row`` (a ``Case`` plus its outcome), its columns and versions.

The schema is versioned (``SCHEMA_VERSION``); every CSV row and every JSON file
carries the version. Older versions (``READABLE_VERSIONS``) load with the columns
they lack at their defaults, and ``upgrade`` maps what their rows meant onto
today's names; a newer or unknown version fails with a message that says so.
The file formats live beside this module, one each (``csv_store``, ``json_store``),
as pytest-benchmark keeps one module per storage.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from suite.cases import CASE_FIELDS, Case

if TYPE_CHECKING:
    from suite.timing import Measurement

SCHEMA_VERSION = 4
#: Versions this causal-bench reads. Version 1 lacks ``bound`` and ``ceiling_frac``;
#: version 2 lacks the rounds, contention, memory, profile, kernel and machine columns;
#: version 3 lacks the variant and metric (case), the within-process spread, the
#: worker's cores, the canary (``drifted``) and the instruction counts. Their rows
#: load with those columns at their defaults and are upgraded to the current
#: version in memory (``upgrade``).
READABLE_VERSIONS: tuple[int, ...] = (1, 2, 3, 4)
#: Rows that older versions stored under a library's name though they measured a
#: hand-tuned implementation: (backend, form) -> (the variant's name, the versions
#: whose rows it was). Loading maps them to the variant, so ``compare`` and
#: ``history`` set them beside the variant's new rows, not the library's idiom.
#: NumPy's ``cumsum`` was a hand-staged row scan in schema 3 (np.cumsum before);
#: Numba's ``cumsum`` and ``loop`` ran in threads (``prange``) since Numba came, in schema 2.
RENAMED_VARIANTS: dict[tuple[str, str], tuple[str, tuple[int, ...]]] = {
    ("numpy", "cumsum"): ("staged", (3,)),
    ("numba", "cumsum"): ("parallel", (2, 3)),
    ("numba", "loop"): ("parallel", (2, 3)),
}
SCHEMA_NAME = "causal-bench/results"
CSV_NAME = "results.csv"
JSON_NAME = "results.json"
REPORT_NAME = "report.md"

#: Every status a row can have. ``ok`` rows are the only timed ones.
STATUSES: dict[str, str] = {
    "ok": "agreed with the reference and was timed",
    "mismatch": "disagreed with the float64 reference beyond the tolerance; not timed",
    "skipped": "not run: backend unavailable, combination unsupported, or a guard refused it",
    "error": "the backend raised, or its worker process died (crash, out-of-memory kill)",
    "timeout": "the case ran past the per-case timeout and its worker was stopped",
}
#: Statuses that fail a run (exit status 1) and a comparison (``broken``).
FAILED_STATUSES = frozenset({"mismatch", "error", "timeout"})


class ResultsError(Exception):
    """A results file is missing, corrupt, truncated or of another schema."""


@dataclass
class Row:
    """One case's outcome: the ``Case`` it measured and what happened. Times are seconds
    per call; NaN where not measured.

    The case's fields read as the row's own (``row.backend``, ``row.T``), forwarded
    to ``case`` as torch.utils.benchmark's ``Measurement`` forwards to its
    ``TaskSpec``; the stored files flatten them into the first columns.
    """

    case: Case
    device: str = ""
    # -- outcome
    status: str = "ok"
    reason: str = ""
    # -- costs outside steady state
    compile_s: float = math.nan
    # -- steady-state statistics
    median_s: float = math.nan
    iqr_s: float = math.nan
    min_s: float = math.nan
    mean_s: float = math.nan
    std_s: float = math.nan
    ci_low_s: float = math.nan
    ci_high_s: float = math.nan
    n_samples: int = 0
    calls_per_sample: int = 0
    stop_reason: str = ""
    unstable: bool = False
    timer: str = ""
    host_median_s: float = math.nan
    cold_cache: bool = False
    samples_s: list[float] = field(default_factory=list)
    # -- agreement
    rel_err: float = math.nan
    max_abs_err: float = math.nan
    tol: float = math.nan
    # -- cost model and achieved rates
    flops: float = math.nan
    bytes: float = math.nan
    gflops: float = math.nan
    gbs: float = math.nan
    # -- roofline (schema 2): ``memory`` or ``compute``, and the achieved fraction
    # of that ceiling as measured at the start of the run (suite.ceilings)
    bound: str = ""
    ceiling_frac: float = math.nan
    # -- environment of the case
    threads: int = 0
    peak_mem_bytes: float = math.nan
    elapsed_s: float = math.nan
    run_id: str = ""
    schema_version: int = SCHEMA_VERSION
    # -- schema 3: rounds. Each round is a fresh worker process; ``samples_round[i]``
    # is the round of ``samples_s[i]``, ``round_spread`` the spread between processes:
    # (max - min) / median of the round medians (``suite.stats.between_spread``).
    rounds: int = 0
    samples_round: list[int] = field(default_factory=list)
    round_spread: float = math.nan
    # -- schema 3: contention. Other processes' CPU (steal time included) while the
    # case sampled, in cores, and whether it competed for the cores the case needs.
    foreign_cpu: float = math.nan
    contended: bool = False
    # -- schema 3: memory measured (host resident-set high-water mark over the case's
    # calls) beside the memory guard's estimate
    peak_rss_bytes: float = math.nan
    est_mem_bytes: float = math.nan
    # -- schema 3: the case's trace (``--profile``), relative to the results folder
    profile: str = ""
    # -- schema 3: the kernel column (the attention form's fused kernel) is the case's
    # ``kernel`` field (``suite.cases.Case``), stored among the case's columns
    # -- schema 3: the machine (fingerprint) and node that measured the row
    machine: str = ""
    node: str = ""
    # -- schema 4: spread where it lives. ``within_spread`` is the noise inside one
    # process: the median over rounds of each round's IQR / median
    # (``suite.stats.within_spread``; ``unstable`` means it exceeds
    # ``suite.timing.UNSTABLE_IQR``, 10%); ``round_spread`` (above) is the spread
    # between processes.
    within_spread: float = math.nan
    # -- schema 4: isolation. The cores the worker was pinned to ("0-1"), as read
    # back inside it.
    cores: str = ""
    # -- schema 4: the machine canary (suite.canary). Its copy and matmul probes'
    # speed beside this case, as a ratio to their run-start values, and whether
    # either was off by more than the run's drift limit.
    canary_copy: float = math.nan
    canary_matmul: float = math.nan
    drifted: bool = False
    # -- schema 4: counted rows (case metric ``instructions``), per call: executed
    # instructions, simulated first-level and last-level cache misses, one
    # estimated-cycles figure (weights in suite.counting), and callgrind's
    # per-function output relative to the results folder.
    instructions: float = math.nan
    l1_misses: float = math.nan
    ll_misses: float = math.nan
    est_cycles: float = math.nan
    counts: str = ""

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the row lacks; ``case`` itself is looked up
        # normally, so an unpickled row half-way built never recurses here.
        if name in CASE_FIELDS:
            return getattr(self.case, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def key(self) -> str:
        return self.case.key

    def to_dict(self) -> dict[str, Any]:
        """The flat record the files store: the case's fields, then the outcome's."""
        outcome = {f.name: getattr(self, f.name) for f in _OUTCOME_FIELDS}
        return {**dataclasses.asdict(self.case), **copy.deepcopy(outcome)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Row:
        case = Case(**{k: d[k] for k in CASE_FIELDS if k in d})
        return cls(case, **{f.name: d[f.name] for f in _OUTCOME_FIELDS if f.name in d})


_OUTCOME_FIELDS = tuple(f for f in dataclasses.fields(Row) if f.name != "case")
COLUMNS: tuple[str, ...] = CASE_FIELDS + tuple(f.name for f in _OUTCOME_FIELDS)
_INT = {"B", "T", "C", "n_samples", "calls_per_sample", "threads", "schema_version", "rounds"}
_BOOL = {"unstable", "cold_cache", "contended", "drifted"}
_INT_LISTS = {"samples_round"}
_FLOAT = {f.name for f in _OUTCOME_FIELDS if f.type == "float"}


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
        "within_spread": m.within_spread,
        "samples_s": list(m.samples),
    }




def unreadable_version(version: object) -> str:
    """The message for a schema version this causal-bench cannot read."""
    readable = ", ".join(str(v) for v in READABLE_VERSIONS)
    try:
        newer = int(str(version)) > SCHEMA_VERSION
    except ValueError:
        newer = False
    hint = ": written by a newer causal-bench; upgrade to read it" if newer else ""
    return f"schema version {version}; this causal-bench reads versions {readable}{hint}"


def upgrade(row: Row, version: int) -> Row:
    """``row``, read from a file of schema ``version``, in today's terms.

    Its missing columns already hold their defaults; a row that an older version
    stored under a library's name while it measured a variant takes the variant's
    name (``RENAMED_VARIANTS``).
    """
    renamed = RENAMED_VARIANTS.get((row.case.backend, row.case.form))
    if renamed is not None and version in renamed[1] and not row.case.variant:
        row.case = dataclasses.replace(row.case, variant=renamed[0])
    row.schema_version = SCHEMA_VERSION
    return row
