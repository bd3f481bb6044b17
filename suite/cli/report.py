"""``report``: rebuild report.md and its plots from stored results, without re-running."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from suite.cli._args import load, prepare_out
from suite.report.markdown import write_report
from suite.results import REPORT_NAME


def add_parser(sub: Any) -> None:
    p = sub.add_parser("report", help="rebuild report.md from stored results")
    p.add_argument("results", type=Path, help="a results folder, .json or .csv")
    p.add_argument("--out", type=Path, default=None, help="where to write the markdown; default beside the results")
    p.add_argument("--no-plots", action="store_true", help="write the markdown only, no plots/ folder")


def run(args: argparse.Namespace) -> int:
    meta, rows = load(args.results)
    target = args.out or (args.results if args.results.is_dir() else args.results.parent) / REPORT_NAME
    if target.is_dir():
        target = target / REPORT_NAME
    prepare_out(target.parent)
    written = write_report(target.parent, meta, rows, plots=not args.no_plots, name=target.name)
    plots = f" and {len(written.plots)} plot files in {target.parent / 'plots'}" if written.plots else ""
    print(f"wrote {target}{plots}")
    if written.note and not args.no_plots:
        print(written.note, file=sys.stderr)
    return 0
