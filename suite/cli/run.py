"""``run``: check and time a sweep; write CSV, JSON and the markdown report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from suite.cli._args import UsageError, fraction, options_from, positive, spec_from, sweep_args
from suite.cli.progress import Progress
from suite.report.markdown import write_report
from suite.results import CSV_NAME, FAILED_STATUSES, JSON_NAME, REPORT_NAME, ResultsError
from suite.session import Session


def add_parser(sub: Any) -> None:
    p = sub.add_parser("run", help="check and time a sweep; write CSV, JSON and markdown")
    sweep_args(p, "default", "normal")
    p.add_argument("--out", type=Path, default=Path("results/local"), help="output folder; default results/local")
    p.add_argument("--resume", action="store_true", help="continue the run in --out, skipping finished cases")
    p.add_argument(
        "--target-ci",
        type=fraction,
        default=0.02,
        help="stop sampling when the median's 95%% CI is within this fraction; default 0.02",
    )
    p.add_argument(
        "--budget", type=positive(float), default=0.5, help="seconds of sampling per case at most; default 0.5"
    )
    p.add_argument("--min-samples", type=positive(int), default=5, help="samples before the CI may stop; default 5")
    p.add_argument("--warmup", type=positive(float), default=0.05, help="seconds of warm-up per case; default 0.05")
    p.add_argument("--cold-cache", action="store_true", help="flush the GPU L2 before every call")
    p.add_argument("--device-events", action="store_true", help="time with CUDA events where the backend has them")
    p.add_argument(
        "--no-ceilings",
        action="store_true",
        help="skip measuring copy bandwidth and matmul rates (no bound and ceiling_frac columns)",
    )


def run(args: argparse.Namespace) -> int:
    spec = spec_from(args)
    options = options_from(args)
    out: Path = args.out
    session = Session(out, resume=args.resume)
    try:
        session.open()
    except ResultsError as e:
        raise UsageError(str(e)) from None
    session.run(
        spec,
        options,
        progress_for=lambda cases: Progress(cases, options, args.quiet),
        final=lambda folder, meta, rows: write_report(folder, meta, rows),
    )
    rows = session.rows
    if session.interrupted:
        print(f"interrupted: {len(rows)} rows kept in {out}; continue with --resume", file=sys.stderr)
        return 130
    print(f"wrote {out / CSV_NAME}, {out / JSON_NAME}, {out / REPORT_NAME}")
    bad = [r for r in rows if r.status in FAILED_STATUSES]
    for r in bad:
        print(f"{r.status}: {r.key}: {r.reason}", file=sys.stderr)
    return 1 if bad else 0
