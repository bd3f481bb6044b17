"""Does a CPU hog on the other core ever slip through unflagged? A benchmark, not a test.

``python scripts/hog_check.py --pairs 10 --out results/hog-check -- [suite run flags]``
runs, ``--pairs`` times: the sweep with the machine idle, then the same sweep with a
CPU hog (one process spinning on the last core, stopping itself after ``--hog-limit``
seconds and killed at the end). Each hog run is compared case by case with the idle
run just before it. A row of the hog run more than ``--factor`` (3) times slower than
its idle twin must be flagged ``contended`` or ``drifted``; the script counts those that
are not, per pair and in all, and writes the tally to ``OUT/summary.md`` and
``OUT/summary.json`` beside the runs.

The issue's sweep: ``-- --backends numba,torch-compile,torch --forms loop,cumsum,chunked
--sizes 8x8x256,8x128x256``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from suite.results import load_run

HOG = """
import os, sys, time
os.sched_setaffinity(0, {int(sys.argv[1])})
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    pass
"""


def run_sweep(out: Path, flags: list[str]) -> None:
    cmd = [sys.executable, "-m", "suite", "run", *flags, "--out", str(out)]
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL)


@dataclass
class Pair:
    """One idle run and the hog run after it, compared case by case."""

    rows: int
    flagged: int
    slower: int
    unflagged: list[str]


def tally(idle: Path, hog: Path, factor: float) -> Pair:
    _, idle_rows = load_run(idle)
    _, hog_rows = load_run(hog)
    base = {r.key: r for r in idle_rows if r.status == "ok"}
    slow, missed = [], []
    for r in hog_rows:
        twin = base.get(r.key)
        if r.status != "ok" or twin is None:
            continue
        ratio = r.median_s / twin.median_s
        if ratio > factor:
            slow.append(r.key)
            if not (r.contended or r.drifted):
                missed.append(f"{r.key} {ratio:.1f}x")
    flagged = sum(1 for r in hog_rows if r.contended or r.drifted)
    return Pair(len(hog_rows), flagged, len(slow), missed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--factor", type=float, default=3.0)
    parser.add_argument("--hog-limit", type=float, default=600.0, help="the hog stops itself after this many seconds")
    parser.add_argument("flags", nargs=argparse.REMAINDER, help="-- then the flags of `suite run`")
    args = parser.parse_args(argv)
    flags = [f for f in args.flags if f != "--"]
    args.out.mkdir(parents=True, exist_ok=True)
    core = max(os.sched_getaffinity(0))
    pairs = []
    for k in range(args.pairs):
        idle, hog = args.out / f"idle-{k}", args.out / f"hog-{k}"
        run_sweep(idle, flags)
        proc = subprocess.Popen([sys.executable, "-c", HOG, str(core), str(args.hog_limit)])
        try:
            time.sleep(0.5)
            run_sweep(hog, flags)
        finally:
            proc.kill()
            proc.wait()
        pairs.append(tally(idle, hog, args.factor))
        print(f"pair {k}: {pairs[-1]}", flush=True)
    missed = sum(len(p.unflagged) for p in pairs)
    slower = sum(p.slower for p in pairs)
    lines = [
        "# Hog check",
        "",
        f"Command: `python scripts/hog_check.py --pairs {args.pairs} --out {args.out} -- {' '.join(flags)}`",
        f"Hog: one process spinning on core {core}; a hog row more than {args.factor}x slower than its idle twin"
        " must be flagged contended or drifted.",
        "",
        "| pair | rows | flagged | > factor slower | unflagged |",
        "|---|---|---|---|---|",
        *(
            f"| {k} | {p.rows} | {p.flagged} | {p.slower} | {', '.join(p.unflagged) or 0} |"
            for k, p in enumerate(pairs)
        ),
        "",
        f"In all: {slower} rows more than {args.factor}x slower under the hog, {missed} of them unflagged.",
    ]
    (args.out / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (args.out / "summary.json").write_text(
        json.dumps({"pairs": [asdict(p) for p in pairs], "flags": flags}, indent=1) + "\n"
    )
    print("\n".join(lines))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
