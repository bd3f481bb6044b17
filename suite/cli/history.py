"""``history``: per-case trends over the stored runs of one machine; flags steps."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from suite.cli._args import UsageError, positive, prepare_out, threshold_args
from suite.cli.compare import compare_config
from suite.results import ResultsError, write_atomic
from suite.track import history


def add_parser(sub: Any) -> None:
    p = sub.add_parser("history", help="per-case trends over stored runs of one machine; flags steps")
    p.add_argument("results", type=Path, help="a folder of run folders")
    p.add_argument("--out", type=Path, default=None, help="also write history.md and history.csv here")
    p.add_argument("--machine", default=None, help="machine fingerprint; default the newest run's machine")
    p.add_argument("--last", type=positive(int), default=12, help="runs shown as columns in the markdown; default 12")
    threshold_args(p)


def run(args: argparse.Namespace) -> int:
    config = compare_config(args)
    try:
        trend = history.build_history(args.results, config, args.machine)
    except ResultsError as e:
        raise UsageError(str(e)) from None
    markdown = history.render_markdown(trend, last=args.last)
    if args.out is not None:
        prepare_out(args.out)
        write_atomic(args.out / history.MD_NAME, markdown)
        write_atomic(args.out / history.CSV_NAME, history.render_csv(trend))
    print(markdown, end="")
    return 0
