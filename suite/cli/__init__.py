"""The command line: ``python -m suite COMMAND``, the commands listed in :data:`COMMANDS`.

One module per command, each with ``add_parser(sub)`` and ``run(args) -> int``.
Exit status: 0 success; 1 something disagreed or failed (a mismatch, an error or
timeout row, a regression); 2 bad arguments or unreadable files (one line on
stderr, nothing written); 130 interrupted (finished rows and a partial report
are kept). SIGTERM is taken as Ctrl-C (``suite.procgroup.Interrupted``), and the
commands that start processes (``run``, ``ab``, ``gate``, ``bisect``) stop them, and
their children, on the way out.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from suite.cli import (
    ab,
    backends,
    bisect,
    check,
    compare,
    dashboard,
    export,
    gate,
    history,
    merge,
    report,
    run,
    selftest,
)
from suite.cli._args import Parser, UsageError
from suite.procgroup import sigterm_interrupts

#: The commands, in the order ``--help`` lists them.
COMMANDS: dict[str, ModuleType] = {
    "run": run,
    "check": check,
    "report": report,
    "backends": backends,
    "selftest": selftest,
    "compare": compare,
    "export": export,
    "history": history,
    "ab": ab,
    "merge": merge,
    "bisect": bisect,
    "dashboard": dashboard,
    "gate": gate,
}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m suite", description="causal-bench: causal averaging across NumPy, PyTorch and JAX")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        command: Callable[[argparse.Namespace], int] = COMMANDS[args.command].run
        with sigterm_interrupts():  # SIGTERM takes Ctrl-C's path: children stopped, files kept
            return command(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


__all__ = ["COMMANDS", "UsageError", "build_parser", "main"]
