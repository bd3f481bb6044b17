"""``bisect``: the first commit between GOOD and BAD where a case got slower."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path
from typing import Any

from backends import DTYPES, PRECISIONS
from suite.cases import Case, SweepSpec
from suite.cli._args import UsageError, fraction, metric_arg, positive, threshold_args
from suite.cli.compare import compare_config
from suite.count_runner import START_S
from suite.counting import COUNTED, SLOWDOWN
from suite.reference import INPUT_KINDS
from suite.track import ab, worktrees
from suite.track import bisect as bisect_mod


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bisect", help="find the first commit between GOOD and BAD where a case got slower")
    p.add_argument("good", help="a revision where the case is fast")
    p.add_argument("bad", help="a later revision where it is slow (GOOD must be its ancestor)")
    p.add_argument(
        "--case",
        required=True,
        help="the case key, backend:form:BxTxC[:dtype[:precision[:input]]] (e.g. numpy:cumsum:8x1024x256)",
    )
    p.add_argument("--repo", type=Path, default=Path("."), help="the git repository (a clean tree); default .")
    p.add_argument("--rounds", type=positive(int), default=2, help="processes per side per probe; default 2")
    p.add_argument("--budget", type=positive(float), default=0.5, help="seconds of sampling per round; default 0.5")
    p.add_argument("--target-ci", type=fraction, default=0.01, help="timer stopping rule; default 0.01")
    p.add_argument("--min-samples", type=positive(int), default=10, help="samples per round at least; default 10")
    p.add_argument("--warmup", type=positive(float), default=0.05, help="seconds of warm-up per round; default 0.05")
    p.add_argument("--timeout", type=positive(float), default=120.0, help="per-case timeout in seconds; default 120")
    p.add_argument("--threads", type=positive(int), default=None, help="CPU threads; default the libraries' own")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    metric_arg(p)
    threshold_args(p)


def parse_case(key: str) -> Case:
    """The one case a key names; UsageError when it names none."""
    parts = key.split(":")
    if len(parts) < 3 or len(parts) > 6:
        raise UsageError(f"--case {key!r} matches no case: expected backend:form:BxTxC[:dtype[:precision[:input]]]")
    defaults = ("float32", "ieee", "normal")
    backend, form, size, *rest = parts
    dtype, precision, input_kind = (*rest, *defaults[len(rest) :])
    dims = size.lower().split("x")
    if len(dims) != 3 or not all(d.isdigit() and int(d) > 0 for d in dims):
        raise UsageError(f"--case {key!r} matches no case: bad size {size!r} (BxTxC)")
    for label, value, known in (("dtype", dtype, DTYPES), ("precision", precision, PRECISIONS)):
        if value not in known:
            raise UsageError(f"--case {key!r} matches no case: unknown {label} {value!r}")
    if input_kind not in INPUT_KINDS:
        raise UsageError(f"--case {key!r} matches no case: unknown input {input_kind!r}")
    try:
        spec = SweepSpec(
            backends=(backend,),
            forms=(form,),
            sizes=((int(dims[0]), int(dims[1]), int(dims[2])),),
            dtypes=(dtype,),
            precisions=(precision,),
            inputs=(input_kind,),
            variants=(),  # ``cumsum`` is the idiom; ``cumsum[staged]`` names the variant
        )
    except ValueError as e:
        raise UsageError(f"--case {key!r} matches no case: {e}") from None
    cases = spec.cases()
    if len(cases) != 1:
        raise UsageError(f"--case {key!r} matches {len(cases)} cases; name one")
    return cases[0]


def run(args: argparse.Namespace) -> int:
    case = dataclasses.replace(parse_case(args.case.removesuffix("@instructions")), metric=args.metric)
    counted = case.metric == COUNTED
    config = compare_config(args)
    try:
        commits = bisect_mod.history(args.repo, args.good, args.bad)
    except bisect_mod.BisectError as e:
        raise UsageError(str(e)) from None
    flags: list[ab.Flag] = [
        ("--budget", repr(args.budget)),
        ("--target-ci", repr(args.target_ci)),
        ("--min-samples", str(args.min_samples)),
        ("--warmup", repr(args.warmup)),
        ("--timeout", repr(args.timeout)),
        ("--no-ceilings", None),
        ("--rounds", "1"),
    ]
    if args.threads is not None:
        flags.append(("--threads", str(args.threads)))
    if counted:
        flags.append(("--metric", case.metric))

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr)

    progress(f"bisecting {case.key} over {len(commits)} commits (about {max(1, len(commits)).bit_length()} probes)")
    try:
        with worktrees.worktrees(args.repo, {"good": args.good}) as trees, tempfile.TemporaryDirectory() as work:
            good_path, good_sha = trees["good"]
            prober = bisect_mod.Prober(
                repo=args.repo,
                good=ab.Side("base", good_path, label=good_sha[:10]),
                case=case,
                flags=flags,
                rounds=1 if counted else args.rounds,  # counts are deterministic
                config=config,
                work=Path(work),
                timeout_s=(args.timeout * SLOWDOWN + START_S if counted else args.timeout * 2) + 300,
            )
            result = bisect_mod.search(commits, prober, progress)
    except (worktrees.ABError, bisect_mod.BisectError) as e:
        raise UsageError(str(e)) from None
    print(result.summary())
    return 0 if result.first_slow is not None else 1
