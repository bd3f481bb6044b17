"""``compare``: base against head, a verdict per case; exit 1 on a regression."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from backends import REGISTRY
from suite.cli._args import UsageError, append_step_summary, load, prepare_out, threshold_args
from suite.forms import form_names
from suite.results import write_atomic
from suite.track import render
from suite.track.compare import CompareError, Comparison, compare_rows
from suite.track.config import CompareConfig, load_config
from suite.track.counted import add_grown_functions


def add_parser(sub: Any) -> None:
    p = sub.add_parser("compare", help="base vs head: verdicts per case; exit 1 on a regression")
    p.add_argument("base", type=Path, help="base results folder, .json or .csv")
    p.add_argument("head", type=Path, help="head results folder, .json or .csv")
    p.add_argument("--out", type=Path, default=None, help="also write compare.md, .csv and .json here")
    p.add_argument("--allow-other-machine", action="store_true", help="compare runs whose machine fingerprints differ")
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="pass even when cases ok in the base are gone or skipped in the head (by default they fail)",
    )
    threshold_args(p)


def compare_config(args: argparse.Namespace) -> CompareConfig:
    """The thresholds: the config file's, overridden by the command line's."""
    try:
        config = load_config(args.config, tuple(REGISTRY), form_names())
    except CompareError as e:
        raise UsageError(str(e)) from None
    return config.with_cli(args.threshold, args.alpha, args.count_threshold)


def emit(comparison: Comparison, out: Path | None) -> int:
    """Print the markdown, write the files, append to the CI step summary; the exit status."""
    markdown = render.render_markdown(comparison)
    if out is not None:
        prepare_out(out)
        write_atomic(out / render.MD_NAME, markdown)
        write_atomic(out / render.CSV_NAME, render.render_csv(comparison))
        write_atomic(out / render.JSON_NAME, render.render_json(comparison))
    print(markdown, end="")
    append_step_summary(markdown)
    return comparison.exit_code()


def run(args: argparse.Namespace) -> int:
    config = compare_config(args)
    base_meta, base_rows = load(args.base)
    head_meta, head_rows = load(args.head)
    try:
        comparison = compare_rows(
            base_rows, head_rows, config, base_meta, head_meta, args.allow_other_machine, args.allow_missing
        )
    except CompareError as e:
        raise UsageError(str(e)) from None
    add_grown_functions(comparison.cases, results_folder(args.base), results_folder(args.head))
    return emit(comparison, args.out)


def results_folder(path: Path) -> Path:
    """The folder a stored run's relative paths (its callgrind files) start from."""
    return path if path.is_dir() else path.parent
