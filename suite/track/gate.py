"""The CI gate: two revisions counted and timed, one summary, one exit status.

``python -m suite gate BASE HEAD`` (``nox -s gate -- BASE HEAD``) runs ``suite ab`` twice on
the gate set (:data:`GATE_BACKENDS`, :data:`GATE_FORMS`):

1. ``--metric instructions`` at the ``gate`` size preset, one round a side: executed instructions per call under
   valgrind, deterministic, judged by the counted threshold alone (0.5% by default), so
   a 1% change is caught on a noisy runner;
2. wall-clock at :data:`GATE_TIME_SIZES`, :data:`GATE_ROUNDS` rounds a side in lockstep (round ``i`` of
   base and head alive at once, one sample each by turns, ABBA: ``suite.lockstep``), judged on
   the pairs: each round's median sample ratio, the median over rounds beyond the threshold and
   the exact signed-rank p <= alpha of the pairs left when an outlying one is set aside (8 pairs
   are the fewest that reach alpha = 0.01 so),
   ``suite.track.verdicts.paired_verdict``.

Each ``ab`` writes its side folders under ``OUT/counts`` and ``OUT/time`` (the counted
sides with their callgrind files under ``counts/``); the gate compares them again with the
caller's thresholds, lists for each regressed counted case the functions whose own
instructions grew most (``suite.track.counted.add_grown_functions``), and writes one
markdown summary. Exit status 1 on a regression (or a missing case) in either part, 0
otherwise. The ``ab`` calls go through a :data:`Runner`, so tests inject results without
running anything; the real one runs ``suite ab`` in a process group of its own, stopped
with everything under it when the gate is interrupted (``suite.procgroup``).
Why these rounds and this cost: results/tuning/gate-statistics.md.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from suite import procgroup
from suite.format import markdown_table
from suite.results import ResultsError, load_run
from suite.track.compare import REGRESSIONS, CaseComparison, Comparison, compare_rows
from suite.track.config import CompareConfig
from suite.track.counted import add_grown_functions
from suite.track.render import grown_functions_lines

#: The gate set: CPU backends and forms, counted at the ``gate`` size preset and timed at :data:`GATE_TIME_SIZES`.
GATE_BACKENDS = ("numpy", "torch")
GATE_FORMS = ("cumsum", "matrix", "loop")
#: The wall-clock part's sizes: the larger ``gate`` size alone. Counts, which see code-path
#: changes exactly, cover both sizes; the wall-clock part is for what they cannot see
#: (threads, memory), and one size halves its cost (results/tuning/gate-statistics.md).
GATE_TIME_SIZES = "8x128x256"
#: Wall-clock rounds a side, in pairs: the fewest whose exact signed-rank test reaches alpha = 0.01 with
#: an outlying pair set aside (``suite.stats.set_aside_farthest``).
GATE_ROUNDS = 8
#: Seconds of sampling per case and round of the wall-clock part.
GATE_BUDGET = 0.2
#: The parts of the gate, in the order they run, and their output subfolders.
PARTS = {"counts": "instructions, counted", "time": "wall-clock"}

#: Seconds an interrupted ``suite ab`` gets to stop its round and write what it finished.
AB_GRACE_S = 30.0

#: Runs ``suite ab`` with these arguments; returns (exit status, its last line of stderr).
Runner = Callable[[Sequence[str]], tuple[int, str]]


class GateError(Exception):
    """A part of the gate could not run (its ``ab`` refused the input or failed)."""


@dataclass(frozen=True)
class GateSpec:
    """What the gate measures, and where."""

    base: str
    head: str
    out: Path
    repo: Path = Path(".")
    backends: tuple[str, ...] = GATE_BACKENDS
    forms: tuple[str, ...] = GATE_FORMS
    sizes: str = "gate"
    time_sizes: str = GATE_TIME_SIZES
    rounds: int = GATE_ROUNDS
    budget: float = GATE_BUDGET
    config: Path | None = None

    def ab_argv(self, part: str) -> list[str]:
        """``suite ab`` arguments of one part (``counts`` or ``time``)."""
        argv = [self.base, self.head, "--repo", str(self.repo), "--out", str(self.out / part), "--quiet"]
        sizes = self.sizes if part == "counts" else self.time_sizes
        argv += ["--backends", ",".join(self.backends), "--forms", ",".join(self.forms), "--sizes", sizes]
        argv += ["--device", "cpu"]
        if self.config is not None:
            argv += ["--config", str(self.config)]
        if part == "counts":
            return [*argv, "--metric", "instructions", "--rounds", "1"]
        return [*argv, "--rounds", str(self.rounds), "--budget", repr(self.budget)]


@dataclass
class GateResult:
    """Both parts' comparisons."""

    spec: GateSpec
    parts: dict[str, Comparison] = field(default_factory=dict)
    #: How each part's ``ab`` measured its rounds (its metadata's ``ab.design``).
    designs: dict[str, str] = field(default_factory=dict)

    def exit_code(self) -> int:
        return 1 if any(c.exit_code() for c in self.parts.values()) else 0


def ab_subprocess(argv: Sequence[str]) -> tuple[int, str]:
    """``python -m suite ab ARGV`` in this checkout; the step summary is the gate's to write."""
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"}
    try:
        done = procgroup.run([sys.executable, "-m", "suite", "ab", *argv], env=env, grace_s=AB_GRACE_S)
    except OSError as e:
        return 2, f"cannot start {sys.executable}: {e}"
    lines = done.stderr.strip().splitlines()
    return done.returncode, lines[-1] if lines else ""


def run_gate(
    spec: GateSpec,
    config: CompareConfig,
    runner: Runner = ab_subprocess,
    progress: Callable[[str], None] = lambda line: None,
) -> GateResult:
    """Both parts, counts first; GateError naming the part that could not run."""
    result = GateResult(spec)
    for part, what in PARTS.items():
        progress(f"gate: {what}: suite ab {' '.join(spec.ab_argv(part))}")
        code, last = runner(spec.ab_argv(part))
        if code not in (0, 1):
            raise GateError(f"{what}: suite ab failed (exit {code}): {last or 'no message'}")
        try:
            base_meta, base_rows = load_run(spec.out / part / "base")
            head_meta, head_rows = load_run(spec.out / part / "head")
        except ResultsError as e:
            raise GateError(f"{what}: {e}") from None
        cmp = compare_rows(base_rows, head_rows, config, base_meta, head_meta)
        add_grown_functions(cmp.cases, spec.out / part / "base", spec.out / part / "head")
        result.parts[part] = cmp
        result.designs[part] = str((base_meta.get("ab") or {}).get("design", ""))
    return result


def _design(design: str) -> str:
    if design == "lockstep":
        return "both sides in lockstep (one sample each by turns)"
    return "ABBA (one side's process after the other's)" if design == "ABBA" else "design not recorded"


def _change(c: CaseComparison) -> str:
    return f"{c.ratio - 1:+.1%}" if c.ratio == c.ratio else "-"


def render_summary(result: GateResult) -> str:
    """One markdown summary of both parts: the outcome, counts per verdict, each regression."""
    spec = result.spec
    verdict = "**regression**" if result.exit_code() else "pass"
    lines = [f"## Performance gate: `{spec.base}` -> `{spec.head}`: {verdict}", ""]
    header = ["part", "cases", "slower", "broken", "faster", "same", "inconclusive", "other"]
    body = []
    for part, cmp in result.parts.items():
        n = cmp.counts()
        shown = ("slower", "broken", "faster", "same", "inconclusive")
        other = sum(v for k, v in n.items() if k not in shown)
        body.append([PARTS[part], str(len(cmp.cases)), *(str(n.get(k, 0)) for k in shown), str(other)])
    lines += markdown_table(header, body)
    lines += [
        "",
        f"Gate set: {', '.join(spec.backends)} x {', '.join(spec.forms)}; counts at `{spec.sizes}`, one round a "
        f"side (judged beyond the counted threshold); wall-clock at `{spec.time_sizes}`, {spec.rounds} rounds a "
        f"side, {_design(result.designs.get('time', ''))}, judged in pairs.",
    ]
    for part, cmp in result.parts.items():
        bad = [c for c in cmp.cases if c.verdict in REGRESSIONS]
        if bad:
            lines += ["", f"### Regressions, {PARTS[part]} ({len(bad)})", ""]
            lines += [f"- `{c.key}`: {c.verdict} {_change(c)}" + (f" ({c.note})" if c.note else "") for c in bad]
            lines += grown_functions_lines(bad)
        for w in cmp.warnings:
            lines.append(f"\n> {PARTS[part]}: {w}")
    lines += ["", f"Per-case tables: `{spec.out / 'counts' / 'compare.md'}`, `{spec.out / 'time' / 'compare.md'}`."]
    return "\n".join(lines) + "\n"
