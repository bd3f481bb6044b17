"""How good is the gate? False alarms from A/A comparisons, detection of planted slowdowns.

``python scripts/gatebench.py --out DIR`` (from the repository root) is a benchmark, not a
test: it measures on this machine, as it is loaded now, and writes the power table.

**Lockstep** (``--mode lockstep``, the default: the gate's own design). ``suite ab`` runs
both sides of a timed round at once, sampling by turns (``suite.lockstep``); here the
sides are the four conditions below, each its own ``suite run --lockstep`` per round
(``measure_lockstep``), judged as the gate judges (``paired_verdict`` in lockstep).

**Pairs** (``--mode pairs``: the gate's design before lockstep). ``suite ab`` measures
round ``i`` of base and head back to back and judges the pairs
(``suite.track.verdicts.paired_verdict``). Here each condition is its own backend
(``tests.fake_backends`` ``pair-a`` and ``pair-b`` with nothing planted, ``slowed-10``,
``slowed-25``), and one ``suite run --rounds R`` measures every case under every
condition in each round, each condition in its own fresh worker, seconds apart (the
backend order reversed in every other process). Per process and case: one A/A
comparison (``pair-a`` against ``pair-b``), one 10% trial (``pair-a`` against
``slowed-10``) and one 25% trial (``pair-b`` against ``slowed-25``); processes beyond
those the detection trials need run the A/A pair alone. The cases default to the
gate's NumPy cases (cumsum, matrix, loop at the ``gate`` sizes) and ``--budget`` to
the gate's.

**Wall-clock, blocks** (``--mode time``: the first design; its blocks of one condition
lie minutes apart, so drift lands between the sides). The NumPy adapter is replaced by
``tests.fake_backends.SlowedNumpy`` (every call runs the kernel, then spins for a planted
fraction of its time: a real slowdown of the measured call). Each condition (no extra work,
10% and 25% planted) is measured as blocks of ``--block`` rounds (one ``suite run --rounds
BLOCK`` each: every round fresh worker processes), the blocks of all conditions spread evenly
over the session. The comparisons are then formed from disjoint sets of the stored rounds
(``suite.track.power``): A/A from ``2r`` consecutive base rounds, even against odd;
detection from ``r`` base rounds against ``r`` planted rounds, with the slowdown each
trial measured. ``r`` is ``--rounds``, the CI recipe's rounds a side. Rounds measured under
contention make their comparisons ``inconclusive``, counted apart.

**Counts** (``--mode counts``). ``python -m suite run --metric instructions`` on the
``planted`` backend (``tests.fake_backends:Planted``: NumPy cumsum, its idiom and its
``staged`` variant, plus deterministic extra work of steps named in ``CAUSAL_BENCH_PLANT_FILE``),
judged by the counted threshold alone. The plant is sized by count (``calibrate``): every
case is counted with no steps and with ``CALIBRATION_STEPS``, which gives each case's
cost per step exactly, and each case then gets the steps that add 2% (1%) of its own
count. A/A pairs, half of them with a CPU hog on the other core; 2% and 1% planted; the
same case counted twice must agree within 0.1%. By default the pairs are as many as give
issue 21's trials: 40 A/A comparisons and 30 per plant, each case of a pair one comparison.

``--load F`` runs under a bounded CPU hog of duty F. ``--rejudge FILE`` judges a stored
``*-samples.json`` again (any of its layouts: wall-clock in pairs or in blocks, or counts)
without measuring. Rates carry Wilson 95% intervals.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, as for `python -m`

from suite import placement
from suite.cases import PRESETS, Case, parse_sizes
from suite.machine import machine_info
from suite.results import load_run, write_atomic
from suite.rounds import round_samples
from suite.track import ab
from suite.track.config import DEFAULT_ALPHA, DEFAULT_COUNT_THRESHOLD, Thresholds, rounds_warning
from suite.track.gate import GATE_BUDGET, GATE_ROUNDS
from suite.track.power import (
    Counted,
    Judged,
    Round,
    aa_sets,
    binned_table,
    count_table,
    detection_sets,
    form_table,
    judge,
    judge_pairs,
)
from suite.track.power import scenario_table as power_scenarios
from tests.fake_backends import (
    CALIBRATION_STEPS,
    PAIRED_CONDITIONS,
    PAIRED_PLUGINS,
    PLANT_FILE_ENV,
    PLANTED_PLUGIN,
    SLOWDOWN_ENV,
    SLOWED_PLUGIN,
    plant_id,
    steps_for,
    write_plant,
)

ROOT = Path(__file__).resolve().parents[1]
PLANTS = (0.10, 0.25)
#: The blocks design's default sizes (``--mode time``).
TIME_SIZES = "8x128x32,8x512x64,16x512x128"
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
#: Thresholds a wall-clock table is judged at unless ``--thresholds`` says (counts: the counted threshold).
TIME_THRESHOLDS = (0.05, 0.02, 0.0)

#: condition -> case key -> rounds in the order measured.
Store = dict[str, dict[str, list[Round]]]


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def start_hog(duty: float, limit_s: float) -> subprocess.Popen[bytes] | None:
    """The bounded background load: a CPU hog at ``duty`` that stops itself after ``limit_s``."""
    if duty <= 0:
        return None
    busy = min(duty, 1.0) * HOG_PERIOD_S
    code = HOG.format(limit=limit_s, busy=busy, idle=HOG_PERIOD_S - busy)
    return subprocess.Popen([sys.executable, "-c", code])


def stop_hog(hog: subprocess.Popen[bytes] | None) -> None:
    if hog is not None:
        hog.kill()
        hog.wait(10)


def plan_blocks(aa: int, detect: int, cases: int, r: int, block: int) -> dict[str, int]:
    """Blocks per condition so that A/A gives ``aa`` comparisons and each plant ``detect`` trials."""
    base_rounds = max(math.ceil(aa / cases) * 2 * r, math.ceil(detect / cases) * r)
    plant_rounds = math.ceil(detect / cases) * r
    return {"0": math.ceil(base_rounds / block), **{repr(f): math.ceil(plant_rounds / block) for f in PLANTS}}


def spread_evenly(blocks: dict[str, int]) -> list[str]:
    """The session's order: each condition's blocks spread evenly, so drift hits all alike."""
    marks = [((j + 0.5) / n, c) for c, n in blocks.items() for j in range(n)]
    return [c for _, c in sorted(marks)]


def measure_time(args: argparse.Namespace, cases: Sequence[Case], order: Sequence[str], tmp: Path) -> Store:
    """Run the blocks in ``order``; every round of every case, by condition."""
    store: Store = {c: {} for c in dict.fromkeys(order)}
    select = ["--backends", "numpy", "--forms", args.forms, "--sizes", args.sizes]
    flags = [*select, "--budget", repr(args.budget * args.block), "--rounds", str(args.block), "--threads", "1"]
    flags += ["--target-ci", "0.01", "--min-samples", "10", "--warmup", "0.05", "--no-ceilings"]
    flags += ["--on-contention", args.on_contention]
    start = time.perf_counter()
    for i, cond in enumerate(order):
        side = ab.Side(cond, ROOT, {"CAUSAL_BENCH_BACKENDS": SLOWED_PLUGIN, SLOWDOWN_ENV: cond})
        _, rows = ab.run_side(side, flags, tmp / f"block{i}", 900)
        for row in rows:
            if row.status == "ok":
                parts = round_samples(row)
                store[cond].setdefault(row.key, []).extend(Round(tuple(map(float, p)), row.contended) for p in parts)
        print(f"[{i + 1}/{len(order)}] planted {float(cond):.0%}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return store


def judge_store(store: Store, cases: Sequence[Case], r: int, limits: Thresholds) -> list[Judged]:
    """A/A and detection comparisons from disjoint rounds of the store, judged at ``limits``."""
    out: list[Judged] = []
    for case in cases:
        base = store.get("0", {}).get(case.key, [])
        out += judge("A/A", case, aa_sets(base, r), limits)
        for cond, by_key in store.items():
            if cond != "0":
                sets = detection_sets(base, by_key.get(case.key, []), r)
                out += judge(f"{float(cond):.0%} planted", case, sets, limits)
    return out


def render_time(judged_by: dict[float, list[Judged]], info: dict[str, Any]) -> str:
    r = info["rounds"]
    lines = [
        f"## Gate power, wall-clock (scripts/gatebench.py --mode time, {r} rounds a side)",
        "",
        f"Command: `{info['command']}`  ",
        f"Machine: {info['machine']}; load average at start {info['load_start']}, at end {info['load_end']}; "
        f"background load: {info['load']}.  ",
        f"Cases: {', '.join(info['cases'])}; {info['elapsed_s']:.0f} s in all.  ",
        f"How: each condition measured as blocks of {info['block']} rounds (`suite run --rounds {info['block']}`, "
        "fresh workers each round), blocks of all conditions spread evenly over the session; comparisons formed "
        f"from **disjoint subsets of the stored rounds**: A/A from {2 * r} consecutive base rounds (even against "
        f"odd), detection from {r} base against {r} planted rounds (the base rounds are shared between the A/A "
        "and detection scenarios, never within one). The planted work is a fraction of the fastest kernel time; "
        "the *measured* ratio is what each comparison saw.  ",
        f"Rule: `suite.track.compare.rounds_verdict` (every round beyond every round by the threshold, exact "
        f"rank p <= {info['alpha']:g} where the rounds can reach it). Inconclusive: a round measured under "
        "contention.",
    ]
    if warning := rounds_warning(r, info["alpha"]):
        lines += ["", f"> {warning}"]
    lines += threshold_sections(judged_by)
    return "\n".join(lines) + "\n"


def store_to_json(store: Store) -> dict[str, Any]:
    return {
        c: {k: [{"samples_s": list(r.samples), "contended": r.contended} for r in rs] for k, rs in by.items()}
        for c, by in store.items()
    }


def store_from_json(doc: dict[str, Any]) -> Store:
    return {
        c: {k: [Round(tuple(r["samples_s"]), bool(r["contended"])) for r in rs] for k, rs in by.items()}
        for c, by in doc.items()
    }


def case_of(key: str) -> Case:
    backend, form, shape, dtype, precision, kind = key.split(":")[:6]
    B, T, C = (int(v) for v in shape.split("x"))
    return Case(backend, form, B, T, C, dtype, precision, kind)


def rejudge_trials(trials: list[dict[str, Any]], limits: Thresholds) -> list[Judged]:
    """The first layout (one stored trial per comparison, rounds tagged by ``samples_round``)."""
    out: list[Judged] = []
    for t in trials:
        name = "A/A" if not t["fraction"] else f"{t['fraction']:.0%} planted"
        for key, b in t["base"].items():
            h = t["head"].get(key)
            if h is None:
                continue
            sides = []
            for d in (b, h):
                labels = d["samples_round"] or [0] * len(d["samples_s"])
                sides.append(
                    [
                        Round(tuple(s for s, k in zip(d["samples_s"], labels, strict=True) if k == r), d["contended"])
                        for r in sorted(set(labels))
                    ]
                )
            out += judge(name, case_of(key), [(sides[0], sides[1])], limits)
    return out


def rejudge(path: Path, thresholds: Sequence[float] | None, alpha: float, rounds: int) -> str:
    """The tables of a stored ``*-samples.json``: wall-clock (either layout) or counts."""
    doc = json.loads(path.read_text())
    if isinstance(doc, dict) and "counts" in doc:
        return rejudge_counts(doc, path, thresholds or [DEFAULT_COUNT_THRESHOLD])
    thresholds = thresholds or TIME_THRESHOLDS
    judged_by: dict[float, list[Judged]] = {}
    for thr in thresholds:
        limits = Thresholds(thr, alpha)
        if isinstance(doc, list):
            judged_by[thr] = rejudge_trials(doc, limits)
        elif "pairs" in doc:
            design = str(doc.get("info", {}).get("design", "ABBA"))
            judged_by[thr] = judge_pair_store(pairs_from_json(doc["pairs"]), limits, design)
        else:
            store = store_from_json(doc["rounds"])
            cases = [case_of(k) for k in dict.fromkeys(k for by in store.values() for k in by)]
            judged_by[thr] = judge_store(store, cases, doc["info"]["rounds"] if rounds <= 0 else rounds, limits)
    lines = [
        f"## Gate power, rejudged from {path.name}",
        "",
        f"Command: `python scripts/gatebench.py --rejudge {path}`",
    ]
    lines += threshold_sections(judged_by)
    return "\n".join(lines) + "\n"


def threshold_sections(judged_by: dict[float, list[Judged]]) -> list[str]:
    """Per threshold: the scenarios, detection by measured slowdown, and both by form."""
    lines: list[str] = []
    for thr, judged in judged_by.items():
        lines += ["", f"### Threshold {thr:.0%}", "", *power_scenarios(judged), "", *binned_table(judged)]
        lines += ["", "By form:", "", *form_table(judged)]
    return lines


# -- pairs: the gate's design ------------------------------------------------------------

#: Scenario -> (base condition, head condition), judged per process and case; no round is
#: used twice within a scenario.
PAIR_SCENARIOS = {
    "A/A": ("pair-a", "pair-b"),
    "10% planted": ("pair-a", "slowed-10"),
    "25% planted": ("pair-b", "slowed-25"),
}
#: One measuring process: its backend order and, by condition and case key (as ``numpy:...``), its rounds.
PairProcess = dict[str, Any]


def pair_plan(aa: int, detect: int, cases: int) -> list[list[str]]:
    """The conditions of each measuring process, in order.

    Enough processes with all four conditions for ``detect`` trials per plant, then
    A/A-only processes up to ``aa`` comparisons, spread evenly among them; every other
    process reverses its order, so no condition always runs first.
    """
    full = math.ceil(detect / cases)
    only_aa = max(0, math.ceil(aa / cases) - full)
    every, aa_only = list(PAIRED_CONDITIONS), ["pair-a", "pair-b"]
    marks = [((j + 0.5) / full, every if j % 2 == 0 else every[::-1]) for j in range(full)]
    marks += [((j + 0.5) / only_aa, aa_only if j % 2 == 0 else aa_only[::-1]) for j in range(only_aa)]
    return [c for _, c in sorted(marks, key=lambda m: (m[0], -len(m[1])))]


def as_numpy_key(key: str) -> str:
    """A condition's row key as the NumPy case it measures."""
    return "numpy:" + key.split(":", 1)[1]


def measure_pairs(args: argparse.Namespace, plans: Sequence[Sequence[str]], tmp: Path) -> list[PairProcess]:
    """One ``suite run --rounds R`` per plan; every round of every case, by condition."""
    select = ["--forms", args.forms, "--sizes", args.sizes, "--variants", "none"]
    # suite run splits its budget over the rounds; each of the gate's rounds samples the whole budget.
    flags = [*select, "--budget", repr(args.budget * args.rounds), "--rounds", str(args.rounds)]
    flags += ["--target-ci", "0.01", "--min-samples", "10", "--warmup", "0.05", "--no-ceilings"]
    flags += ["--on-contention", args.on_contention]
    side = ab.Side("pairs", ROOT, {"CAUSAL_BENCH_BACKENDS": PAIRED_PLUGINS})
    out: list[PairProcess] = []
    start = time.perf_counter()
    for i, plan in enumerate(plans):
        _, rows = ab.run_side(side, ["--backends", ",".join(plan), *flags], tmp / f"process{i}", 3600)
        rounds: dict[str, dict[str, list[Round]]] = {c: {} for c in plan}
        for row in rows:
            if row.status == "ok":
                parts = [Round(tuple(map(float, p)), row.contended) for p in round_samples(row)]
                rounds[row.backend][as_numpy_key(row.key)] = parts
        out.append({"order": list(plan), "rounds": rounds})
        print(f"[{i + 1}/{len(plans)}] {','.join(plan)}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return out


def measure_lockstep(args: argparse.Namespace, plans: Sequence[Sequence[str]], tmp: Path) -> list[PairProcess]:
    """Per plan and case, ``--rounds`` lockstep rounds (``suite.track.ab.run_lockstep``) of its conditions.

    Each round starts one fresh ``suite run --rounds 1 --lockstep`` per condition (its own
    backend), and the conductor hands out one sample a turn, ABBA; the first condition
    rotates from round to round. Every condition of a round places its input at the same
    page offset (``--input-offset``, ``suite.placement``), drawn per round from ``--seed``,
    as ``suite ab`` does; the offsets are stored with the samples.
    """
    select = ["--variants", "none", "--budget", repr(args.budget), "--min-samples", "10"]
    select += ["--target-ci", "0.01", "--warmup", "0.05", "--no-ceilings", "--rounds", "1", "--quiet"]
    env = {"CAUSAL_BENCH_BACKENDS": PAIRED_PLUGINS}
    step = ab.Step(args.budget, 10)
    out: list[PairProcess] = []
    start = time.perf_counter()
    cases = [(form, size) for size in args.sizes.split(",") for form in args.forms.split(",")]
    draws = iter(placement.offsets(args.seed, len(plans) * len(cases) * args.rounds))
    for i, plan in enumerate(plans):
        rounds: dict[str, dict[str, list[Round]]] = {c: {} for c in plan}
        placed: dict[str, list[int]] = {}
        for j, (form, size) in enumerate(cases):
            for r in range(args.rounds):
                names = list(plan[r % len(plan) :]) + list(plan[: r % len(plan)])
                offset = next(draws)
                placed.setdefault(f"{form} {size}", []).append(offset)
                runs = [
                    (
                        ab.Side(c, ROOT, env),
                        ["--backends", c, "--forms", form, "--sizes", size, *select, "--input-offset", str(offset)],
                        tmp / f"p{i}-{j}-r{r}-{c}",
                    )
                    for c in names
                ]
                for (_, rows), c in zip(ab.run_lockstep(runs, step, 3600), names, strict=True):
                    for row in rows:
                        if row.status == "ok":
                            got = rounds[c].setdefault(as_numpy_key(row.key), [])
                            got += [Round(tuple(map(float, p)), row.contended) for p in round_samples(row)]
                        else:
                            print(f"{c} {row.key}: {row.status}: {row.reason}", file=sys.stderr)
        out.append({"order": list(plan), "rounds": rounds, "input_offsets": placed})
        print(f"[{i + 1}/{len(plans)}] {','.join(plan)}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return out


def judge_pair_store(processes: Sequence[PairProcess], limits: Thresholds, design: str = "ABBA") -> list[Judged]:
    """Every scenario of every process and case, by the gate's paired rule (in the rounds' ``design``)."""
    out: list[Judged] = []
    for proc in processes:
        rounds = proc["rounds"]
        for scenario, (b, h) in PAIR_SCENARIOS.items():
            if b not in rounds or h not in rounds:
                continue
            for key in rounds[b]:
                if key in rounds[h]:
                    out.append(judge_pairs(scenario, case_of(key), rounds[b][key], rounds[h][key], limits, design))
    return out


def pairs_to_json(processes: Sequence[PairProcess]) -> list[dict[str, Any]]:
    return [
        {
            "order": p["order"],
            "rounds": {
                c: {k: [{"samples_s": list(r.samples), "contended": r.contended} for r in rs] for k, rs in by.items()}
                for c, by in p["rounds"].items()
            },
            **({"input_offsets": p["input_offsets"]} if "input_offsets" in p else {}),
        }
        for p in processes
    ]


def pairs_from_json(doc: Sequence[dict[str, Any]]) -> list[PairProcess]:
    return [
        {
            "order": p["order"],
            "rounds": {
                c: {k: [Round(tuple(r["samples_s"]), bool(r["contended"])) for r in rs] for k, rs in by.items()}
                for c, by in p["rounds"].items()
            },
        }
        for p in doc
    ]


def render_pairs(judged_by: dict[float, list[Judged]], info: dict[str, Any]) -> str:
    r = info["rounds"]
    if info.get("design") == "lockstep":
        title = f"wall-clock in lockstep (scripts/gatebench.py --mode lockstep, {r} rounds a comparison)"
        unit = "sets"
        how = (
            "How: the gate's design (`suite ab`'s lockstep rounds, `suite.track.ab.run_lockstep`) with the "
            "conditions as sides: `pair-a`, `pair-b` (nothing planted), `slowed-10`, `slowed-25` (10% and 25% of the "
            f"kernel's fastest time spun after every call). Each set measures every case in {r} rounds; each round "
            "starts one fresh `suite run --lockstep` per condition and hands out one sample a turn, ABBA, the first "
            "condition rotating by round. Sets beyond those the detection trials need run `pair-a` and `pair-b` "
            "alone. Per set and case: A/A = `pair-a` against `pair-b`, 10% = `pair-a` against `slowed-10`, 25% = "
            "`pair-b` against `slowed-25`. The *measured* ratio (median over rounds of each round's median sample "
            "ratio) is what each comparison saw.  "
        )
        if "placement_seed" in info:
            how += (
                "Every condition of a round places its input at one page offset, drawn per round from seed "
                f"{info['placement_seed']} (`suite run --input-offset`, `suite.placement`), as `suite ab` does.  "
            )
        rule = "in lockstep (median round ratio"
    else:
        title = f"wall-clock in pairs (scripts/gatebench.py --mode pairs, {r} pairs a comparison)"
        unit = "processes"
        how = (
            f"How: the gate's design. Each process is one `suite run --rounds {r}` whose backends are the conditions "
            "(`pair-a`, `pair-b`: nothing planted; `slowed-10`, `slowed-25`: 10% and 25% of the kernel's fastest "
            "time spun after every call); each round measures every case under every condition, each in a fresh "
            "worker, seconds apart, so round i of one condition pairs with round i of another as `suite ab` pairs "
            "base and head. Per process and case: A/A = `pair-a` against `pair-b`, 10% = `pair-a` against "
            "`slowed-10`, 25% = `pair-b` against `slowed-25` (no round used twice within a scenario). The *measured* "
            "ratio (median pair ratio) is what each comparison saw.  "
        )
        rule = "(median pair ratio"
    lines = [
        f"## Gate power, {title}",
        "",
        f"Command: `{info['command']}`  ",
        f"Machine: {info['machine']}; load average at start {info['load_start']}, at end {info['load_end']}; "
        f"background load: {info['load']}.  ",
        f"Cases: {', '.join(info['cases'])}; {info['processes']} {unit}, {info['elapsed_s']:.0f} s in all.  ",
        how,
        f"Rule: `suite.track.verdicts.paired_verdict` {rule} beyond the threshold and the exact "
        f"signed-rank p <= {info['alpha']:g}). Inconclusive: a round measured under contention.",
    ]
    if warning := rounds_warning(r, info["alpha"], paired=True):
        lines += ["", f"> {warning}"]
    lines += threshold_sections(judged_by)
    return "\n".join(lines) + "\n"


# -- counts ------------------------------------------------------------------------------

#: Plant ids to steps of planted work (``tests.fake_backends.plant_steps``); empty: none.
Plant = Mapping[str, int]
#: Instructions per call by case key, from one counted run with ``plant``.
CountRunner = Callable[[Plant, Path], dict[str, float]]
#: The counted plants, fractions of each case's own count.
COUNT_PLANTS = (0.02, 0.01)
#: The trials issue 21 asks for: per plant, and A/A (half of them with a hog). Every case
#: of a pair is one comparison, so the default pairs are these over the number of cases.
PLANT_TRIALS = 30
AA_TRIALS = 40


def count_run(sizes: str, forms: str = "cumsum") -> CountRunner:
    """The real counted run: ``suite run --metric instructions`` on the planted backend."""

    def run(plant: Plant, out: Path) -> dict[str, float]:
        # The plant in a file whose path is as long for every plant: the environment of
        # every run the same size (a longer one moves what the interpreter allocates).
        env = {"CAUSAL_BENCH_BACKENDS": PLANTED_PLUGIN, PLANT_FILE_ENV: str(write_plant(out.parent / "plants", plant))}
        flags = ["--metric", "instructions", "--backends", "planted", "--forms", forms, "--sizes", sizes]
        ab.run_side(ab.Side("counted", ROOT, env), [*flags, "--rounds", "1", "--no-ceilings"], out, 3600)
        _, rows = load_run(out)
        return {r.key: r.instructions for r in rows if r.status == "ok"}

    return run


@dataclass
class Calibration:
    """Each case's count with nothing planted, and what one step of planted work adds to it."""

    base: dict[str, float]
    per_step: dict[str, float]

    def plant(self, fraction: float) -> dict[str, int]:
        """Each case's steps for ``fraction`` of its own count."""
        return {plant_id(k): steps_for(fraction, self.base[k], self.per_step[k]) for k in self.per_step}

    def expected(self, fraction: float) -> dict[str, float]:
        """The change each case's plant is sized to make: ``fraction`` up to a rounded step."""
        steps = self.plant(fraction)
        return {k: steps[plant_id(k)] * self.per_step[k] / self.base[k] for k in self.per_step}


def calibrate(runner: CountRunner, tmp: Path) -> Calibration:
    """Two counted runs, 0 and ``CALIBRATION_STEPS`` steps everywhere: the per-step cost of every case, exactly.

    Counts are deterministic and a step costs the same every time, so the difference
    over the steps is the slope itself, with no model of the case's own cost (the
    first model, 174 instructions a step and a NumPy cumsum's cost by size, planted
    0.4-0.8% for a nominal 1-2%).
    """
    base = runner({}, tmp / "calibrate-0")  # folders of one length, as the pairs' are
    more = runner({"*": CALIBRATION_STEPS}, tmp / "calibrate-1")
    per_step = {k: (more[k] - base[k]) / CALIBRATION_STEPS for k in base if k in more}
    bad = sorted(k for k, v in per_step.items() if not v > 0)
    if bad:
        raise RuntimeError(f"the planted work added nothing to {', '.join(bad)}: the plant does not reach them")
    return Calibration({k: base[k] for k in per_step}, per_step)


def default_pairs(cases: int) -> tuple[int, int]:
    """(A/A pairs, pairs per plant) that give ``AA_TRIALS`` A/A comparisons, half with a hog, and
    ``PLANT_TRIALS`` per plant: each case of a pair is one comparison."""
    cases = max(cases, 1)
    return 2 * math.ceil(AA_TRIALS / 2 / cases), math.ceil(PLANT_TRIALS / cases)


def measure_counts(
    runner: CountRunner,
    pairs_aa: int | None,
    pairs_plant: int | None,
    tmp: Path,
    hog_start: Callable[[], Any] = lambda: None,
    info: dict[str, Any] | None = None,
) -> list[Counted]:
    """Calibrate the plant, then A/A pairs (the second half with a hog running), then pairs at 2% and at 1%.

    ``pairs_aa`` and ``pairs_plant`` None: ``default_pairs`` for the cases the calibration
    counted. ``info`` receives the calibration and the pairs run.
    """
    cal = calibrate(runner, tmp)
    aa_default, plant_default = default_pairs(len(cal.base))
    pairs_aa = aa_default if pairs_aa is None else pairs_aa
    pairs_plant = plant_default if pairs_plant is None else pairs_plant
    plants = {f: cal.plant(f) for f in COUNT_PLANTS}
    if info is not None:
        info["pairs_aa"], info["pairs_plant"] = pairs_aa, pairs_plant
        info["calibration"] = {
            k: {
                "base": cal.base[k],
                "per_step": cal.per_step[k],
                "steps": {repr(f): plants[f][plant_id(k)] for f in plants},
            }
            for k in cal.base
        }
        info["expected"] = {repr(f): cal.expected(f) for f in COUNT_PLANTS}
    out: list[Counted] = []
    plan = [("A/A", 0.0, j >= pairs_aa // 2) for j in range(pairs_aa)]
    plan += [(f"{f:.0%} planted", f, False) for f in COUNT_PLANTS for _ in range(pairs_plant)]
    for i, (name, fraction, with_hog) in enumerate(plan):
        hog = hog_start() if with_hog else None
        try:
            base = runner({}, tmp / f"pair{i}-base")
            head = runner(plants[fraction] if fraction else {}, tmp / f"pair{i}-head")
        finally:
            if hog is not None:
                stop_hog(hog)
        scenario = f"{name}, CPU hog on the other core" if with_hog else name
        out += [Counted(scenario, k, base[k], head[k], with_hog) for k in base if k in head]
        print(f"[{i + 1}/{len(plan)}] {scenario}", file=sys.stderr)
    return out


def plant_lines(info: dict[str, Any]) -> list[str]:
    """How the plants were sized, and the change each was sized to make."""
    cal = info.get("calibration")
    if not cal:
        return []
    per_step = [c["per_step"] for c in cal.values()]
    lines = [
        f"Plant: `sum(repeat(0, steps))` after every call, sized by count: each case counted with 0 and "
        f"{CALIBRATION_STEPS} steps gave its cost per step ({min(per_step):.3f} to {max(per_step):.3f} "
        "instructions); each case then gets round(fraction x its count / cost per step) steps."
    ]
    for f, expected in info.get("expected", {}).items():
        vals = list(expected.values())
        lines[-1] += "  "
        lines.append(f"{float(f):.0%} planted: sized to {min(vals):+.3%} to {max(vals):+.3%} (the rounding of a step).")
    return lines


def render_counts(counted: Sequence[Counted], thresholds: Sequence[float], info: dict[str, Any]) -> str:
    cases = len(info.get("calibration", {})) or len({c.case for c in counted})
    lines = [
        "## Gate power, instruction counts (scripts/gatebench.py --mode counts)",
        "",
        f"Command: `{info['command']}`  ",
        f"Machine: {info['machine']}; {info['elapsed_s']:.0f} s in all.  ",
        f"Each pair: `suite run --metric instructions` on `planted` (sizes {info['sizes']}, {cases} cases) with no "
        "planted work, then with the scenario's; every case of the pair is one comparison"
        + (
            f" ({info['pairs_aa']} A/A pairs, half with a CPU hog; {info['pairs_plant']} pairs per plant)"
            if "pairs_aa" in info
            else ""
        )
        + ". Rule: slower beyond the counted threshold, no test.  ",
        *plant_lines(info),
    ]
    for threshold in thresholds:
        lines += ["", f"### Counted threshold {threshold:.1%}", "", *count_table(counted, threshold)]
    return "\n".join(lines) + "\n"


def rejudge_counts(doc: dict[str, Any], path: Path, thresholds: Sequence[float]) -> str:
    """A stored counts file's tables again, at ``thresholds``."""
    counted = [Counted(**c) for c in doc["counts"]]
    info = {**doc.get("info", {}), "command": f"python scripts/gatebench.py --rejudge {path}"}
    info.setdefault("elapsed_s", 0.0)
    return render_counts(counted, thresholds, info)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python scripts/gatebench.py", description=__doc__.splitlines()[0])
    p.add_argument(
        "--mode",
        choices=("lockstep", "pairs", "time", "counts"),
        default="lockstep",
        help="wall-clock in lockstep (the gate's design), in pairs of rounds (ABBA), in blocks, or counts; "
        "default lockstep",
    )
    p.add_argument(
        "--sizes", default=None, help="BxTxC list; default the gate's (pairs), 8x128x32,8x512x64,16x512x128 (time)"
    )
    p.add_argument(
        "--forms", default=None, help="comma-separated forms; default cumsum,matrix,loop (pairs), cumsum (time)"
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help=f"rounds a side per comparison; default the gate's {GATE_ROUNDS} (pairs), 5 (time)",
    )
    p.add_argument("--block", type=int, default=5, help="rounds per measuring process; default 5")
    p.add_argument("--seed", type=int, default=1337, help="seed of the rounds' input offsets (lockstep); default 1337")
    p.add_argument("--aa", type=int, default=78, help="A/A comparisons at least; default 78")
    p.add_argument("--detect", type=int, default=21, help="trials per planted slowdown at least; default 21")
    p.add_argument(
        "--budget", type=float, default=GATE_BUDGET, help=f"sampling seconds per case and round; default {GATE_BUDGET}"
    )
    p.add_argument("--thresholds", default=None, help="thresholds to judge at; default 0.05,0.02,0.0 (time), "
                   "the counted threshold (counts)")  # fmt: skip
    p.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    p.add_argument("--load", type=float, default=0.0, help="background CPU hog duty, 0 to 1; default 0 (none)")
    p.add_argument("--hog-limit", type=float, default=3600.0, help="seconds after which a hog stops itself")
    p.add_argument("--on-contention", default="flag", help="the runs' contention policy; default flag (no waiting)")
    p.add_argument("--count-sizes", default="4x16x32,4x32x32,4x64x32,4x128x32,4x256x32,8x16x64,8x32x64,8x64x64,"
                   "8x128x64,8x256x64", help="sizes of the counted cases (each one comparison per pair)")  # fmt: skip
    p.add_argument("--count-forms", default="cumsum", help="forms of the counted cases (each with its variants)")
    p.add_argument("--pairs-aa", type=int, default=None,
                   help=f"counted A/A pairs, half with a hog; default: enough for {AA_TRIALS} comparisons")  # fmt: skip
    p.add_argument("--pairs-plant", type=int, default=None, help="counted pairs at 2%% and at 1%%; default: "
                   f"enough for {PLANT_TRIALS} comparisons each")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("results/gatebench"), help="the .md and .json go here")
    p.add_argument("--rejudge", type=Path, default=None, help="print the tables for a stored *-samples.json")
    return p


def main(argv: Sequence[str] | None = None, count_runner: CountRunner | None = None) -> int:
    args = parser().parse_args(argv)
    pairs = args.mode in ("pairs", "lockstep")
    args.sizes = args.sizes or (",".join("x".join(map(str, s)) for s in PRESETS["gate"]) if pairs else TIME_SIZES)
    args.forms = args.forms or ("cumsum,matrix,loop" if pairs else "cumsum")
    args.rounds = args.rounds or (GATE_ROUNDS if pairs else 5)
    thresholds = [float(t) for t in args.thresholds.split(",")] if args.thresholds else None
    if args.rejudge is not None:
        print(rejudge(args.rejudge, thresholds, args.alpha, 0), end="")
        return 0
    if not 0 <= args.load < 1:
        parser().error("--load must be in [0, 1)")
    m = machine_info()
    info: dict[str, Any] = {
        "command": "python scripts/gatebench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{m['cpu_model']}, {m['cpu_count']} cores, fingerprint {m['fingerprint']}",
        "load_start": _load(),
        "rounds": args.rounds,
        "block": args.block,
        "alpha": args.alpha,
        "load": f"a CPU hog at {args.load:.0%} duty" if args.load > 0 else "none started",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    hog = start_hog(args.load, args.hog_limit)
    try:
        with tempfile.TemporaryDirectory(prefix="causal-bench-gatebench-") as tmp:
            if args.mode == "counts":
                runner = count_runner or count_run(args.count_sizes, args.count_forms)
                counted = measure_counts(
                    runner, args.pairs_aa, args.pairs_plant, Path(tmp), lambda: start_hog(1.0, args.hog_limit), info
                )
            else:
                cases = [Case("numpy", f, *s) for s in parse_sizes(args.sizes) for f in args.forms.split(",")]
                info["cases"] = [c.key for c in cases]
                if pairs:
                    plans = pair_plan(args.aa, args.detect, len(cases))
                    info["processes"] = len(plans)
                    info["design"] = "lockstep" if args.mode == "lockstep" else "ABBA"
                    if args.mode == "lockstep":
                        info["placement_seed"] = args.seed
                    measure = measure_lockstep if args.mode == "lockstep" else measure_pairs
                    processes = measure(args, plans, Path(tmp))
                else:
                    order = spread_evenly(plan_blocks(args.aa, args.detect, len(cases), args.rounds, args.block))
                    store = measure_time(args, cases, order, Path(tmp))
    finally:
        stop_hog(hog)
    info["elapsed_s"] = time.perf_counter() - start
    info["load_end"] = _load()
    if args.mode == "counts":
        info["sizes"] = args.count_sizes
        markdown = render_counts(counted, thresholds or [DEFAULT_COUNT_THRESHOLD], info)
        raw: Any = {"info": info, "counts": [vars(c) for c in counted]}
    elif pairs:
        judged_by = {
            t: judge_pair_store(processes, Thresholds(t, args.alpha), info["design"])
            for t in thresholds or TIME_THRESHOLDS
        }
        markdown = render_pairs(judged_by, info)
        raw = {"info": info, "pairs": pairs_to_json(processes)}
    else:
        limits = thresholds or TIME_THRESHOLDS
        judged_by = {t: judge_store(store, cases, args.rounds, Thresholds(t, args.alpha)) for t in limits}
        markdown = render_time(judged_by, info)
        raw = {"info": info, "rounds": store_to_json(store)}
    stem = f"{args.mode}-load{round(args.load * 100)}"
    write_atomic(args.out / f"{stem}.md", markdown)
    write_atomic(args.out / f"{stem}-samples.json", json.dumps(raw) + "\n")
    print(markdown, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
