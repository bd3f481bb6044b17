"""``run``: check and time a sweep; write CSV, JSON and the markdown report."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from backends import REGISTRY
from backends._common import HostBackend
from suite import machine
from suite.canary import DRIFT_LIMIT
from suite.cases import Case
from suite.cli._args import (
    UsageError,
    counted_device,
    fraction,
    metric_arg,
    options_from,
    positive,
    spec_from,
    sweep_args,
)
from suite.cli.progress import Progress
from suite.contention import POLICIES, default_policy
from suite.count_runner import COUNTS_DIR
from suite.counting import MISSING_VALGRIND, valgrind
from suite.lockstep import parse_address
from suite.placement import RANDOM, parse_offset
from suite.profiling import PROFILES_DIR
from suite.report.markdown import write_report
from suite.results import CSV_NAME, FAILED_STATUSES, JSON_NAME, REPORT_NAME, ResultsError
from suite.session import Session
from suite.track.config import DEFAULT_ALPHA, CompareError, load_config, rounds_warning

#: Rounds per case of ``suite run`` (and so of ``nox -s bench``): results/tuning/rounds-default.md.
DEFAULT_ROUNDS = 2
#: Seconds of sampling per case (split over the rounds); why 0.2: results/tuning/sweep-budget.md.
DEFAULT_BUDGET = 0.2


def add_parser(sub: Any) -> None:
    p = sub.add_parser("run", help="check and time a sweep; write CSV, JSON and markdown")
    sweep_args(p, "default", "normal")
    metric_arg(p)
    p.add_argument("--out", type=Path, default=Path("results/local"), help="output folder; default results/local")
    p.add_argument("--resume", action="store_true", help="continue the run in --out, skipping finished cases")
    p.add_argument(
        "--target-ci",
        type=fraction,
        default=0.02,
        help="stop sampling when the median's 95%% CI is within this fraction; default 0.02",
    )
    p.add_argument(
        "--budget",
        type=positive(float),
        default=DEFAULT_BUDGET,
        help=f"seconds of sampling per case at most, split over its rounds; default {DEFAULT_BUDGET}",
    )
    p.add_argument("--min-samples", type=positive(int), default=5, help="samples before the CI may stop; default 5")
    p.add_argument("--warmup", type=positive(float), default=0.05, help="seconds of warm-up per case; default 0.05")
    p.add_argument(
        "--cold-cache",
        action="store_true",
        help="flush the GPU L2 before every call, one call per sample (refused when every backend runs on the CPU)",
    )
    p.add_argument("--device-events", action="store_true", help="time with CUDA events where the backend has them")
    p.add_argument(
        "--rounds",
        type=positive(int),
        default=None,
        help="measure each case in this many fresh worker processes, interleaved across the sweep, "
        f"pooled into one row; default {DEFAULT_ROUNDS}",
    )
    p.add_argument(
        "--on-contention",
        choices=POLICIES,
        default=default_policy(),
        help="a case measured while other processes competed for its cores: wait (bounded) and re-measure, "
        "flag it, or fail the run (exit 1) if it stays contended; default wait ($CAUSAL_BENCH_ON_CONTENTION)",
    )
    p.add_argument(
        "--contention-wait",
        type=positive(float),
        default=20.0,
        help="seconds a contended case may wait for the machine to quiet down; default 20",
    )
    p.add_argument(
        "--drift-limit",
        type=drift_limit,
        default=DRIFT_LIMIT,
        help="mark a row drifted when the machine canary (a fixed copy and matmul timed between cases) ran "
        f"this fraction faster or slower than at run start; 0 turns the canary off; default {DRIFT_LIMIT}",
    )
    p.add_argument(
        "--lockstep",
        type=lockstep_address,
        default="",
        metavar="SOCKET#NAME",
        help="time the one case by turns with the other sides of a lockstep (suite.lockstep), one sample a "
        "turn, joining the conductor listening on SOCKET as NAME; `suite ab` passes it, with --rounds 1",
    )
    p.add_argument(
        "--input-offset",
        type=input_offset,
        default=RANDOM,
        metavar="{random,BYTES}",
        help="where the timed input starts within its page (suite.placement): random (a cache-line offset "
        "drawn afresh in each worker process, so per round, so that 4K aliasing between input and output "
        "averages out over rounds instead of biasing a whole revision) or BYTES, a multiple of 64 below "
        "4096; `suite ab` passes one drawn offset to both sides of a round; default random (counted: 0)",
    )
    p.add_argument(
        "--cluster",
        type=cluster_address,
        default=None,
        help="run the sweep on a Ray cluster, one case per node at a time: auto (the cluster this machine "
        "joined with `ray start`), local (a one-node cluster started here), ray://HOST:PORT or HOST:PORT; "
        "needs the fleet extra",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="after each case's timed calls, trace extra calls (torch.profiler, jax.profiler or cProfile) "
        f"into <out>/{PROFILES_DIR}/; the timings are unchanged",
    )
    p.add_argument(
        "--no-ceilings",
        action="store_true",
        help="skip measuring copy bandwidth and matmul rates (no bound and ceiling_frac columns)",
    )


def drift_limit(text: str) -> float:
    """A drift limit: a fraction in [0, 1), 0 for no canary."""
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--drift-limit: expected a fraction (0.1 means 10%), got {text!r}") from None
    if not 0 <= value < 1:
        raise UsageError(f"--drift-limit: expected a fraction in [0, 1) (0 turns the canary off), got {text!r}")
    return value


def can_flush(backend: str, device: str) -> bool:
    """Whether ``backend`` may have a device cache to flush (``--cold-cache``), judged without importing it."""
    cls = REGISTRY.get(backend)
    return cls is not None and not issubclass(cls, HostBackend) and device != "cpu" and bool(machine.gpu_info())


def lockstep_address(text: str) -> str:
    """``--lockstep``: SOCKET#NAME ("" for none: argparse passes the default through here too)."""
    if not text:
        return text
    try:
        parse_address(text)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return text


def input_offset(text: str) -> int:
    """``--input-offset``: random or a cache-line offset within a page."""
    try:
        return parse_offset(text)
    except ValueError as e:
        raise UsageError(str(e)) from None


def cluster_address(text: str) -> str:
    """``--cluster``: auto, local, ray://HOST:PORT or HOST:PORT."""
    host, _, port = text.removeprefix("ray://").rpartition(":")
    if text in ("auto", "local") or (host and port.isdigit()):
        return text
    raise UsageError(f"--cluster: expected auto, local, ray://HOST:PORT or HOST:PORT, got {text!r}")


def join_cluster(address: str) -> bool:
    """Join ``--cluster`` before anything is written (one line and exit 2 when it cannot be used)."""
    if not address:
        return False
    from suite import fleet

    try:
        return fleet.open_cluster(address)
    except fleet.FleetError as e:
        raise UsageError(str(e)) from None


def warn_rounds(rounds: int | None) -> int:
    """The rounds to run; a warning line first when ``--rounds`` was given too few to reach the gate's alpha."""
    if rounds is None:
        return DEFAULT_ROUNDS  # a table sweep, not a gate: the default is sized for time (rounds-default.md)
    try:
        alpha = load_config(None).strictest_alpha()
    except CompareError:
        alpha = DEFAULT_ALPHA  # `compare` reports a broken config; `run` does not need it
    if warning := rounds_warning(rounds, alpha):
        print(f"{warning} (when these runs are compared)", file=sys.stderr)
    return rounds


def run(args: argparse.Namespace) -> int:
    counted_device(args)
    args.rounds = warn_rounds(args.rounds)
    spec = spec_from(args)
    options = dataclasses.replace(
        options_from(args), drift_limit=args.drift_limit, lockstep=args.lockstep, input_offset=args.input_offset
    )
    if options.lockstep and (args.rounds != 1 or options.cluster or len(spec.cases()) != 1):
        raise UsageError(
            "--lockstep times one case in one round on this machine: select one case, use --rounds 1, no --cluster"
        )
    if spec.metric == "instructions":
        if options.cluster:
            raise UsageError("--metric instructions runs on this machine; drop --cluster")
        options = dataclasses.replace(options, counts_dir=str((args.out / COUNTS_DIR).resolve()))
        if valgrind() is None:
            print(f"warning: {MISSING_VALGRIND}; every counted case is written as skipped", file=sys.stderr)
    if args.profile:
        options = dataclasses.replace(options, profile_dir=str((args.out / PROFILES_DIR).resolve()))
    if options.timer.cold_cache and not any(can_flush(b, options.device) for b in spec.backends):
        raise UsageError("--cold-cache: no requested backend has a device cache to flush here (all run on the CPU)")
    out: Path = args.out
    own_cluster = join_cluster(options.cluster)
    session = Session(out, resume=args.resume)
    try:
        session.open()
    except ResultsError as e:
        raise UsageError(str(e)) from None
    session.machine_state = machine.machine_state(options.threads)
    if (warning := machine.busy_warning(session.machine_state)) and not args.quiet:
        print(warning, file=sys.stderr)
    shown: list[Progress] = []

    def progress_for(cases: Sequence[Case]) -> Progress:
        shown.append(Progress(cases, options, args.quiet))
        return shown[-1]

    try:
        session.run(
            spec,
            options,
            progress_for=progress_for,
            final=lambda folder, meta, rows: write_report(folder, meta, rows),
        )
    finally:
        for p in shown:
            p.close()
        if own_cluster:
            from suite.fleet import close_cluster

            close_cluster()
    rows = session.rows
    if session.interrupted:
        print(f"interrupted: {len(rows)} rows kept in {out}; continue with --resume", file=sys.stderr)
        return 130
    print(f"wrote {out / CSV_NAME}, {out / JSON_NAME}, {out / REPORT_NAME}")
    bad = [r for r in rows if r.status in FAILED_STATUSES]
    for r in bad:
        print(f"{r.status}: {r.key}: {r.reason}", file=sys.stderr)
    contended = [r for r in rows if r.contended]
    if contended:
        what = "fails the run (--on-contention fail)" if options.on_contention == "fail" else "marked in the report"
        print(f"{len(contended)} of {len(rows)} rows measured under contention: {what}", file=sys.stderr)
    return 1 if bad or (contended and options.on_contention == "fail") else 0
