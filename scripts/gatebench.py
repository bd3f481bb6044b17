"""How good is the gate? False alarms from A/A runs, detection of known slowdowns.

``python scripts/gatebench.py`` (from the repository root) is a benchmark, not a
test: it measures on this machine, as it is loaded now, and prints (and writes)
the figures.

Each trial is an A/B measurement exactly as ``suite ab`` makes it: every case in
``rounds`` processes per side, sides alternating ABBA, in one checkout with two
environments. The NumPy adapter is replaced by ``tests.fake_backends.SlowedNumpy``
on both sides; the base side injects no work, the head side injects

- nothing (A/A: any ``slower`` verdict is a false alarm),
- 10% extra work per call, or 25% (any verdict other than ``slower`` is a miss).

From the same rounds the gate is judged twice: with all rounds pooled (``suite
ab``) and with round one alone, which is what ``suite compare`` sees when it is
handed two single runs made back to back. Verdicts are recomputed at several
thresholds from the stored samples, so one measurement shows the trade-off.
Rates come with Wilson 95% intervals: with a few dozen comparisons, "0 false
alarms" means "below a few percent", not "none".
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, as for `python -m`

from suite.cases import Case
from suite.format import markdown_table
from suite.machine import machine_info
from suite.results import Row, write_atomic
from suite.stats import wilson
from suite.track import ab
from suite.track.compare import compare_rows
from suite.track.config import DEFAULT_ALPHA, DEFAULT_THRESHOLD, CompareConfig, Thresholds
from tests.fake_backends import SLOWDOWN_ENV, SLOWED_PLUGIN

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = (("A/A", 0.0), ("10% slower", 0.10), ("25% slower", 0.25))


@dataclass
class Trial:
    scenario: str
    fraction: float
    base: ab.SideResult
    head: ab.SideResult


def pooled(result: ab.SideResult, rounds: int | None) -> list[Row]:
    """The side's rows with the first ``rounds`` rounds pooled (all when None)."""
    return [ab.merge_rows(rs[:rounds] if rounds else rs) for rs in result.rounds.values()]


def verdicts(trials: Sequence[Trial], threshold: float, alpha: float, rounds: int | None) -> dict[str, dict[str, Any]]:
    """Per scenario: comparisons, slower verdicts, other non-same verdicts, realized ratios."""
    config = CompareConfig(Thresholds(threshold, alpha), source="gatebench")
    out: dict[str, dict[str, Any]] = {}
    for t in trials:
        cmp = compare_rows(pooled(t.base, rounds), pooled(t.head, rounds), config)
        s = out.setdefault(t.scenario, {"n": 0, "slower": 0, "faster": 0, "other": 0, "ratios": []})
        for c in cmp.cases:
            s["n"] += 1
            s["slower" if c.verdict == "slower" else "faster" if c.verdict == "faster" else "other"] += 1
            if not math.isnan(c.ratio):
                s["ratios"].append(c.ratio)
    return out


def render(
    trials: Sequence[Trial], thresholds: Sequence[float], alpha: float, rounds: int, info: dict[str, Any]
) -> str:
    lines = [
        "## Gate quality (scripts/gatebench.py)",
        "",
        f"Machine: {info['machine']}; load average at start {info['load_start']}, at end {info['load_end']}.  ",
        f"Cases: {', '.join(info['cases'])}; {info['trials']} trials; {rounds} rounds per side per case "
        f"(ABBA); timer flags `{' '.join(info['run_flags'])}`; {info['elapsed_s']:.0f} s in all.  ",
        f"Rule: ratio of medians beyond the threshold, Mann-Whitney p < {alpha:g}, bootstrap 95% CI excluding 1.",
        "",
    ]
    body: list[list[str]] = []
    for used, label in ((rounds, f"{rounds} (suite ab)"), (1, "1 (two single runs)")):
        for thr in thresholds:
            v = verdicts(trials, thr, alpha, used)

            def rate(name: str, key: str, v: dict[str, dict[str, Any]] = v) -> str:
                s = v.get(name)
                if not s or not s["n"]:
                    return "-"
                k = s[key] if key != "changed" else s["slower"] + s["faster"]
                lo, hi = wilson(k, s["n"])
                return f"{k}/{s['n']} = {k / s['n']:.1%} [{lo:.1%}, {hi:.1%}]"

            body.append(
                [
                    label,
                    f"{thr:.0%}",
                    rate("A/A", "slower"),
                    rate("A/A", "changed"),
                    rate("10% slower", "slower"),
                    rate("25% slower", "slower"),
                ]
            )
    header = ["rounds pooled", "threshold", "A/A false alarms (slower)", "A/A any change", "10% caught", "25% caught"]
    lines += markdown_table(header, body)
    v = verdicts(trials, thresholds[0], alpha, rounds)
    lines += ["", "Measured head/base ratio of medians (median over comparisons, all rounds pooled):  "]
    lines.append(
        ", ".join(f"{name}: {statistics.median(s['ratios']):.3f}" for name, s in v.items() if s["ratios"])
        + " (the work injected is the nominal fraction of the fastest kernel time measured when the case is"
        " built; this is the slowdown the gate actually saw)."
    )
    return "\n".join(lines) + "\n"


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python scripts/gatebench.py", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="8x128x32,8x512x64,16x512x128", help="BxTxC list for numpy cumsum")
    p.add_argument("--forms", default="cumsum", help="comma-separated forms; default cumsum")
    p.add_argument("--trials-aa", type=int, default=12, help="A/A trials; default 12")
    p.add_argument("--trials-slow", type=int, default=6, help="trials per slowdown; default 6")
    p.add_argument("--rounds", type=int, default=3, help="processes per side per case; default 3")
    p.add_argument("--budget", type=float, default=0.3, help="sampling seconds per case and round; default 0.3")
    p.add_argument("--thresholds", default=f"{DEFAULT_THRESHOLD},0.03,0.10", help="thresholds to judge at")
    p.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    p.add_argument("--out", type=Path, default=Path("results/gatebench"), help="gatebench.md and .json go here")
    args = p.parse_args(argv)

    sizes = [[int(d) for d in s.split("x")] for s in args.sizes.split(",") if s]
    cases = [Case("numpy", f, B, T, C) for B, T, C in sizes for f in args.forms.split(",")]
    groups = [ab.case_flags(c) for c in cases]
    flags: list[ab.Flag] = [
        ("--budget", repr(args.budget)),
        ("--target-ci", "0.01"),
        ("--min-samples", "10"),
        ("--warmup", "0.05"),
        ("--threads", "1"),  # no BLAS pool fighting the neighbours for the two cores
        ("--no-ceilings", None),
    ]
    thresholds = [float(t) for t in args.thresholds.split(",")]
    # Spread each scenario evenly over the session, so that a busy spell on the
    # machine hits all of them alike.
    counts = {"A/A": args.trials_aa, **{name: args.trials_slow for name, _ in SCENARIOS[1:]}}
    spread = [((j + 0.5) / n, name, f) for name, f in SCENARIOS for n in [counts[name]] for j in range(n)]
    plan = [(name, f) for _, name, f in sorted(spread, key=lambda x: x[0])]
    info: dict[str, Any] = {
        "load_start": _load(),
        "cases": [c.key for c in cases],
        "trials": len(plan),
        "run_flags": [f for pair in flags for f in pair if f],
    }
    start = time.perf_counter()
    trials: list[Trial] = []
    with tempfile.TemporaryDirectory(prefix="causal-bench-gatebench-") as tmp:
        for i, (name, fraction) in enumerate(plan):
            env = {"CAUSAL_BENCH_BACKENDS": SLOWED_PLUGIN}
            base = ab.Side("base", ROOT, {**env, SLOWDOWN_ENV: "0"}, "no extra work")
            head = ab.Side("head", ROOT, {**env, SLOWDOWN_ENV: repr(fraction)}, f"{fraction:.0%} extra work")
            b, h = ab.interleave((base, head), groups, flags, args.rounds, Path(tmp) / f"trial{i}")
            trials.append(Trial(name, fraction, b, h))
            done = verdicts(trials[-1:], thresholds[0], args.alpha, None)[name]
            print(
                f"[{i + 1}/{len(plan)}] {name}: {done['slower']}/{done['n']} slower "
                f"({time.perf_counter() - start:.0f} s)",
                file=sys.stderr,
            )
    info["elapsed_s"] = time.perf_counter() - start
    info["load_end"] = _load()
    m = machine_info()
    info["machine"] = f"{m['cpu_model']}, {m['cpu_count']} cores, fingerprint {m['fingerprint']}"
    markdown = render(trials, thresholds, args.alpha, args.rounds, info)
    args.out.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out / "gatebench.md", markdown)
    doc = {
        "info": info,
        "thresholds": thresholds,
        "alpha": args.alpha,
        "rounds": args.rounds,
        "results": {
            f"rounds={used}": {
                f"threshold={thr}": {
                    k: {kk: vv for kk, vv in s.items() if kk != "ratios"}
                    for k, s in verdicts(trials, thr, args.alpha, used).items()
                }
                for thr in thresholds
            }
            for used in (args.rounds, 1)
        },
    }
    write_atomic(args.out / "gatebench.json", json.dumps(doc, indent=1) + "\n")
    # The raw samples of every round, to judge other rules without measuring again.
    raw = [
        {
            "scenario": t.scenario,
            "fraction": t.fraction,
            **{
                side.side.name: {key: [r.samples_s for r in rounds] for key, rounds in side.rounds.items()}
                for side in (t.base, t.head)
            },
        }
        for t in trials
    ]
    write_atomic(args.out / "gatebench-samples.json", json.dumps(raw) + "\n")
    print(markdown, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
