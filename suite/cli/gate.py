"""``gate``: the CI recipe: two revisions counted and timed (``suite ab`` twice), one summary."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from suite.cli._args import UsageError, append_step_summary, positive, prepare_out, threshold_args
from suite.cli.compare import compare_config
from suite.results import write_atomic
from suite.track import gate, worktrees
from suite.track.compare import CompareError
from suite.track.config import rounds_warning

#: The summary's name in the output folder.
SUMMARY_NAME = "gate.md"
#: Injected by tests: how the gate runs ``suite ab``.
RUNNER: gate.Runner = gate.ab_subprocess


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "gate", help="CI gate: instruction counts and wall-clock of two revisions; exit 1 on a regression"
    )
    p.add_argument("base_rev", help="base revision (commit, branch, tag)")
    p.add_argument("head_rev", help="head revision")
    p.add_argument("--repo", type=Path, default=Path("."), help="the git repository; default .")
    p.add_argument(
        "--backends", default=",".join(gate.GATE_BACKENDS), help="the gate set's backends; default %(default)s"
    )
    p.add_argument("--forms", default=",".join(gate.GATE_FORMS), help="the gate set's forms; default %(default)s")
    p.add_argument("--sizes", default="gate", help="the counted part's sizes (BxTxC list or preset); default gate")
    p.add_argument(
        "--time-sizes",
        default=None,
        help=f"the wall-clock part's sizes; default {gate.GATE_TIME_SIZES} (with --sizes given: those sizes)",
    )
    p.add_argument("--out", type=Path, default=Path("results/gate"), help="output folder; default results/gate")
    p.add_argument(
        "--rounds",
        type=positive(int),
        default=gate.GATE_ROUNDS,
        help=f"wall-clock rounds a side; default {gate.GATE_ROUNDS} (the fewest that reach alpha 0.01 with the "
        "farthest pair set aside)",
    )
    p.add_argument(
        "--budget",
        type=positive(float),
        default=gate.GATE_BUDGET,
        help=f"seconds of sampling per case and round; default {gate.GATE_BUDGET}",
    )
    threshold_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress output")


def run(args: argparse.Namespace) -> int:
    config = compare_config(args)
    try:
        for rev in (args.base_rev, args.head_rev):
            worktrees.resolve(args.repo, rev)
    except worktrees.ABError as e:
        raise UsageError(str(e)) from None
    prepare_out(args.out)
    if (warning := rounds_warning(args.rounds, config.strictest_alpha(), paired=True)) and not args.quiet:
        print(warning, file=sys.stderr)
    spec = gate.GateSpec(
        args.base_rev,
        args.head_rev,
        args.out,
        args.repo,
        backends=tuple(b.strip() for b in args.backends.split(",") if b.strip()),
        forms=tuple(f.strip() for f in args.forms.split(",") if f.strip()),
        sizes=args.sizes,
        time_sizes=args.time_sizes or (gate.GATE_TIME_SIZES if args.sizes == "gate" else args.sizes),
        rounds=args.rounds,
        budget=args.budget,
        config=args.config,
    )

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr)

    try:
        result = gate.run_gate(spec, config, RUNNER, progress)
    except (gate.GateError, CompareError) as e:
        raise UsageError(str(e)) from None
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the part under way stopped its rounds and kept what it finished
        print(f"interrupted: no verdict; what the parts finished is kept in {args.out}", file=sys.stderr)
        return 130
    summary = gate.render_summary(result)
    write_atomic(args.out / SUMMARY_NAME, summary)
    print(summary, end="")
    append_step_summary(summary)
    return result.exit_code()
