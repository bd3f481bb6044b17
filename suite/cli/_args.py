"""What the commands share: the usage error, value parsers, the sweep flags and their translation."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from backends import DEVICES, DTYPES, PRECISIONS, REGISTRY
from suite.cases import (
    METRICS,
    PRESETS,
    RunOptions,
    Shape,
    SweepSpec,
    known_kernels,
    known_variants,
    parse_sizes,
    variant_form_names,
)
from suite.contention import default_policy
from suite.forms import form_names
from suite.isolation import (
    ALL_CORES,
    AUTO,
    AUTO_CORES,
    DEFAULT_STEPS,
    STEPS,
    IsolationError,
    allowed_cpus,
    parse_steps,
    parse_worker_cores,
    split_cpus,
)
from suite.reference import INPUT_KINDS
from suite.results import ResultsError, Row, load_run, prepare_folder
from suite.timing import MIN_SAMPLES_HARD, TimerConfig


class UsageError(Exception):
    """Bad command-line input: reported in one line with exit status 2."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are ``UsageError``s (one line, exit 2), not SystemExit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def sizes(text: str) -> tuple[Shape, ...]:
    """``--sizes``: shapes and presets (``suite.cases.parse_sizes``) as a usage error when malformed."""
    try:
        return parse_sizes(text)
    except ValueError as e:
        raise UsageError(str(e)) from None


def choices(label: str, known: Sequence[str]) -> Any:
    """A parser of comma-separated values, each one of ``known``."""

    def parse(text: str) -> tuple[str, ...]:
        values = tuple(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
        if not values:
            raise UsageError(f"no {label} given")
        for v in values:
            if v not in known:
                raise UsageError(f"unknown {label} {v!r}; choose from {', '.join(known)}")
        return values

    return parse


def positive(kind: type) -> Any:
    """A parser of one positive ``kind`` (int or float)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise UsageError(f"expected a positive number, got {text!r}") from None
        if value <= 0:
            raise UsageError(f"expected a positive number, got {text!r}")
        return value

    return parse


def variants(text: str) -> tuple[str, ...] | None:
    """``--variants``: ``all`` (None), ``none`` (no variant) or a comma list of known names."""
    if text.strip() == "all":
        return None
    if text.strip() == "none":
        return ()
    known = known_variants()
    parsed: tuple[str, ...] = choices("variant", known)(text)
    return parsed


def fraction(text: str) -> float:
    """A parser of a fraction in (0, 1)."""
    value = positive(float)(text)
    if value >= 1:
        raise UsageError(f"expected a fraction below 1 (0.02 means 2%), got {text!r}")
    return float(value)


def sweep_args(p: argparse.ArgumentParser, default_sizes: str, default_inputs: str) -> None:
    """The flags that say which cases a command covers and how they run."""
    forms = form_names()
    p.add_argument(
        "--backends",
        type=choices("backend", tuple(REGISTRY)),
        default=tuple(REGISTRY),
        help=f"comma-separated ({', '.join(REGISTRY)}); default all",
    )
    p.add_argument(
        "--forms",
        type=choices("form", (*forms, *variant_form_names())),
        default=forms,
        help=f"comma-separated ({', '.join(forms)}); default all. A variant alone, without its idiom: "
        f"{', '.join(variant_form_names())}",
    )
    p.add_argument(
        "--variants",
        type=variants,
        default=None,
        help=f"hand-tuned variants run beside each form's idiom: all (default), none, or a comma list "
        f"({', '.join(known_variants())}); each backend runs those it offers",
    )
    p.add_argument(
        "--sizes",
        "--preset",
        dest="sizes",
        type=sizes,
        default=sizes(default_sizes),
        help=f"BxTxC list and/or presets ({', '.join(PRESETS)}); default {default_sizes}",
    )
    p.add_argument(
        "--dtypes",
        type=choices("dtype", DTYPES),
        default=("float32",),
        help=f"comma-separated ({', '.join(DTYPES)}); default float32",
    )
    p.add_argument(
        "--precisions",
        type=choices("precision", PRECISIONS),
        default=("ieee",),
        help="ieee and/or tf32 (GPU float32 matmuls); default ieee",
    )
    p.add_argument(
        "--inputs",
        type=choices("input", INPUT_KINDS),
        default=tuple(default_inputs.split(",")),
        help=f"input kinds ({', '.join(INPUT_KINDS)}); default {default_inputs}",
    )
    p.add_argument(
        "--attention-kernels",
        type=choices("attention kernel", known_kernels()),
        default=(),
        help=f"kernels of the attention form ({', '.join(known_kernels())}); each backend runs those it "
        "offers (torch: auto, flash, efficient, cudnn, math; jax: xla, cudnn); default each library's own choice",
    )
    p.add_argument(
        "--device", choices=DEVICES, default="auto", help="where torch and jax run; default auto (GPU if any)"
    )
    p.add_argument("--seed", type=int, default=1337, help="input seed; default 1337")
    p.add_argument(
        "--threads",
        type=positive(int),
        default=None,
        help="CPU threads for every library's pools, at most the worker's cores; default one per worker core "
        "(without the pin step: the libraries' own)",
    )
    p.add_argument(
        "--worker-cores",
        type=parsed(parse_worker_cores),
        default=AUTO,
        metavar=f"{{{AUTO_CORES},{ALL_CORES},N}}",
        help="cores the worker is pinned to, its thread pools sized to them: auto (every core but one, "
        "which the harness keeps), all, or N (the last N; the harness keeps the others); default auto",
    )
    p.add_argument(
        "--isolation",
        type=parsed(parse_steps),
        default=DEFAULT_STEPS,
        metavar="STEPS",
        help=f"isolation steps, comma separated ({', '.join(STEPS)}) or none: pin the worker and size its "
        "pools, no progress redraw while a case runs, OpenMP threads sleep when idle, address-space randomisation off; "
        f"default {','.join(DEFAULT_STEPS)}",
    )
    p.add_argument("--timeout", type=positive(float), default=120.0, help="per-case timeout in seconds; default 120")
    p.add_argument(
        "--compile-limit",
        type=positive(float),
        default=30.0,
        help="skip cases whose predicted compile time exceeds this many seconds; default 30",
    )
    p.add_argument("--no-isolate", action="store_true", help="run in this process instead of one worker per backend")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def metric_arg(p: argparse.ArgumentParser) -> None:
    """``--metric``: time the cases (default) or count their instructions under valgrind."""
    p.add_argument(
        "--metric",
        choices=METRICS,
        default="time",
        help="time: wall-clock (default); instructions: executed instructions, cache misses and estimated "
        "cycles counted under valgrind's callgrind, CPU only, one thread (needs valgrind and gcc)",
    )


def counted_device(args: argparse.Namespace) -> None:
    """A usage error when counting is asked for on a GPU (counts are taken on the CPU only)."""
    if getattr(args, "metric", "time") == "instructions" and args.device not in ("auto", "cpu"):
        raise UsageError(f"--metric instructions counts on the CPU only; drop --device {args.device}")


def threshold_args(p: argparse.ArgumentParser) -> None:
    """The gate's thresholds, for the commands that give verdicts."""
    p.add_argument(
        "--threshold",
        type=positive(float),
        default=None,
        help="slower/faster beyond this fraction (0.05 = 5%%); overrides the config file everywhere",
    )
    p.add_argument(
        "--alpha", type=fraction, default=None, help="significance level of the test; overrides the config file"
    )
    p.add_argument(
        "--count-threshold",
        type=positive(float),
        default=None,
        help="counted runs (--metric instructions): more instructions per call beyond this fraction is slower "
        "(default 0.005 = 0.5%%); overrides the config file",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML file with [tool.causal-bench.compare]; default ./pyproject.toml when present",
    )


def timer_config(args: argparse.Namespace) -> TimerConfig:
    """The timer of a timed command (``run``); the default for the others."""
    if args.command != "run":
        return TimerConfig()
    if args.min_samples < MIN_SAMPLES_HARD:
        raise UsageError(f"--min-samples must be at least {MIN_SAMPLES_HARD}, got {args.min_samples}")
    try:
        return TimerConfig(
            target_rel_ci=args.target_ci,
            budget_s=args.budget,
            min_samples=args.min_samples,
            warmup_s=args.warmup,
            cold_cache=args.cold_cache,
            device_events=args.device_events,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None


def parsed(parse: Any) -> Any:
    """A flag parser from a function that raises ``IsolationError`` (a usage error here)."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except IsolationError as e:
            raise UsageError(str(e)) from None

    return convert


def check_isolation(worker_cores: int, steps: Sequence[str], threads: int | None, isolate: bool = True) -> None:
    """``--worker-cores`` and ``--threads`` that this machine can honour, or a usage error."""
    if worker_cores > 0 and not isolate:
        raise UsageError("--worker-cores needs worker processes (it cannot be given with --no-isolate)")
    if "pin" not in steps or not isolate:
        if worker_cores > 0:
            raise UsageError("--worker-cores needs the pin step of --isolation")
        return
    try:
        cpus, _ = split_cpus(worker_cores, allowed_cpus())
    except IsolationError as e:
        raise UsageError(f"--worker-cores: {e}") from None
    if threads is not None and threads > len(cpus):
        raise UsageError(f"--threads {threads} exceeds the worker's {len(cpus)} cores (--worker-cores)")


def options_from(args: argparse.Namespace) -> RunOptions:
    """``RunOptions`` from the sweep flags."""
    check_isolation(args.worker_cores, args.isolation, args.threads, not args.no_isolate)
    return RunOptions(
        timer=timer_config(args),
        measure=args.command == "run",
        device=args.device,
        threads=args.threads,
        seed=args.seed,
        case_timeout_s=args.timeout,
        compile_limit_s=args.compile_limit,
        isolate=not args.no_isolate,
        input_file=str(args.input_file) if getattr(args, "input_file", None) else None,
        ceilings=not getattr(args, "no_ceilings", False),
        on_contention=getattr(args, "on_contention", None) or default_policy(),
        contention_wait_s=getattr(args, "contention_wait", 20.0),
        rounds=getattr(args, "rounds", 1),
        cluster=getattr(args, "cluster", None) or "",
        worker_cores=args.worker_cores,
        isolation=args.isolation,
    )


def spec_from(args: argparse.Namespace) -> SweepSpec:
    """``SweepSpec`` from the sweep flags."""
    try:
        return SweepSpec(
            backends=args.backends,
            forms=args.forms,
            sizes=args.sizes,
            dtypes=args.dtypes,
            precisions=args.precisions,
            inputs=args.inputs,
            kernels=args.attention_kernels,
            metric=getattr(args, "metric", "time"),
            variants=args.variants,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None


def prepare_out(out: Path) -> None:
    """Make sure ``out`` is a folder this process can write, or a usage error."""
    try:
        prepare_folder(out)
    except ResultsError as e:
        raise UsageError(str(e)) from None


def load(path: Path) -> tuple[dict[str, Any], list[Row]]:
    """A stored run, or a usage error naming what is wrong with it."""
    try:
        return load_run(path)
    except ResultsError as e:
        raise UsageError(str(e)) from None


def append_step_summary(text: str) -> None:
    """Append ``text`` to the CI job's step summary (``$GITHUB_STEP_SUMMARY``) when one is set."""
    if path := os.environ.get("GITHUB_STEP_SUMMARY"):
        try:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(text + "\n")
        except OSError as e:
            print(f"warning: cannot append to GITHUB_STEP_SUMMARY {path}: {e.strerror or e}", file=sys.stderr)
