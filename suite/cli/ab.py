"""``ab``: two git revisions measured interleaved, case by case, then compared."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from suite import machine, procgroup
from suite.cli._args import (
    UsageError,
    check_isolation,
    counted_device,
    fraction,
    metric_arg,
    positive,
    prepare_out,
    spec_from,
    sweep_args,
    threshold_args,
)
from suite.cli.compare import compare_config, emit
from suite.count_runner import START_S
from suite.counting import COUNTED, SLOWDOWN
from suite.results import Row
from suite.track import ab, worktrees
from suite.track.compare import CompareError, compare_rows
from suite.track.config import rounds_warning
from suite.track.counted import add_grown_functions

#: Rounds a side, interleaved in pairs: 7 is the fewest whose exact signed-rank test can
#: reach alpha = 0.01 (1/128), and 8 still reach it with an outlying pair set aside (one
#: slow process cannot veto a verdict: ``suite.stats.set_aside_farthest``);
#: results/tuning/gate-statistics.md.
AB_ROUNDS = 8
#: How timed rounds are measured (``suite.track.ab.interleave``).
DESIGNS = ("lockstep", "ABBA")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("ab", help="two git revisions measured interleaved, case by case, then compared")
    p.add_argument("base_rev", help="base revision (commit, branch, tag)")
    p.add_argument("head_rev", help="head revision")
    sweep_args(p, "default", "normal")
    metric_arg(p)
    p.add_argument("--repo", type=Path, default=Path("."), help="the git repository; default .")
    p.add_argument("--out", type=Path, default=Path("results/ab"), help="output folder; default results/ab")
    p.add_argument(
        "--rounds",
        type=positive(int),
        default=AB_ROUNDS,
        help=f"processes per side per case, alternating; default {AB_ROUNDS} (the fewest that reach alpha 0.01 with "
        "an outlying pair set aside)",
    )
    p.add_argument(
        "--budget", type=positive(float), default=0.5, help="seconds of sampling per case and round; default 0.5"
    )
    p.add_argument("--target-ci", type=fraction, default=0.01, help="timer stopping rule; default 0.01")
    p.add_argument("--min-samples", type=positive(int), default=10, help="samples per round at least; default 10")
    p.add_argument("--warmup", type=positive(float), default=0.05, help="seconds of warm-up per case; default 0.05")
    p.add_argument(
        "--design",
        choices=DESIGNS,
        default="lockstep",
        help="timed rounds: lockstep (both sides alive, one sample each by turns, ABBA: drift within a round "
        "cancels) or ABBA (one side's process after the other's); default lockstep, ABBA where a side's "
        "revision predates it",
    )
    threshold_args(p)


def run(args: argparse.Namespace) -> int:
    counted_device(args)
    check_isolation(args.worker_cores, args.isolation, args.threads, not args.no_isolate)
    spec = spec_from(args)
    config = compare_config(args)
    cases = spec.cases()
    groups = [ab.case_flags(c) for c in cases]
    flags = ab.run_flags(args)
    counted = spec.metric == COUNTED

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr)

    if not counted and (warning := rounds_warning(args.rounds, config.strictest_alpha(), paired=True)):
        print(warning, file=sys.stderr)  # before anything runs, even with --quiet

    rounds = 1 if counted else args.rounds  # counts are deterministic: one process a side
    job = machine.new_run_id()  # both sides carry it: their rounds pair up (suite.track.verdicts.interleaved)
    extra: dict[str, Any] = {"rounds": rounds, "cases": len(cases), "job": job}
    interrupted = False
    try:
        with worktrees.worktrees(args.repo, {"base": args.base_rev, "head": args.head_rev}) as trees:
            sides = tuple(
                ab.Side(name, path, label=f"{rev} ({commit[:10]})")
                for name, rev, (path, commit) in (
                    ("base", args.base_rev, trees["base"]),
                    ("head", args.head_rev, trees["head"]),
                )
            )
            prepare_out(args.out)  # once both revisions resolved: a bad one leaves nothing behind
            results = (ab.SideResult(sides[0]), ab.SideResult(sides[1]))
            with tempfile.TemporaryDirectory(prefix="causal-bench-ab-runs-") as work:
                try:
                    ab.interleave(
                        (sides[0], sides[1]),
                        groups,
                        flags,
                        rounds,
                        Path(work),
                        timeout_s=(args.timeout * SLOWDOWN + START_S if counted else args.timeout * 2) + 300,
                        progress=progress,
                        into=results,
                        lockstep=args.design == "lockstep",
                    )
                except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the round under way is stopped already
                    interrupted = True
                # Inside the work folder: the rounds' callgrind files are copied from it.
                extra["design"] = results[0].design or "ABBA"
                with procgroup.signals_held():
                    written = write_sides(
                        args.out, results, extra, ab.complete(results, rounds) if interrupted else None
                    )
    except worktrees.ABError as e:
        raise UsageError(str(e)) from None
    if interrupted:
        done = len(written[0][1])
        print(
            f"interrupted: {done} of {len(cases)} cases measured on both sides kept in {args.out}/base and "
            f"{args.out}/head; no comparison",
            file=sys.stderr,
        )
        return 130
    (base_meta, base_rows), (head_meta, head_rows) = written
    try:
        comparison = compare_rows(base_rows, head_rows, config, base_meta, head_meta)
    except CompareError as e:
        raise UsageError(str(e)) from None
    add_grown_functions(comparison.cases, args.out / "base", args.out / "head")
    return emit(comparison, args.out)


Written = tuple[tuple[dict[str, Any], list[Row]], tuple[dict[str, Any], list[Row]]]


def write_sides(
    out: Path, results: tuple[ab.SideResult, ab.SideResult], extra: dict[str, Any], keys: list[str] | None
) -> Written:
    """Each side's pooled rows (of ``keys``, default all) as ``OUT/base`` and ``OUT/head``; what was written."""
    written = []
    for result in results:
        meta, rows = result.merged(extra, keys)
        if keys is not None:
            meta["interrupted"] = True
        written.append((meta, ab.write_side(out / result.side.name, meta, rows)))
    return written[0], written[1]
