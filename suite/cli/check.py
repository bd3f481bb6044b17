"""``check``: the agreement matrix, every form against the float64 reference, nothing timed."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from suite.cli._args import UsageError, options_from, spec_from, sweep_args
from suite.cli.progress import Progress
from suite.reference import InputError, load_input
from suite.results import FAILED_STATUSES, STATUSES
from suite.session import run_cases


def add_parser(sub: Any) -> None:
    p = sub.add_parser("check", help="the agreement matrix: every form against the float64 reference")
    sweep_args(p, "check", "normal,offset")
    p.add_argument("--input-file", type=Path, default=None, help="check this .npy array (B, T, C) instead")


def run(args: argparse.Namespace) -> int:
    if args.input_file is not None:
        try:
            x = load_input(args.input_file)
        except InputError as e:
            raise UsageError(str(e)) from None
        args.sizes, args.inputs = (tuple(x.shape),), ("file",)
    spec = spec_from(args)
    options = options_from(args)
    cases = spec.cases()
    rows = list(run_cases(cases, options, lambda r: None, Progress(cases, options, args.quiet)))
    print(
        f"{'backend':<14} {'form':<16} {'size':<12} {'dtype':<9} {'prec':<5} {'input':<7} "
        f"{'rel.err':>9} {'max abs':>9} {'tol':>9}  verdict"
    )
    for r in rows:
        verdict = {"ok": "pass", "mismatch": "FAIL"}.get(r.status, r.status)
        note = f"  ({r.reason})" if r.status != "ok" and r.reason else ""
        print(
            f"{r.backend:<14} {r.case.form_kernel:<16} {f'{r.B}x{r.T}x{r.C}':<12} "
            f"{r.dtype:<9} {r.precision:<5} {r.input:<7} "
            f"{r.rel_err:>9.2e} {r.max_abs_err:>9.2e} {r.tol:>9.2e}  {verdict}{note}"
        )
    counts = {s: sum(r.status == s for r in rows) for s in STATUSES}
    print(", ".join(f"{n} {s}" for s, n in counts.items() if n))
    return 1 if any(r.status in FAILED_STATUSES for r in rows) else 0
