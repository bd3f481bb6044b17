"""``selftest``: the harness measured against timeit and torch.utils.benchmark."""

from __future__ import annotations

import argparse
from typing import Any

from suite.cli._args import positive


def add_parser(sub: Any) -> None:
    p = sub.add_parser("selftest", help="the harness measured against timeit and torch.utils.benchmark")
    p.add_argument("--repeat", type=positive(int), default=3, help="rounds of the comparison; default 3")


def run(args: argparse.Namespace) -> int:
    from suite.selftest import main  # imports torch: only when asked

    return main(args.repeat)
