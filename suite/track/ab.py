"""A/B in one job: two revisions (or two environments) measured interleaved, case by case.

On a shared runner the machine drifts: neighbours come and go, clocks ramp,
caches warm. Measuring all of base and then all of head lets that drift land on
one side only and read as a regression. Here every case is measured in rounds,
base and head alternating in ABBA order (round ``r`` of case ``i`` starts with
base when ``i + r`` is even), each measurement a fresh ``python -m suite run``
process for that one case inside the side's own checkout. Drift then hits both
sides alike, and so does process-to-process luck (memory layout, which core),
because every side gets several processes. A timed round runs its two sides in
**lockstep** (:func:`run_lockstep`, ``suite.lockstep``): both processes alive at once,
one sample each by turns, ABBA, so even a speed change inside a round lands on both
(``--design ABBA``, or a side whose revision predates ``--lockstep``, runs one side's
process after the other's instead). Both sides of a timed round place their input at the
same page offset, drawn per round from ``--seed`` (``suite run --input-offset``,
``suite.placement``), so 4K aliasing is luck the rounds average, not a bias one revision's
heap carries into all its processes. The rounds of one side are pooled
into one row per case (``suite.rounds.merge_rows``, which ``suite run --rounds``
uses too) and the two sides are compared with ``suite.track.compare``. A counted
round's callgrind file is copied into its side's folder (:func:`write_side`), so the
stored rows name files that exist there and ``compare`` lists the grown functions.
Counted rounds (``--metric instructions``) run both sides at once
(:func:`run_sides_together`): a count does not move with what runs beside it (no
false alarm in 20 A/A comparisons with a CPU hog on the other core,
results/gatebench/power/counts-load0.md), and on two cores that halves the gate's
counted part. Timed rounds never time two things at once: in lockstep only the side whose
turn it is works.

Every round's process runs in a process group of its own (``suite.procgroup``): when
``ab`` is interrupted (Ctrl-C, SIGTERM) or a round times out, the round's ``suite run``
and its workers (valgrind's included) are stopped and waited for, and the caller keeps
the rounds already finished (``interleave(into=...)``, :func:`complete`).

For revisions, ``suite.track.worktrees`` checks both out as detached git worktrees in a
temporary folder and removes them afterwards; :func:`interleave` only needs a
folder and an environment per side, so the gate's own benchmark
(``scripts/gatebench.py``) uses it with one checkout and two environments.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends import REGISTRY
from suite import machine, placement, procgroup
from suite.cases import Case
from suite.count_runner import COUNTS_DIR
from suite.counting import COUNTED
from suite.format import format_count, format_seconds
from suite.isolation import AUTO, DEFAULT_STEPS
from suite.lockstep import Conductor
from suite.results import (
    CSV_NAME,
    JSON_NAME,
    ResultsError,
    Row,
    load_run,
    write_csv,
    write_json,
)
from suite.rounds import merge_rows
from suite.track.worktrees import ABError

SIDES = ("base", "head")


@dataclass(frozen=True)
class Side:
    """Where one side runs: its checkout and extra environment variables."""

    name: str
    cwd: Path
    env: Mapping[str, str] = field(default_factory=dict)
    label: str = ""


def case_flags(case: Case) -> list[str]:
    """``python -m suite run`` flags that select exactly this case.

    A variant is named as ``--forms cumsum[staged]`` (the variant alone); the idiom of
    a form that has variants on the backend adds ``--variants none``. A kernel other
    than the library's own choice is named with ``--attention-kernels``.
    """
    form = f"{case.form}[{case.variant}]" if case.variant else case.form
    flags = [
        "--backends",
        case.backend,
        "--forms",
        form,
        "--sizes",
        f"{case.B}x{case.T}x{case.C}",
        "--dtypes",
        case.dtype,
        "--precisions",
        case.precision,
        "--inputs",
        case.input,
    ]
    adapter = REGISTRY.get(case.backend)
    if adapter is None:
        return flags
    if not case.variant and adapter.form_variants.get(case.form):
        flags += ["--variants", "none"]
    if case.kernel and case.kernel != adapter.default_kernel(case.form):
        flags += ["--attention-kernels", case.kernel]
    return flags


#: A flag for ``suite run`` and its value (None for a switch).
Flag = tuple[str, str | None]
#: The flag that makes a round counted (``--metric instructions``).
METRIC_FLAG = "--metric"


def run_flags(args: Any) -> list[Flag]:
    """The ``suite run`` flags every round gets, from ``suite ab``'s parsed arguments."""
    flags: list[Flag] = [
        ("--budget", repr(args.budget)),
        ("--target-ci", repr(args.target_ci)),
        ("--min-samples", str(args.min_samples)),
        ("--warmup", repr(args.warmup)),
        ("--device", args.device),
        ("--seed", str(args.seed)),
        ("--timeout", repr(args.timeout)),
        ("--compile-limit", repr(args.compile_limit)),
        # Ceilings are measured per process and do not enter the comparison.
        ("--no-ceilings", None),
        # Each subprocess is one round; the rounds are interleaved here, ABBA.
        ("--rounds", "1"),
    ]
    if args.threads is not None:
        flags.append(("--threads", str(args.threads)))
    if getattr(args, "metric", "time") != "time":
        flags.append((METRIC_FLAG, args.metric))
    if args.no_isolate:
        flags.append(("--no-isolate", None))
    # Passed on only when not the default: a revision older than these flags runs its defaults.
    if getattr(args, "worker_cores", AUTO) != AUTO:
        flags.append(("--worker-cores", str(args.worker_cores)))
    steps = tuple(getattr(args, "isolation", DEFAULT_STEPS))
    if steps != DEFAULT_STEPS:
        flags.append(("--isolation", ",".join(steps) or "none"))
    return flags


_HELP: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}


def supported_flags(side: Side, flags: Sequence[Flag]) -> tuple[list[str], list[str]]:
    """The flags this side's ``suite run`` knows, as argv, and the names it does not know.

    An older revision may lack a newer option; it runs without it rather than fail.
    """
    cache_key = (str(side.cwd), tuple(sorted(side.env.items())))
    if cache_key not in _HELP:
        _HELP[cache_key] = _run(side, ["run", "--help"], timeout_s=120).stdout
    help_text = _HELP[cache_key]
    argv: list[str] = []
    dropped: list[str] = []
    for name, value in flags:
        if name not in help_text:
            dropped.append(name)
            continue
        argv += [name] if value is None else [name, value]
    return argv, dropped


def _env(side: Side) -> dict[str, str]:
    env = dict(os.environ)
    env.update(side.env)
    # The side's own code first, whatever this interpreter has installed.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(side.cwd), env.get("PYTHONPATH", "")) if p)
    return env


def _run(side: Side, argv: Sequence[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    """``python -m suite ARGV`` in the side's checkout, in a process group that is stopped on any way out."""
    try:
        return procgroup.run([sys.executable, "-m", "suite", *argv], cwd=side.cwd, env=_env(side), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ABError(f"{side.name}: `suite {' '.join(argv[:1])}` did not finish in {timeout_s:.0f} s") from None
    except OSError as e:
        raise ABError(f"{side.name}: cannot start {sys.executable}: {e}") from None


def _side_run(side: Side, flags: Sequence[str], out: Path) -> list[str]:
    return ["run", *flags, "--out", str(out), "--quiet"]


def _loaded(
    side: Side, flags: Sequence[str], out: Path, done: subprocess.CompletedProcess[str]
) -> tuple[dict[str, Any], list[Row]]:
    if done.returncode not in (0, 1):  # 1: a case failed, which its row says
        tail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise ABError(f"{side.name} ({side.label or side.cwd}): `suite run {' '.join(flags)}` failed: {tail}")
    try:
        return load_run(out)
    except ResultsError as e:
        raise ABError(f"{side.name}: {e}") from None


def run_side(side: Side, flags: Sequence[str], out: Path, timeout_s: float) -> tuple[dict[str, Any], list[Row]]:
    """One ``python -m suite run`` in the side's checkout; its metadata and rows."""
    return _loaded(side, flags, out, _run(side, _side_run(side, flags, out), timeout_s))


def run_sides_together(
    runs: Sequence[tuple[Side, Sequence[str], Path]], timeout_s: float
) -> list[tuple[dict[str, Any], list[Row]]]:
    """:func:`run_side` of several sides at once (counted rounds: a count does not move with the
    load beside it); each side's metadata and rows, in order. Any way out stops them all."""
    jobs: list[procgroup.Job] = [
        ([sys.executable, "-m", "suite", *_side_run(side, flags, out)], side.cwd, _env(side))
        for side, flags, out in runs
    ]
    try:
        done = procgroup.run_together(jobs, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        names = " and ".join(side.name for side, _, _ in runs)
        raise ABError(f"{names}: `suite run` did not finish in {timeout_s:.0f} s") from None
    except OSError as e:
        raise ABError(f"cannot start {sys.executable}: {e}") from None
    return [_loaded(side, flags, out, d) for (side, flags, out), d in zip(runs, done, strict=True)]


@dataclass
class SideResult:
    """One side's rounds, by case key, as they arrive."""

    side: Side
    meta: dict[str, Any] = field(default_factory=dict)
    rounds: dict[str, list[Row]] = field(default_factory=dict)
    run_ids: list[str] = field(default_factory=list)
    #: How the rounds were measured: ``lockstep`` (sample by sample, ``suite.lockstep``) or ``ABBA``.
    design: str = ""
    #: Each timed round's ``--input-offset`` (``suite.placement``), in the order run; empty when counted.
    input_offsets: list[int] = field(default_factory=list)

    def add(self, meta: dict[str, Any], rows: Sequence[Row], folder: Path | None = None) -> None:
        """One round's run; ``folder``, where it was written: its rows' callgrind files are named absolutely."""
        if not self.meta:
            self.meta = meta
        self.run_ids.append(str(meta.get("run_id", "")))
        for r in rows:
            if folder is not None and r.counts and not Path(r.counts).is_absolute():
                r = dataclasses.replace(r, counts=str((folder / r.counts).absolute()))
            self.rounds.setdefault(r.key, []).append(r)

    def merged(
        self, extra_meta: Mapping[str, Any], keys: Collection[str] | None = None
    ) -> tuple[dict[str, Any], list[Row]]:
        """The rounds of each case (of ``keys``, default all) pooled into one row, and the side's metadata."""
        run_id = machine.new_run_id()
        rows = [
            dataclasses.replace(merge_rows(rs), run_id=run_id)
            for key, rs in self.rounds.items()
            if keys is None or key in keys
        ]
        meta = {
            **self.meta,
            "run_id": run_id,
            "ab": {
                "side": self.side.name,
                "label": self.side.label,
                "runs": self.run_ids,
                **({"input_offsets": self.input_offsets} if self.input_offsets else {}),
                **extra_meta,
            },
        }
        return meta, rows


Progress = Callable[[str], None]


def interleave(
    sides: tuple[Side, Side],
    groups: Sequence[Sequence[str]],
    run_flags: Sequence[Flag],
    rounds: int,
    work: Path,
    timeout_s: float = 600.0,
    progress: Progress | None = None,
    into: tuple[SideResult, SideResult] | None = None,
    lockstep: bool = True,
) -> tuple[SideResult, SideResult]:
    """Run every group of cases ``rounds`` times per side, sides alternating ABBA.

    ``groups`` are the case-selecting flags of each subprocess (one case each in
    ``suite ab``); ``run_flags`` are added to every run (timer budget and so on)
    where the side's ``suite run`` knows them. Each round is written under ``work``,
    where its callgrind files stay (the rows name them absolutely) until
    :func:`write_side` copies them. ``into``: the results to fill, which the caller
    still holds when an interruption (Ctrl-C, SIGTERM) ends the loop early; the round
    under way is stopped with its process group (``suite.procgroup``). A counted round
    (``--metric instructions`` in ``run_flags``) runs its two sides at once. A timed round
    runs its two sides in lockstep (:func:`run_lockstep`) when ``lockstep`` and both sides'
    ``suite run`` know ``--lockstep``; otherwise one after the other. The design used is
    each result's ``design``.
    """
    if rounds < 1:
        raise ABError("rounds must be at least 1")
    results = into or (SideResult(sides[0]), SideResult(sides[1]))
    argv: list[list[str]] = []
    for side in sides:
        known, dropped = supported_flags(side, run_flags)
        argv.append(known)
        if dropped and progress:
            progress(f"{side.name} ({side.label or side.cwd}) does not know {', '.join(dropped)}; runs without")
    counted = (METRIC_FLAG, COUNTED) in run_flags
    if lockstep and not counted:
        lockstep = all(supported_flags(side, [(LOCKSTEP_FLAG, "")])[0] for side in sides)
        if not lockstep and progress:
            progress(f"a side's `suite run` does not know {LOCKSTEP_FLAG}: rounds one side after the other (ABBA)")
    design = "lockstep" if lockstep and not counted else "ABBA"
    for res in results:
        res.design = design
    step = _lockstep_step(run_flags)
    # A timed round's input placement, drawn from the seed and the same for both sides (suite.placement).
    placements = placement.offsets(int(dict(run_flags).get("--seed") or 0), len(groups) * rounds)
    placed = [[] if counted else supported_flags(side, [(INPUT_OFFSET_FLAG, "0")])[0] for side in sides]
    if not counted and not all(placed) and progress:
        progress(f"a side's `suite run` does not know {INPUT_OFFSET_FLAG}: its inputs lie where its heap puts them")
    for i, group in enumerate(groups):
        for r in range(rounds):
            order = (0, 1) if (i + r) % 2 == 0 else (1, 0)
            offset = placements[i * rounds + r]
            at = [[INPUT_OFFSET_FLAG, str(offset)] if placed[s] else [] for s in (0, 1)]
            runs = [
                (s, sides[s], [*group, *argv[s], *at[s]], work / sides[s].name / f"group{i:04d}-round{r}")
                for s in order
            ]
            if counted:  # counts do not move with what runs beside them: both sides at once
                got = run_sides_together([(side, flags, out) for _, side, flags, out in runs], timeout_s)
            elif design == "lockstep":  # both alive, one sample each by turns
                got = run_lockstep([(side, flags, out) for _, side, flags, out in runs], step, timeout_s)
            else:  # timed: one side at a time, nothing beside it
                got = [run_side(side, flags, out, timeout_s) for _, side, flags, out in runs]
            for (s, side, _, out), (meta, rows) in zip(runs, got, strict=True):
                results[s].add(meta, rows, out)
                if at[s]:
                    results[s].input_offsets.append(offset)
                if progress:
                    shown = ", ".join(f"{row.key}: {_brief(row)}" for row in rows)
                    progress(f"[{i + 1}/{len(groups)}] round {r + 1}/{rounds} {side.name}: {shown}")
    return results


#: The ``suite run`` flag that joins a lockstep (``suite.lockstep``).
LOCKSTEP_FLAG = "--lockstep"
#: The ``suite run`` flag that places a round's input (``suite.placement``).
INPUT_OFFSET_FLAG = "--input-offset"


@dataclass(frozen=True)
class Step:
    """How a lockstep round samples: each side's sampling seconds, and samples at least."""

    budget_s: float = 0.5
    min_samples: int = 10


def _lockstep_step(flags: Sequence[Flag]) -> Step:
    values = dict(flags)
    budget = values.get("--budget")
    samples = values.get("--min-samples")
    return Step(float(budget) if budget else Step.budget_s, int(samples) if samples else Step.min_samples)


def run_lockstep(
    runs: Sequence[tuple[Side, Sequence[str], Path]], step: Step, timeout_s: float
) -> list[tuple[dict[str, Any], list[Row]]]:
    """One timed round of one case with every side alive at once, sampling by turns (``suite.lockstep``).

    Each side is its own ``suite run --rounds 1 --lockstep SOCKET#NAME`` (its own checkout, worker
    and agreement check); the sides are named in ``runs``' order, which the first sample keeps
    (ABBA after that). The canary is off in these runs (``--drift-limit 0``): its looks after the
    case would run beside the other side's last samples, and the pairing is what cancels drift.
    A side that fails before sampling (a mismatch, a skip) stops the others, whose rows say so.
    """
    names = [side.name for side, _, _ in runs]
    with Conductor(names, step.budget_s, min_samples=step.min_samples) as conductor:
        jobs = [
            (side, [*flags, LOCKSTEP_FLAG, conductor.address(name), "--drift-limit", "0"], out)
            for name, (side, flags, out) in zip(names, runs, strict=True)
        ]
        try:
            return run_sides_together(jobs, timeout_s)
        finally:
            conductor.cancel()


def _brief(row: Row) -> str:
    if row.status != "ok":
        return row.status
    return f"{format_count(row.instructions)} instr" if row.case.metric == COUNTED else format_seconds(row.median_s)


def complete(results: tuple[SideResult, SideResult], rounds: int) -> list[str]:
    """The cases measured in all ``rounds`` on both sides (an interrupted job keeps these only)."""
    base, head = results
    return [k for k, rs in base.rounds.items() if len(rs) >= rounds and len(head.rounds.get(k, ())) >= rounds]


def write_side(folder: Path, meta: dict[str, Any], rows: Sequence[Row]) -> list[Row]:
    """The pooled rows of one side as an ordinary run folder (CSV and JSON); the rows as written.

    A row whose callgrind file is named absolutely (a round's, in ``interleave``'s work
    folder) gets it copied to ``folder/counts/`` and named relative to ``folder``, as
    ``suite run`` names it, so ``compare`` of the side folders lists the grown functions.
    """
    folder.mkdir(parents=True, exist_ok=True)
    kept = [_keep_counts(folder, r) for r in rows]
    write_csv(folder / CSV_NAME, kept)
    write_json(folder / JSON_NAME, meta, kept)
    return kept


def _keep_counts(folder: Path, row: Row) -> Row:
    if not row.counts or not Path(row.counts).is_absolute():
        return row
    source = Path(row.counts)
    target = folder / COUNTS_DIR / source.name
    try:
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(source, target)
    except OSError:  # the round's file is gone: say nothing rather than name a missing file
        return dataclasses.replace(row, counts="")
    return dataclasses.replace(row, counts=f"{COUNTS_DIR}/{source.name}")
