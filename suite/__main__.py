"""The command line: ``python -m suite {run,check,report,backends,selftest,compare,export,history,ab}``.

Exit status: 0 success; 1 something disagreed or failed (a mismatch, an error or
timeout row); 2 bad arguments or unreadable files (one line on stderr, nothing
written); 130 interrupted (finished rows and a partial report are kept).
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from backends import DEVICES, DTYPES, FORM_NAMES, PRECISIONS, REGISTRY, get_backend
from backends.base import Ceilings
from suite import machine
from suite.ceilings import HOST_DEVICE, measure_host
from suite.ceilings import from_metadata as ceilings_from_metadata
from suite.ceilings import to_metadata as ceilings_to_metadata
from suite.compare import CompareConfig, CompareError, Comparison, compare_rows, load_config
from suite.reference import INPUT_KINDS
from suite.report import format_seconds, write_report
from suite.results import (
    CSV_NAME,
    FAILED_STATUSES,
    JSON_NAME,
    REPORT_NAME,
    ResultsError,
    Row,
    RowLog,
    load_run,
    read_csv_rows,
    write_atomic,
    write_csv,
    write_json,
)
from suite.runner import PRESETS, Case, RunOptions, Shape, SweepSpec, estimated_case_s, run_cases
from suite.timing import TimerConfig


class UsageError(Exception):
    """Bad command-line input: reported in one line with exit status 2."""


class Interrupted(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


# -- argument parsing -----------------------------------------------------------------


def parse_sizes(text: str) -> tuple[Shape, ...]:
    """``4x8x2,8x256x64`` and preset names, comma separated, into shapes."""
    sizes: list[Shape] = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        if item in PRESETS:
            sizes.extend(PRESETS[item])
            continue
        parts = item.lower().split("x")
        if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
            raise UsageError(
                f"bad size {item!r}: expected BxTxC with positive integers (e.g. 4x8x2) "
                f"or a preset ({', '.join(PRESETS)})"
            )
        shape = (int(parts[0]), int(parts[1]), int(parts[2]))
        if min(shape) < 1:
            raise UsageError(f"bad size {item!r}: every dimension must be at least 1")
        sizes.append(shape)
    if not sizes:
        raise UsageError("no sizes given")
    return tuple(dict.fromkeys(sizes))


def _choices(label: str, known: Sequence[str]) -> Any:
    def parse(text: str) -> tuple[str, ...]:
        values = tuple(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
        if not values:
            raise UsageError(f"no {label} given")
        for v in values:
            if v not in known:
                raise UsageError(f"unknown {label} {v!r}; choose from {', '.join(known)}")
        return values

    return parse


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise UsageError(f"expected a positive number, got {text!r}") from None
        if value <= 0:
            raise UsageError(f"expected a positive number, got {text!r}")
        return value

    return parse


def _fraction(text: str) -> float:
    value = _positive(float)(text)
    if value >= 1:
        raise UsageError(f"expected a fraction below 1 (0.02 means 2%), got {text!r}")
    return float(value)


def _sweep_args(p: argparse.ArgumentParser, default_sizes: str, default_inputs: str) -> None:
    p.add_argument(
        "--backends",
        type=_choices("backend", tuple(REGISTRY)),
        default=tuple(REGISTRY),
        help=f"comma-separated ({', '.join(REGISTRY)}); default all",
    )
    p.add_argument(
        "--forms",
        type=_choices("form", FORM_NAMES),
        default=FORM_NAMES,
        help=f"comma-separated ({', '.join(FORM_NAMES)}); default all",
    )
    p.add_argument(
        "--sizes",
        "--preset",
        dest="sizes",
        type=parse_sizes,
        default=parse_sizes(default_sizes),
        help=f"BxTxC list and/or presets ({', '.join(PRESETS)}); default {default_sizes}",
    )
    p.add_argument(
        "--dtypes",
        type=_choices("dtype", DTYPES),
        default=("float32",),
        help=f"comma-separated ({', '.join(DTYPES)}); default float32",
    )
    p.add_argument(
        "--precisions",
        type=_choices("precision", PRECISIONS),
        default=("ieee",),
        help="ieee and/or tf32 (GPU float32 matmuls); default ieee",
    )
    p.add_argument(
        "--inputs",
        type=_choices("input", INPUT_KINDS),
        default=tuple(default_inputs.split(",")),
        help=f"input kinds ({', '.join(INPUT_KINDS)}); default {default_inputs}",
    )
    p.add_argument(
        "--device", choices=DEVICES, default="auto", help="where torch and jax run; default auto (GPU if any)"
    )
    p.add_argument("--seed", type=int, default=1337, help="input seed; default 1337")
    p.add_argument(
        "--threads",
        type=_positive(int),
        default=None,
        help="CPU threads for numpy's BLAS and torch (jax ignores it); default the libraries' own",
    )
    p.add_argument("--timeout", type=_positive(float), default=120.0, help="per-case timeout in seconds; default 120")
    p.add_argument(
        "--compile-limit",
        type=_positive(float),
        default=30.0,
        help="skip cases whose predicted compile time exceeds this many seconds; default 30",
    )
    p.add_argument("--no-isolate", action="store_true", help="run in this process instead of one worker per backend")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m suite", description="causal-bench: causal averaging across NumPy, PyTorch and JAX")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="check and time a sweep; write CSV, JSON and markdown")
    _sweep_args(run, "default", "normal")
    run.add_argument("--out", type=Path, default=Path("results/local"), help="output folder; default results/local")
    run.add_argument("--resume", action="store_true", help="continue the run in --out, skipping finished cases")
    run.add_argument(
        "--target-ci",
        type=_fraction,
        default=0.02,
        help="stop sampling when the median's 95%% CI is within this fraction; default 0.02",
    )
    run.add_argument(
        "--budget", type=_positive(float), default=0.5, help="seconds of sampling per case at most; default 0.5"
    )
    run.add_argument("--min-samples", type=_positive(int), default=5, help="samples before the CI may stop; default 5")
    run.add_argument("--warmup", type=_positive(float), default=0.05, help="seconds of warm-up per case; default 0.05")
    run.add_argument("--cold-cache", action="store_true", help="flush the GPU L2 before every call")
    run.add_argument("--device-events", action="store_true", help="time with CUDA events where the backend has them")
    run.add_argument(
        "--no-ceilings",
        action="store_true",
        help="skip measuring copy bandwidth and matmul rates (no bound and ceiling_frac columns)",
    )

    check = sub.add_parser("check", help="the agreement matrix: every form against the float64 reference")
    _sweep_args(check, "check", "normal,offset")
    check.add_argument("--input-file", type=Path, default=None, help="check this .npy array (B, T, C) instead")

    report = sub.add_parser("report", help="rebuild report.md from stored results")
    report.add_argument("results", type=Path, help="a results folder, .json or .csv")
    report.add_argument(
        "--out", type=Path, default=None, help="where to write the markdown; default beside the results"
    )
    report.add_argument("--no-plots", action="store_true", help="write the markdown only, no plots/ folder")

    sub.add_parser("backends", help="list backends, whether they can run here, and why not")

    selftest = sub.add_parser("selftest", help="the harness measured against timeit and torch.utils.benchmark")
    selftest.add_argument("--repeat", type=_positive(int), default=3, help="rounds of the comparison; default 3")
    _tracking_parsers(sub)
    return parser


def _threshold_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threshold",
        type=_positive(float),
        default=None,
        help="slower/faster beyond this fraction (0.05 = 5%%); overrides the config file everywhere",
    )
    p.add_argument(
        "--alpha", type=_fraction, default=None, help="significance level of the test; overrides the config file"
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML file with [tool.causal-bench.compare]; default ./pyproject.toml when present",
    )


def _tracking_parsers(sub: Any) -> None:
    """compare, export, history, ab: the commands CI uses to track performance."""
    compare = sub.add_parser("compare", help="base vs head: verdicts per case; exit 1 on a regression")
    compare.add_argument("base", type=Path, help="base results folder, .json or .csv")
    compare.add_argument("head", type=Path, help="head results folder, .json or .csv")
    compare.add_argument("--out", type=Path, default=None, help="also write compare.md, .csv and .json here")
    compare.add_argument(
        "--allow-other-machine", action="store_true", help="compare runs whose machine fingerprints differ"
    )
    _threshold_args(compare)

    export = sub.add_parser("export", help="stored results for github-action-benchmark or Bencher dashboards")
    export.add_argument("results", type=Path, help="a results folder, .json or .csv")
    export.add_argument(
        "--format", required=True, choices=("github-action-benchmark", "bencher"), help="the target format"
    )
    export.add_argument("--out", type=Path, default=None, help="the JSON file to write; default standard output")

    history = sub.add_parser("history", help="per-case trends over stored runs of one machine; flags steps")
    history.add_argument("results", type=Path, help="a folder of run folders")
    history.add_argument("--out", type=Path, default=None, help="also write history.md and history.csv here")
    history.add_argument("--machine", default=None, help="machine fingerprint; default the newest run's machine")
    history.add_argument(
        "--last", type=_positive(int), default=12, help="runs shown as columns in the markdown; default 12"
    )
    _threshold_args(history)

    ab = sub.add_parser("ab", help="two git revisions measured interleaved, case by case, then compared")
    ab.add_argument("base_rev", help="base revision (commit, branch, tag)")
    ab.add_argument("head_rev", help="head revision")
    _sweep_args(ab, "default", "normal")
    ab.add_argument("--repo", type=Path, default=Path("."), help="the git repository; default .")
    ab.add_argument("--out", type=Path, default=Path("results/ab"), help="output folder; default results/ab")
    ab.add_argument(
        "--rounds", type=_positive(int), default=3, help="processes per side per case, alternating; default 3"
    )
    ab.add_argument(
        "--budget", type=_positive(float), default=0.5, help="seconds of sampling per case and round; default 0.5"
    )
    ab.add_argument("--target-ci", type=_fraction, default=0.01, help="timer stopping rule; default 0.01")
    ab.add_argument("--min-samples", type=_positive(int), default=10, help="samples per round at least; default 10")
    ab.add_argument("--warmup", type=_positive(float), default=0.05, help="seconds of warm-up per case; default 0.05")
    _threshold_args(ab)


def options_from(args: argparse.Namespace) -> RunOptions:
    timer = TimerConfig()
    if args.command == "run":
        try:
            timer = TimerConfig(
                target_rel_ci=args.target_ci,
                budget_s=args.budget,
                min_samples=max(args.min_samples, 3),
                warmup_s=args.warmup,
                cold_cache=args.cold_cache,
                device_events=args.device_events,
            )
        except ValueError as e:
            raise UsageError(str(e)) from None
    return RunOptions(
        timer=timer,
        measure=args.command == "run",
        device=args.device,
        threads=args.threads,
        seed=args.seed,
        case_timeout_s=args.timeout,
        compile_limit_s=args.compile_limit,
        isolate=not args.no_isolate,
        input_file=str(args.input_file) if getattr(args, "input_file", None) else None,
        ceilings=not getattr(args, "no_ceilings", False),
    )


# -- progress ---------------------------------------------------------------------------


class Progress:
    """One status line: which case, how far along, and an estimate of the time left.

    The estimate scales a per-case prior by how fast finished cases actually went.
    """

    def __init__(self, cases: Sequence[Case], options: RunOptions, quiet: bool) -> None:
        self.priors = [estimated_case_s(c, options) for c in cases]
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.start = time.perf_counter()

    def __call__(self, done: int, total: int, case: Case, row: Row | None, seconds: float) -> None:
        if self.quiet:
            return
        elapsed = time.perf_counter() - self.start
        spent_prior = sum(self.priors[:done]) or 1.0
        left = sum(self.priors[done:]) * (elapsed / spent_prior if done else 1.0)
        bar = "#" * int(20 * done / max(total, 1))
        head = f"[{bar:<20}] {done}/{total} {elapsed:5.0f}s elapsed, ~{left:4.0f}s left"
        if row is None:
            if self.tty:
                sys.stderr.write(f"\r\x1b[K{head} | {case.label()} ...")
                sys.stderr.flush()
            return
        what = row.status if row.status != "ok" else format_seconds(row.median_s) if row.n_samples else "ok"
        line = f"{head} | {case.label()}: {what}"
        sys.stderr.write(f"\r\x1b[K{line}" if self.tty else line + "\n")
        if self.tty and done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()


# -- commands ---------------------------------------------------------------------------


def _spec_from(args: argparse.Namespace) -> SweepSpec:
    try:
        return SweepSpec(
            backends=args.backends,
            forms=args.forms,
            sizes=args.sizes,
            dtypes=args.dtypes,
            precisions=args.precisions,
            inputs=args.inputs,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"output folder {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".causal-bench-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"cannot write to output folder {out}: {e.strerror or e}") from None


def _finish(out: Path, meta: dict[str, Any], rows: list[Row]) -> None:
    write_csv(out / CSV_NAME, rows)
    write_json(out / JSON_NAME, meta, rows)
    write_report(out, meta, rows)


def cmd_run(args: argparse.Namespace) -> int:
    spec = _spec_from(args)
    options = options_from(args)
    out: Path = args.out
    done_rows: list[Row] = []
    meta: dict[str, Any] = {}
    if args.resume:
        if not (out / CSV_NAME).exists():
            raise UsageError(f"--resume: {out / CSV_NAME} does not exist")
        try:
            done_rows = read_csv_rows(out / CSV_NAME)
            if (out / JSON_NAME).exists():
                meta = load_run(out / JSON_NAME)[0]
        except ResultsError as e:
            raise UsageError(str(e)) from None
    else:
        _prepare_out(out)
        for name in (CSV_NAME, JSON_NAME):
            if (out / name).exists():
                try:
                    load_run(out / name)
                except ResultsError as e:
                    raise UsageError(
                        f"refusing to overwrite {out / name}, which is not a readable results file ({e})"
                    ) from None
    run_id = meta.get("run_id") or machine.new_run_id()
    previous_ceilings = meta.get("ceilings")  # a resumed run keeps the ceilings it was judged by
    meta = {**machine.run_metadata(run_id, sys.argv), **{k: meta[k] for k in ("started",) if k in meta}}
    meta["sweep"] = dataclasses.asdict(spec)
    meta["options"] = dataclasses.asdict(options)
    ceilings = _run_ceilings(previous_ceilings, options)
    finished = {r.key for r in done_rows}
    cases = [c for c in spec.cases() if c.key not in finished]
    rows: list[Row] = list(done_rows)
    log = RowLog(out / CSV_NAME, resume=args.resume)
    infos: dict[str, Any] = {}

    def on_row(row: Row) -> None:
        row.run_id = run_id
        # In memory first: a Ctrl-C landing inside the append (its fsync is the
        # slow part) still leaves the row in the files written on the way out.
        rows.append(row)
        log.append(row)

    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    interrupted = False
    try:
        for _ in run_cases(cases, options, on_row, Progress(cases, options, args.quiet), infos, ceilings):
            pass
    except (KeyboardInterrupt, Interrupted):
        interrupted = True
    finally:
        # A second Ctrl-C must not cut the final files short: hold signals off
        # while they are written (each file is replaced atomically besides).
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log.close()
        meta["backends"] = {k: dataclasses.asdict(v) for k, v in infos.items()}
        if ceilings is not None:
            meta["ceilings"] = ceilings_to_metadata(ceilings)
        meta["interrupted"] = interrupted
        meta["finished"] = machine.now_iso()
        try:
            _finish(out, meta, rows)
        finally:
            signal.signal(signal.SIGINT, previous_int)
            signal.signal(signal.SIGTERM, previous)
    if interrupted:
        print(f"interrupted: {len(rows)} rows kept in {out}; continue with --resume", file=sys.stderr)
        return 130
    print(f"wrote {out / CSV_NAME}, {out / JSON_NAME}, {out / REPORT_NAME}")
    bad = [r for r in rows if r.status in FAILED_STATUSES]
    for r in bad:
        print(f"{r.status}: {r.key}: {r.reason}", file=sys.stderr)
    return 1 if bad else 0


def _run_ceilings(stored: Any, options: RunOptions) -> dict[str, Ceilings] | None:
    """The ceilings rows are judged by: a resumed run's own, else the host measured now."""
    if not options.ceilings:
        return None
    ceilings = ceilings_from_metadata(stored)
    if HOST_DEVICE not in ceilings:
        ceilings[HOST_DEVICE] = measure_host()
    return ceilings


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted


def cmd_check(args: argparse.Namespace) -> int:
    if args.input_file is not None:
        from suite.reference import InputError, load_input

        try:
            x = load_input(args.input_file)
        except InputError as e:
            raise UsageError(str(e)) from None
        args.sizes, args.inputs = (tuple(x.shape),), ("file",)
    spec = _spec_from(args)
    options = options_from(args)
    cases = spec.cases()
    rows = list(run_cases(cases, options, lambda r: None, Progress(cases, options, args.quiet)))
    print(
        f"{'backend':<14} {'form':<8} {'size':<12} {'dtype':<9} {'prec':<5} {'input':<7} "
        f"{'rel.err':>9} {'max abs':>9} {'tol':>9}  verdict"
    )
    for r in rows:
        verdict = {"ok": "pass", "mismatch": "FAIL"}.get(r.status, r.status)
        note = f"  ({r.reason})" if r.status != "ok" and r.reason else ""
        print(
            f"{r.backend:<14} {r.form:<8} {f'{r.B}x{r.T}x{r.C}':<12} {r.dtype:<9} {r.precision:<5} {r.input:<7} "
            f"{r.rel_err:>9.2e} {r.max_abs_err:>9.2e} {r.tol:>9.2e}  {verdict}{note}"
        )
    counts = {s: sum(r.status == s for r in rows) for s in ("ok", "mismatch", "skipped", "error", "timeout")}
    print(", ".join(f"{n} {s}" for s, n in counts.items() if n))
    return 1 if any(r.status in FAILED_STATUSES for r in rows) else 0


def cmd_report(args: argparse.Namespace) -> int:
    meta, rows = _load(args.results)
    target = args.out or (args.results if args.results.is_dir() else args.results.parent) / REPORT_NAME
    if target.is_dir():
        target = target / REPORT_NAME
    _prepare_out(target.parent)
    written = write_report(target.parent, meta, rows, plots=not args.no_plots, name=target.name)
    plots = f" and {len(written.plots)} plot files in {target.parent / 'plots'}" if written.plots else ""
    print(f"wrote {target}{plots}")
    if written.note and not args.no_plots:
        print(written.note, file=sys.stderr)
    return 0


def cmd_backends(args: argparse.Namespace) -> int:
    for name in REGISTRY:
        adapter = get_backend(name)
        avail = adapter.availability()
        where = adapter.device() if avail.ok else ""
        print(f"{name:<14} {'available' if avail.ok else 'unavailable':<12} {where or avail.reason}")
    return 0


def cmd_selftest(args: argparse.Namespace) -> int:
    from suite.selftest import main as selftest_main

    return selftest_main(args.repeat)


def _compare_config(args: argparse.Namespace) -> CompareConfig:
    try:
        config = load_config(args.config, tuple(REGISTRY), FORM_NAMES)
    except CompareError as e:
        raise UsageError(str(e)) from None
    return config.with_cli(args.threshold, args.alpha)


def _load(path: Path) -> tuple[dict[str, Any], list[Row]]:
    try:
        return load_run(path)
    except ResultsError as e:
        raise UsageError(str(e)) from None


def _emit_comparison(comparison: Comparison, out: Path | None) -> int:
    """Print the markdown, write the files, append to the CI step summary; the exit status."""
    import os

    from suite import compare

    markdown = compare.render_markdown(comparison)
    if out is not None:
        _prepare_out(out)
        write_atomic(out / compare.MD_NAME, markdown)
        write_atomic(out / compare.CSV_NAME, compare.render_csv(comparison))
        write_atomic(out / compare.JSON_NAME, compare.render_json(comparison))
    print(markdown, end="")
    if summary := os.environ.get("GITHUB_STEP_SUMMARY"):
        try:
            with open(summary, "a", encoding="utf-8") as fh:
                fh.write(markdown + "\n")
        except OSError as e:
            print(f"warning: cannot append to GITHUB_STEP_SUMMARY {summary}: {e.strerror or e}", file=sys.stderr)
    return comparison.exit_code()


def cmd_compare(args: argparse.Namespace) -> int:
    config = _compare_config(args)
    base_meta, base_rows = _load(args.base)
    head_meta, head_rows = _load(args.head)
    try:
        comparison = compare_rows(base_rows, head_rows, config, base_meta, head_meta, args.allow_other_machine)
    except CompareError as e:
        raise UsageError(str(e)) from None
    return _emit_comparison(comparison, args.out)


def cmd_export(args: argparse.Namespace) -> int:
    from suite.export import export_text, timed_rows

    _, rows = _load(args.results)
    text = export_text(rows, args.format)
    left_out = len(rows) - len(timed_rows(rows))
    if args.out is None:
        print(text, end="")
    else:
        _prepare_out(args.out.parent if str(args.out.parent) else Path("."))
        if args.out.is_dir():
            raise UsageError(f"--out {args.out} is a folder; name the JSON file to write")
        write_atomic(args.out, text)
        print(f"wrote {args.out} ({len(rows) - left_out} cases)", file=sys.stderr)
    if left_out:
        print(f"{left_out} cases without a time (not ok) left out", file=sys.stderr)
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from suite import history

    config = _compare_config(args)
    try:
        trend = history.build_history(args.results, config, args.machine)
    except ResultsError as e:
        raise UsageError(str(e)) from None
    markdown = history.render_markdown(trend, last=args.last)
    if args.out is not None:
        _prepare_out(args.out)
        write_atomic(args.out / history.MD_NAME, markdown)
        write_atomic(args.out / history.CSV_NAME, history.render_csv(trend))
    print(markdown, end="")
    return 0


def cmd_ab(args: argparse.Namespace) -> int:
    import tempfile

    from suite import ab

    spec = _spec_from(args)
    config = _compare_config(args)
    cases = spec.cases()
    groups = [ab.case_flags(c) for c in cases]
    flags = ab.run_flags(args)

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr)

    try:
        with ab.worktrees(args.repo, {"base": args.base_rev, "head": args.head_rev}) as trees:
            sides = tuple(
                ab.Side(name, path, label=f"{rev} ({commit[:10]})")
                for name, rev, (path, commit) in (
                    ("base", args.base_rev, trees["base"]),
                    ("head", args.head_rev, trees["head"]),
                )
            )
            _prepare_out(args.out)  # once both revisions resolved: a bad one leaves nothing behind
            with tempfile.TemporaryDirectory(prefix="causal-bench-ab-runs-") as work:
                results = ab.interleave(
                    (sides[0], sides[1]),
                    groups,
                    flags,
                    args.rounds,
                    Path(work),
                    timeout_s=args.timeout * 2 + 300,
                    progress=progress,
                )
    except ab.ABError as e:
        raise UsageError(str(e)) from None
    merged = []
    for result in results:
        meta, rows = result.merged({"rounds": args.rounds, "cases": len(cases)})
        ab.write_side(args.out / result.side.name, meta, rows)
        merged.append((meta, rows))
    (base_meta, base_rows), (head_meta, head_rows) = merged
    try:
        comparison = compare_rows(base_rows, head_rows, config, base_meta, head_meta)
    except CompareError as e:
        raise UsageError(str(e)) from None
    return _emit_comparison(comparison, args.out)


COMMANDS = {
    "run": cmd_run,
    "check": cmd_check,
    "report": cmd_report,
    "backends": cmd_backends,
    "selftest": cmd_selftest,
    "compare": cmd_compare,
    "export": cmd_export,
    "history": cmd_history,
    "ab": cmd_ab,
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # Worker processes import this module under another name; only the real
    # entry point runs the CLI.
    sys.exit(main())
