"""Which isolation steps earn their keep: rerun agreement and unstable fraction per configuration.

Each configuration is a ``--worker-cores`` value and an ``--isolation`` step list
(``all:pin,quiet`` is the default of ``suite run``). The script runs the same small
sweep ``--sweeps`` times per configuration through ``python -m suite run``,
interleaved (sweep 1 of every configuration, then sweep 2, ...) so that a slow
minute of the machine falls on every configuration alike, then prints per
configuration:

- the rerun ratios of each case's median between consecutive sweeps: p10, p50, p90
  (agreement: the closer p10 and p90 are to 1, the better two runs agree);
- the unstable fraction: ok rows whose ``unstable`` column is set (IQR/median
  above 10% inside a process), and the contended fraction beside it;
- with ``--rounds`` 2 or more in the sweep, the spread between processes
  (``round_spread``: (max - min) / median of a row's round medians), median and p90 over rows.

Issue 22 keeps a step only if it moves those figures. Run it in a terminal: the
``quiet`` step is about the live progress bar, which a child whose stderr is not a
terminal never draws. Usage::

    python scripts/isolation_ab.py results/tuning/isolation-ab
    python scripts/isolation_ab.py OUT --configs all:pin,quiet 1:pin,quiet all:none

Writes ``OUT/<config>/sweep<i>/`` (each a results folder) and ``OUT/summary.md``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from suite.results import CSV_NAME, Row, read_csv_rows

#: Without the pin step (all:quiet), without quiet (all:pin), neither (all:none), the
#: harness on a core of its own (1:pin,quiet), and passive OpenMP waits on top.
DEFAULT_CONFIGS = ("all:pin,quiet", "1:pin,quiet", "all:none", "all:quiet", "all:pin", "all:pin,quiet,passive")
#: The cases issue 22 saw move (torch and NumPy matrix at 8x1024x256, torch cumsum at
#: 8x128x256) and their neighbours: about 30 s a sweep on a 2-core machine.
DEFAULT_SWEEP = [
    "--backends",
    "numpy,torch",
    "--forms",
    "matrix,cumsum,chunked",
    "--sizes",
    "8x128x256,medium",
]


def folder_name(config: str) -> str:
    return config.replace(":", "-").replace(",", "+")


def run_sweep(config: str, out: Path, sweep: Sequence[str], extra: Sequence[str]) -> int:
    cores, _, steps = config.partition(":")
    command = [sys.executable, "-m", "suite", "run", *sweep, *extra]
    command += ["--worker-cores", cores, "--isolation", steps or "none", "--out", str(out)]
    print(f"== {config}: {out}", file=sys.stderr, flush=True)
    return subprocess.run(command, check=False).returncode


def ok_rows(folder: Path) -> dict[str, Row]:
    return {r.key: r for r in read_csv_rows(folder / CSV_NAME) if r.status == "ok" and r.n_samples}


def summarize(sweeps: Sequence[dict[str, Row]]) -> dict[str, float]:
    """Rerun ratios between consecutive sweeps (p10, p50, p90) and the unstable and contended fractions."""
    ratios = [b[key].median_s / a[key].median_s for a, b in itertools.pairwise(sweeps) for key in a.keys() & b.keys()]
    rows = [r for s in sweeps for r in s.values()]
    spreads = [r.round_spread for r in rows if r.rounds >= 2 and np.isfinite(r.round_spread)]
    p10, p50, p90 = np.percentile(ratios, [10, 50, 90]) if ratios else (np.nan,) * 3
    return {
        "pairs": len(ratios),
        "ratio_p10": float(p10),
        "ratio_p50": float(p50),
        "ratio_p90": float(p90),
        "unstable": sum(r.unstable for r in rows) / len(rows) if rows else np.nan,
        "contended": sum(r.contended for r in rows) / len(rows) if rows else np.nan,
        # Spread between processes (rows measured in --rounds 2 or more): median and p90 over rows.
        "round_spread_p50": float(np.median(spreads)) if spreads else np.nan,
        "round_spread_p90": float(np.percentile(spreads, 90)) if spreads else np.nan,
    }


def table(summary: dict[str, dict[str, float]]) -> str:
    lines = [
        "| configuration | case pairs | ratio p10 | p50 | p90 | p90/p10 | unstable | contended "
        "| round spread p50 | p90 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for config, s in summary.items():
        spread = s["ratio_p90"] / s["ratio_p10"]
        lines.append(
            f"| {config} | {s['pairs']:.0f} | {s['ratio_p10']:.3f} | {s['ratio_p50']:.3f} | {s['ratio_p90']:.3f} "
            f"| {spread:.3f} | {s['unstable']:.0%} | {s['contended']:.0%} "
            f"| {s.get('round_spread_p50', np.nan):.1%} | {s.get('round_spread_p90', np.nan):.1%} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="folder for the runs and summary.md")
    p.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), help="CORES:STEPS, e.g. all:pin,quiet")
    p.add_argument("--sweeps", type=int, default=2, help="sweeps per configuration; default 2")
    p.add_argument("--sweep", nargs=argparse.REMAINDER, default=None, help="suite run flags replacing the sweep")
    args = p.parse_args(argv)
    if args.sweeps < 2:
        p.error("--sweeps must be at least 2 (agreement is between sweeps)")
    if not sys.stderr.isatty():
        print("note: stderr is not a terminal, so the quiet step has no live display to quiet", file=sys.stderr)
    sweep = args.sweep or DEFAULT_SWEEP
    for i in range(1, args.sweeps + 1):
        for config in args.configs:
            code = run_sweep(config, args.out / folder_name(config) / f"sweep{i}", sweep, [])
            if code not in (0, 1):  # 1: some row failed or stayed contended; still a result
                print(f"error: suite run exited {code} for {config}", file=sys.stderr)
                return code
    summary = {
        c: summarize([ok_rows(args.out / folder_name(c) / f"sweep{i}") for i in range(1, args.sweeps + 1)])
        for c in args.configs
    }
    text = table(summary)
    (args.out / "summary.md").write_text(f"{text}\n")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
