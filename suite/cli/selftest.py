"""``selftest``: the harness measured against timeit, torch.utils.benchmark and pyperf."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from suite.cli._args import positive


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "selftest", help="the harness measured against timeit, torch.utils.benchmark and pyperf on the default sweep"
    )
    p.add_argument("--out", type=Path, default=None, help="also write the table (markdown) to this file")
    p.add_argument("--threads", type=positive(int), default=None, help="threads for every timer; default every core")


def run(args: argparse.Namespace) -> int:
    from suite.selftest import main  # imports torch: only when asked

    return main(args.out, args.threads)
