"""``export``: stored results as JSON for github-action-benchmark or Bencher dashboards."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from suite.cli._args import UsageError, load, prepare_out
from suite.report.export import FORMATS, export_text, exported_rows
from suite.results import write_atomic


def add_parser(sub: Any) -> None:
    p = sub.add_parser("export", help="stored results for github-action-benchmark or Bencher dashboards")
    p.add_argument("results", type=Path, help="a results folder, .json or .csv")
    p.add_argument("--format", required=True, choices=FORMATS, help="the target format")
    p.add_argument("--out", type=Path, default=None, help="the JSON file to write; default standard output")


def run(args: argparse.Namespace) -> int:
    _, rows = load(args.results)
    text = export_text(rows, args.format)
    left_out = len(rows) - len(exported_rows(rows))
    if args.out is None:
        print(text, end="")
    else:
        prepare_out(args.out.parent if str(args.out.parent) else Path("."))
        if args.out.is_dir():
            raise UsageError(f"--out {args.out} is a folder; name the JSON file to write")
        write_atomic(args.out, text)
        print(f"wrote {args.out} ({len(rows) - left_out} cases)", file=sys.stderr)
    if left_out:
        print(f"{left_out} cases without a time (not ok) left out", file=sys.stderr)
    return 0
