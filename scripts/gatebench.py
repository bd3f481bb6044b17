"""How good is the gate? False alarms from A/A runs, detection of known slowdowns.

``python scripts/gatebench.py`` (from the repository root) is a benchmark, not a
test: it measures on this machine, as it is loaded now, and prints (and writes)
the figures.

The NumPy adapter is replaced by ``tests.fake_backends.SlowedNumpy`` on both
sides; the base side injects no work, the head side injects

- nothing (A/A: any ``slower`` verdict is a false alarm),
- 10% extra work per call, or 25% (any verdict other than ``slower`` is a miss).

Two modes (``--mode``):

- ``ab``: each trial is an A/B measurement exactly as ``suite ab`` makes it: every
  case in ``rounds`` processes per side, sides alternating ABBA, in one checkout
  with two environments. From the same rounds the gate is also judged with round
  one alone (what ``compare`` sees of two single-round runs made back to back).
- ``plain``: each trial is two plain runs, as most CI jobs make them: ``suite run
  --rounds R`` on the base, then the same on the head, then ``compare``. The
  rounds are interleaved across the sweep inside each run; nothing is interleaved
  between the two runs.

``--load F`` runs the trials under a documented, bounded background load: one
process that spins F of every 100 ms and sleeps the rest (a CPU hog at F duty),
started before the first trial, stopping itself after the time limit and killed
at the end. Verdicts are recomputed at several thresholds from the stored
samples. Rows measured under contention are ``inconclusive`` in the gate: they
are counted apart, never as a catch or a false alarm. Rates come with Wilson 95%
intervals: with a few dozen comparisons, "0 false alarms" means "below a few
percent", not "none".
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import statistics
import subprocess
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
from suite.rounds import merge_rows
from suite.stats import wilson
from suite.track import ab
from suite.track.compare import compare_rows
from suite.track.config import DEFAULT_ALPHA, DEFAULT_THRESHOLD, CompareConfig, Thresholds
from tests.fake_backends import SLOWDOWN_ENV, SLOWED_PLUGIN

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = (("A/A", 0.0), ("10% slower", 0.10), ("25% slower", 0.25))
#: The background load: spin ``duty`` of every period, sleep the rest, stop after ``limit`` seconds.
HOG = """import time
end = time.monotonic() + {limit}
while time.monotonic() < end:
    t = time.monotonic()
    while time.monotonic() - t < {busy}:
        pass
    time.sleep({idle})
"""
HOG_PERIOD_S = 0.1


@dataclass
class Trial:
    scenario: str
    fraction: float
    base: ab.SideResult | None = None  # --mode ab: the rounds of each side
    head: ab.SideResult | None = None
    plain: tuple[list[Row], list[Row]] | None = None  # --mode plain: the two runs' rows


def pooled(result: ab.SideResult, rounds: int | None) -> list[Row]:
    """The side's rows with the first ``rounds`` rounds pooled (all when None)."""
    return [ab.merge_rows(rs[:rounds] if rounds else rs) for rs in result.rounds.values()]


def side_rows(t: Trial, rounds: int | None) -> tuple[list[Row], list[Row]]:
    if t.plain is not None:
        return t.plain
    assert t.base is not None
    assert t.head is not None
    return pooled(t.base, rounds), pooled(t.head, rounds)


def verdicts(
    trials: Sequence[Trial],
    threshold: float,
    alpha: float,
    rounds: int | None,
    ignore_contention: bool = False,
    pool_samples: bool = False,
) -> dict[str, dict[str, Any]]:
    """Per scenario: comparisons, slower, faster, inconclusive and other verdicts, realized ratios.

    ``ignore_contention`` judges contended rows as if they were not: what the gate
    would say without the contention check. ``pool_samples`` forgets the rounds and
    judges the pooled samples (the rule before rounds: Mann-Whitney and bootstrap).
    """
    config = CompareConfig(Thresholds(threshold, alpha), source="gatebench")
    out: dict[str, dict[str, Any]] = {}
    for t in trials:
        base, head = side_rows(t, rounds)
        if ignore_contention:
            base = [dataclasses.replace(r, contended=False) for r in base]
            head = [dataclasses.replace(r, contended=False) for r in head]
        if pool_samples:
            base = [dataclasses.replace(r, samples_round=[0] * len(r.samples_s)) for r in base]
            head = [dataclasses.replace(r, samples_round=[0] * len(r.samples_s)) for r in head]
        cmp = compare_rows(base, head, config)
        s = out.setdefault(t.scenario, {"n": 0, "slower": 0, "faster": 0, "inconclusive": 0, "other": 0, "ratios": []})
        for c in cmp.cases:
            s["n"] += 1
            s[c.verdict if c.verdict in ("slower", "faster", "inconclusive") else "other"] += 1
            if not math.isnan(c.ratio):
                s["ratios"].append(c.ratio)
    return out


def render(
    trials: Sequence[Trial], thresholds: Sequence[float], alpha: float, rounds: int, info: dict[str, Any]
) -> str:
    mode = info["mode"]
    how = (
        f"{rounds} rounds per side per case (ABBA, one process each)"
        if mode == "ab"
        else f"two plain runs per trial (base, then head), each `suite run --rounds {rounds}`"
    )
    lines = [
        f"## Gate quality (scripts/gatebench.py --mode {mode})",
        "",
        f"Command: `{info['command']}`  ",
        f"Machine: {info['machine']}; load average at start {info['load_start']}, at end {info['load_end']}.  ",
        f"Background load: {info['load']}.  ",
        f"Cases: {', '.join(info['cases'])}; {info['trials']} trials; {how}; "
        f"timer flags `{' '.join(info['run_flags'])}`; {info['elapsed_s']:.0f} s in all.  ",
        f"Rule: ratio beyond the threshold, p < {alpha:g}, 95% CI excluding 1; at the round level (two-level "
        "bootstrap) where both sides have two or more rounds, else on samples (Mann-Whitney, bootstrap). "
        "Contended rows are `inconclusive`: counted in their own column, never as a catch or a false alarm; "
        "the rows marked *contention ignored* judge them as if they were not, to show what the check prevents.",
        "",
    ]
    variants = [(rounds, f"{rounds} (suite ab)"), (1, "1 (two single runs)")] if mode == "ab" else [(None, mode)]
    body: list[list[str]] = []
    for (used, label), (ignore, pool) in itertools.product(variants, ((False, False), (True, False), (True, True))):
        if ignore:
            label += ", contention ignored"
        if pool:
            label += ", samples pooled (no rounds)"
        for thr in thresholds:
            v = verdicts(trials, thr, alpha, used, ignore, pool)

            def rate(name: str, key: str, v: dict[str, dict[str, Any]] = v) -> str:
                s = v.get(name)
                if not s or not s["n"]:
                    return "-"
                k = s[key] if key != "changed" else s["slower"] + s["faster"]
                judged = s["n"] - s["inconclusive"] if key != "inconclusive" else s["n"]
                if not judged:
                    return "- (all inconclusive)"
                lo, hi = wilson(k, judged)
                return f"{k}/{judged} = {k / judged:.1%} [{lo:.1%}, {hi:.1%}]"

            inconclusive = sum(s["inconclusive"] for s in v.values())
            total = sum(s["n"] for s in v.values())
            body.append(
                [
                    label,
                    f"{thr:.0%}",
                    rate("A/A", "slower"),
                    rate("A/A", "changed"),
                    rate("10% slower", "slower"),
                    rate("25% slower", "slower"),
                    f"{inconclusive}/{total}",
                ]
            )
    header = [
        "rounds",
        "threshold",
        "A/A false alarms (slower)",
        "A/A any change",
        "10% caught",
        "25% caught",
        "inconclusive (contended)",
    ]
    lines += markdown_table(header, body)
    v = verdicts(trials, thresholds[0], alpha, variants[0][0])
    lines += ["", "Measured head/base ratio (median over comparisons):  "]
    lines.append(
        ", ".join(f"{name}: {statistics.median(s['ratios']):.3f}" for name, s in v.items() if s["ratios"])
        + " (the work injected is the nominal fraction of the fastest kernel time measured when the case is"
        " built; this is the slowdown the gate actually saw)."
    )
    return "\n".join(lines) + "\n"


def trials_from_samples(path: Path) -> list[Trial]:
    """The trials of a ``*-samples.json`` as two plain runs each, to judge them again."""
    trials = []
    for t in json.loads(path.read_text()):
        sides = []
        for side in ("base", "head"):
            rows = []
            for key, d in t[side].items():
                backend, form, shape, dtype, precision, kind = key.split(":")[:6]
                B, T, C = (int(v) for v in shape.split("x"))
                case = Case(backend, form, B, T, C, dtype, precision, kind)
                rounds = d["samples_round"] or [0] * len(d["samples_s"])
                rows.append(
                    merge_rows(
                        [
                            Row(
                                case,
                                status="ok",
                                samples_s=[s for s, r in zip(d["samples_s"], rounds, strict=True) if r == k],
                                calls_per_sample=1,
                                contended=d["contended"],
                            )
                            for k in sorted(set(rounds))
                        ]
                    )
                )
            sides.append(rows)
        trials.append(Trial(t["scenario"], t["fraction"], plain=(sides[0], sides[1])))
    return trials


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def start_hog(duty: float, limit_s: float) -> subprocess.Popen[bytes] | None:
    """The bounded background load: a CPU hog at ``duty`` that stops itself after ``limit_s``."""
    if duty <= 0:
        return None
    busy = duty * HOG_PERIOD_S
    code = HOG.format(limit=limit_s, busy=busy, idle=HOG_PERIOD_S - busy)
    return subprocess.Popen([sys.executable, "-c", code])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python scripts/gatebench.py", description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=("ab", "plain"), default="ab", help="suite ab, or two plain runs; default ab")
    p.add_argument("--sizes", default="8x128x32,8x512x64,16x512x128", help="BxTxC list for numpy cumsum")
    p.add_argument("--forms", default="cumsum", help="comma-separated forms; default cumsum")
    p.add_argument("--trials-aa", type=int, default=12, help="A/A trials; default 12")
    p.add_argument("--trials-slow", type=int, default=6, help="trials per slowdown; default 6")
    p.add_argument("--rounds", type=int, default=3, help="rounds per side per case; default 3")
    p.add_argument("--budget", type=float, default=0.3, help="sampling seconds per case and round; default 0.3")
    p.add_argument("--thresholds", default=f"{DEFAULT_THRESHOLD},0.03,0.10", help="thresholds to judge at")
    p.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    p.add_argument("--load", type=float, default=0.0, help="background CPU hog duty, 0 to 1; default 0 (none)")
    p.add_argument("--hog-limit", type=float, default=3600.0, help="seconds after which the hog stops itself")
    p.add_argument("--on-contention", default="flag", help="the runs' contention policy; default flag (no waiting)")
    p.add_argument("--out", type=Path, default=Path("results/gatebench"), help="the .md and .json go here")
    p.add_argument("--rejudge", type=Path, default=None, help="print the table for a stored *-samples.json; no runs")
    args = p.parse_args(argv)
    if args.rejudge is not None:
        info = json.loads(args.rejudge.with_name(args.rejudge.name.replace("-samples.json", ".json")).read_text())[
            "info"
        ]
        info["mode"] = "plain"  # rows as stored: every round of a side pooled
        info["command"] = f"python scripts/gatebench.py --rejudge {args.rejudge}` (measured by `{info['command']}"
        print(render(trials_from_samples(args.rejudge), [float(t) for t in args.thresholds.split(",")], args.alpha,
                     args.rounds, info), end="")  # fmt: skip
        return 0
    if not 0 <= args.load < 1:
        p.error("--load must be in [0, 1)")

    sizes = [[int(d) for d in s.split("x")] for s in args.sizes.split(",") if s]
    cases = [Case("numpy", f, B, T, C) for B, T, C in sizes for f in args.forms.split(",")]
    flags: list[ab.Flag] = [
        ("--budget", repr(args.budget)),
        ("--target-ci", "0.01"),
        ("--min-samples", "10"),
        ("--warmup", "0.05"),
        ("--threads", "1"),  # no BLAS pool fighting the neighbours for the two cores
        ("--no-ceilings", None),
        ("--on-contention", args.on_contention),
        ("--rounds", "1" if args.mode == "ab" else str(args.rounds)),
    ]
    thresholds = [float(t) for t in args.thresholds.split(",")]
    # Spread each scenario evenly over the session, so that a busy spell on the
    # machine hits all of them alike.
    counts = {"A/A": args.trials_aa, **{name: args.trials_slow for name, _ in SCENARIOS[1:]}}
    spread = [((j + 0.5) / n, name, f) for name, f in SCENARIOS for n in [counts[name]] for j in range(n)]
    plan = [(name, f) for _, name, f in sorted(spread, key=lambda x: x[0])]
    load = (
        f"a CPU hog spinning {args.load:.0%} of every {HOG_PERIOD_S * 1000:.0f} ms (one process), "
        f"stopping itself after {args.hog_limit:.0f} s"
        if args.load > 0
        else "none started (other users of the machine as they were)"
    )
    info: dict[str, Any] = {
        "command": "python scripts/gatebench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "mode": args.mode,
        "load": load,
        "load_start": _load(),
        "cases": [c.key for c in cases],
        "trials": len(plan),
        "run_flags": [f for pair in flags for f in pair if f],
    }
    start = time.perf_counter()
    trials: list[Trial] = []
    hog = start_hog(args.load, args.hog_limit)
    try:
        with tempfile.TemporaryDirectory(prefix="causal-bench-gatebench-") as tmp:
            for i, (name, fraction) in enumerate(plan):
                env = {"CAUSAL_BENCH_BACKENDS": SLOWED_PLUGIN}
                base = ab.Side("base", ROOT, {**env, SLOWDOWN_ENV: "0"}, "no extra work")
                head = ab.Side("head", ROOT, {**env, SLOWDOWN_ENV: repr(fraction)}, f"{fraction:.0%} extra work")
                work = Path(tmp) / f"trial{i}"
                if args.mode == "ab":
                    groups = [ab.case_flags(c) for c in cases]
                    b, h = ab.interleave((base, head), groups, flags, args.rounds, work)
                    trials.append(Trial(name, fraction, base=b, head=h))
                else:
                    select = ["--backends", "numpy", "--forms", args.forms, "--sizes", args.sizes]
                    known, _ = ab.supported_flags(base, flags)
                    _, b_rows = ab.run_side(base, [*select, *known], work / "base", 600)
                    _, h_rows = ab.run_side(head, [*select, *known], work / "head", 600)
                    trials.append(Trial(name, fraction, plain=(b_rows, h_rows)))
                done = verdicts(trials[-1:], thresholds[0], args.alpha, None)[name]
                print(
                    f"[{i + 1}/{len(plan)}] {name}: {done['slower']}/{done['n']} slower, "
                    f"{done['inconclusive']} inconclusive ({time.perf_counter() - start:.0f} s)",
                    file=sys.stderr,
                )
    finally:
        if hog is not None:
            hog.kill()
            hog.wait(10)
    info["elapsed_s"] = time.perf_counter() - start
    info["load_end"] = _load()
    m = machine_info()
    info["machine"] = f"{m['cpu_model']}, {m['cpu_count']} cores, fingerprint {m['fingerprint']}"
    markdown = render(trials, thresholds, args.alpha, args.rounds, info)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{args.mode}-load{round(args.load * 100)}"
    write_atomic(args.out / f"{stem}.md", markdown)
    used_list: list[int | None] = [args.rounds, 1] if args.mode == "ab" else [None]
    doc = {
        "info": info,
        "thresholds": thresholds,
        "alpha": args.alpha,
        "rounds": args.rounds,
        "results": {
            f"rounds={used or args.rounds}": {
                f"threshold={thr}": {
                    k: {kk: vv for kk, vv in s.items() if kk != "ratios"}
                    for k, s in verdicts(trials, thr, args.alpha, used).items()
                }
                for thr in thresholds
            }
            for used in used_list
        },
    }
    write_atomic(args.out / f"{stem}.json", json.dumps(doc, indent=1) + "\n")
    # The raw samples of every round, to judge other rules without measuring again.
    raw = []
    for t in trials:
        b_rows, h_rows = side_rows(t, None)
        raw.append(
            {
                "scenario": t.scenario,
                "fraction": t.fraction,
                **{
                    side: {
                        r.key: {"samples_s": r.samples_s, "samples_round": r.samples_round, "contended": r.contended}
                        for r in rows
                    }
                    for side, rows in (("base", b_rows), ("head", h_rows))
                },
            }
        )
    write_atomic(args.out / f"{stem}-samples.json", json.dumps(raw) + "\n")
    print(markdown, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
