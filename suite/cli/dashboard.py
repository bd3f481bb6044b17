"""``dashboard``: a static page of per-case trends over stored runs, working from disk."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from suite.cli._args import UsageError, positive, threshold_args
from suite.cli.compare import compare_config
from suite.results import ResultsError
from suite.track.dashboard import DEFAULT_LAST
from suite.track.dashboard_page import write_dashboard


def add_parser(sub: Any) -> None:
    p = sub.add_parser("dashboard", help="a static HTML page of per-case trends over stored runs (plotly)")
    p.add_argument("results", type=Path, nargs="+", help="run folders, or folders of run folders (a history)")
    p.add_argument("--out", type=Path, required=True, help="folder for index.html (self-contained, works offline)")
    p.add_argument(
        "--last",
        type=positive(int),
        default=DEFAULT_LAST,
        help=f"newest runs kept per machine; default {DEFAULT_LAST}",
    )
    threshold_args(p)


def run(args: argparse.Namespace) -> int:
    config = compare_config(args)
    try:
        page, data = write_dashboard(args.results, args.out, config, args.last)
    except ResultsError as e:
        raise UsageError(str(e)) from None
    counts = {"run": data["runs"], "case": len(data["cases"]), "machine": len(data["machines"])}
    counts["step change"] = len(data["steps"])
    print(f"wrote {page}: " + ", ".join(f"{n} {what}{'' if n == 1 else 's'}" for what, n in counts.items()))
    return 0
