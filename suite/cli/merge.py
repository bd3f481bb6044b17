"""``merge``: shard folders (CI matrix jobs, fleet runs) into one run; the inputs are never touched."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from suite.cli._args import UsageError, prepare_out
from suite.report.markdown import write_report
from suite.results import CSV_NAME, JSON_NAME, REPORT_NAME, ResultsError, write_csv, write_json
from suite.track.merge import KEEP_CHOICES, MergeError, load_shard, merge_shards


def add_parser(sub: Any) -> None:
    p = sub.add_parser("merge", help="merge shard folders into one run, machine by machine")
    p.add_argument("shards", type=Path, nargs="+", help="results folders (or .json/.csv files) to merge")
    p.add_argument("--out", type=Path, required=True, help="the merged folder to write (not one of the shards)")
    p.add_argument(
        "--keep",
        choices=KEEP_CHOICES,
        default=None,
        help="when one case on one machine differs between shards, keep the newest shard's row "
        "(default: refuse the merge)",
    )
    p.add_argument("--no-plots", action="store_true", help="write report.md without figures")


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    for shard in args.shards:
        if shard.resolve() == out.resolve() or (shard.is_file() and shard.parent.resolve() == out.resolve()):
            raise UsageError(
                f"--out {out} is one of the shards; merge writes a new folder and never touches its inputs"
            )
    if out.exists() and any((out / name).exists() for name in (CSV_NAME, JSON_NAME)):
        raise UsageError(f"--out {out} already holds results; merge into a new folder")
    try:
        merged = merge_shards([load_shard(p) for p in args.shards], args.keep)
    except (ResultsError, MergeError) as e:
        raise UsageError(str(e)) from None
    prepare_out(out)
    write_csv(out / CSV_NAME, merged.rows)
    write_json(out / JSON_NAME, merged.meta, merged.rows)
    write_report(out, merged.meta, merged.rows, plots=not args.no_plots)
    for note in merged.notes:
        print(note, file=sys.stderr)
    machines = merged.meta.get("machines", {})
    print(
        f"merged {len(args.shards)} shards: {len(merged.rows)} rows on {len(machines)} machine(s) "
        f"into {out / CSV_NAME}, {out / JSON_NAME}, {out / REPORT_NAME}"
    )
    return 0
