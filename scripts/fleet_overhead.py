"""What Ray adds per case: the same cases through the local runner and through a Ray cluster, alternating.

Run it inside a private network namespace with loopback only (Ray must talk on
127.0.0.1 alone; the script refuses anywhere else)::

    unshare -n sh -c 'ip link set lo up && python scripts/fleet_overhead.py --out results/fleet'

It starts a ``ray.cluster_utils.Cluster`` on this machine (one node with one
``bench_slot``, so cases run one at a time as they do locally) and times the same
sweep through the default local runner and through the cluster in ``--passes``
alternating passes (local, Ray, local, Ray, ...), so a slow minute of the
machine hits both. Both paths run each case in a spawned worker per backend kept
across its cases (on the cluster, the node's lane's); the Ray path adds, per case,
the lane's call for its next case and the result's trip home, and per sweep the
lane's start and end and the run's queue. Per runner it reports the
median over the passes of the wall time per case with a 95% bootstrap interval
(``scipy.stats.bootstrap``), the time the case itself took (``elapsed_s``) and
the difference, what the runner adds; the ratio is the median of the passes'
paired ratios, with its interval. Starting the cluster and joining it are
reported apart: they are paid once per run, not per case.

``--default-sweep`` also times the default sweep (``python -m suite run`` with
no sweep flags) end to end, once locally and once with ``--cluster local``
(which starts a one-node cluster itself): minutes each.

The figures depend on the machine being idle: the lead runs this on a quiet
machine and commits its folder; the load average at the start and end is stored.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from suite import machine
from suite.cases import RunOptions, SweepSpec, parse_sizes
from suite.cli.run import DEFAULT_BUDGET, DEFAULT_ROUNDS
from suite.results import Row
from suite.session import run_cases
from suite.timing import TimerConfig

MIN_PASSES = 5
CONFIDENCE = 0.95


def sweep(options: RunOptions, spec: SweepSpec) -> tuple[float, list[Row]]:
    rows: list[Row] = []
    start = time.perf_counter()
    for _ in run_cases(spec.cases(), options, rows.append):
        pass
    return time.perf_counter() - start, rows


def median_interval(values: Sequence[float]) -> dict[str, float]:
    """Median of ``values`` and its 95% bootstrap interval (BCa where it is defined, else percentile)."""
    import numpy as np
    from scipy.stats import bootstrap

    data = (np.asarray(values, dtype=float),)
    try:
        ci = bootstrap(
            data, np.median, confidence_level=CONFIDENCE, n_resamples=9999, random_state=0
        ).confidence_interval
    except ValueError:  # degenerate samples (all equal): BCa is undefined
        ci = bootstrap(
            data, np.median, confidence_level=CONFIDENCE, n_resamples=9999, random_state=0, method="percentile"
        ).confidence_interval
    return {"median": float(statistics.median(values)), "low": float(ci.low), "high": float(ci.high)}


def default_sweep_walls(scratch: Path) -> dict[str, float]:
    """Wall seconds of the default sweep through ``python -m suite run``, locally and with ``--cluster local``."""
    walls: dict[str, float] = {}
    for name, extra in (("local", []), ("ray", ["--cluster", "local"])):
        out = scratch / f"default-{name}"
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "suite", "run", "--quiet", "--out", str(out), *extra],
            capture_output=True,
            text=True,
        )
        walls[name] = time.perf_counter() - start
        if done.returncode not in (0, 1):  # 1: some case failed or was skipped; the wall time still counts
            raise SystemExit(f"the default sweep ({name}) failed: {done.stderr.strip()[-2000:]}")
    return walls


def markdown(result: dict[str, Any], args: argparse.Namespace, n_cases: int) -> str:
    info, per = result["machine"], result["per_case"]
    ratio = result["wall_per_case_ratio_ray_over_local"]
    lines = [
        "# What Ray adds per case",
        "",
        f"Command: `{result['command']}` ({result['when']}, {info.get('cpu_model')}, "
        f"{info.get('cpu_count')} cores; load average {result['load_average_at_start'][0]} at the start and "
        f"{result['load_average_at_end'][0]} at the end).",
        "",
        f"Sweep: {n_cases} cases ({args.backends}; {args.forms}; sizes {args.sizes}; `suite run`'s budget "
        f"{args.budget:g} s a case over {args.rounds} rounds), {args.passes} passes "
        "through each runner, alternating; medians over the passes with 95% bootstrap intervals.",
        "",
        "| runner | wall per case | the case itself | added by the runner |",
        "|---|---|---|---|",
    ]
    for k in ("local", "ray"):
        w = per[k]["wall_per_case_s"]
        lines.append(
            f"| {k} | {w['median']:.3f} s [{w['low']:.3f}, {w['high']:.3f}] | "
            f"{per[k]['case_s']['median']:.3f} s | {per[k]['added_s']:.3f} s |"
        )
    lines += [
        "",
        f"**Ratio (Ray / local), wall time per case: {ratio['median']:.2f}x "
        f"[{ratio['low']:.2f}, {ratio['high']:.2f}].** Paid once per run besides: starting the cluster "
        f"{result['cluster_start_s']:.1f} s, joining it {result['join_s']:.1f} s.",
        "",
    ]
    if "default_sweep_wall_s" in result:
        d = result["default_sweep_wall_s"]
        lines += [
            f"The default sweep end to end (`python -m suite run`, one pass each): local {d['local']:.0f} s, "
            f"`--cluster local` {d['ray']:.0f} s ({d['ray'] / d['local']:.2f}x), cluster start included.",
            "",
        ]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("results/fleet"))
    p.add_argument("--backends", default="numpy")
    p.add_argument("--forms", default="cumsum,loop,matrix")
    p.add_argument("--sizes", default="small")
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET, help=f"seconds per case; default {DEFAULT_BUDGET}")
    p.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help=f"rounds per case; default {DEFAULT_ROUNDS}")
    p.add_argument("--passes", type=int, default=MIN_PASSES, help=f"alternating passes per runner (>= {MIN_PASSES})")
    p.add_argument("--default-sweep", action="store_true", help="also time the default sweep, local and Ray (minutes)")
    args = p.parse_args()
    if args.passes < MIN_PASSES:
        p.error(f"--passes: at least {MIN_PASSES}, for a median with an interval")
    if [name for _, name in socket.if_nameindex()] != ["lo"]:
        print(
            "refusing to start Ray outside a network namespace with loopback only; see the docstring", file=sys.stderr
        )
        return 2
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    from ray.cluster_utils import Cluster

    spec = SweepSpec(
        backends=tuple(args.backends.split(",")), forms=tuple(args.forms.split(",")), sizes=parse_sizes(args.sizes)
    )
    # `suite run`'s own timer and rounds (the default budget, split over the rounds); ceilings are
    # measured once per run in both paths and left out of the per-case figure.
    timer = TimerConfig(budget_s=args.budget, target_rel_ci=0.02, warmup_s=0.05, min_samples=5)
    local = RunOptions(timer=timer, ceilings=False, rounds=args.rounds, on_contention="flag")
    load_start = [round(x, 2) for x in os.getloadavg()]
    t0 = time.perf_counter()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "resources": {"bench_slot": 1},
            "include_dashboard": False,
            "object_store_memory": 80 << 20,
        },
    )
    started_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ray.init(address=cluster.address, log_to_driver=False, logging_level="WARNING")
    joined_s = time.perf_counter() - t0
    fleet = dataclasses.replace(local, cluster=cluster.address)
    runs: dict[str, list[dict[str, float]]] = {"local": [], "ray": []}
    try:
        for _ in range(args.passes):
            for name, options in (("local", local), ("ray", fleet)):
                wall, rows = sweep(options, spec)
                assert all(r.status == "ok" for r in rows), [(r.key, r.status, r.reason) for r in rows]
                n = len(rows)
                runs[name].append(
                    {"cases": n, "wall_per_case_s": wall / n, "case_s": sum(r.elapsed_s for r in rows) / n}
                )
    finally:
        ray.shutdown()
        cluster.shutdown()

    per: dict[str, dict[str, Any]] = {}
    for k, passes in runs.items():
        per_case = median_interval([r["wall_per_case_s"] for r in passes])
        inside = median_interval([r["case_s"] for r in passes])
        per[k] = {"wall_per_case_s": per_case, "case_s": inside, "added_s": per_case["median"] - inside["median"]}
    pairs = zip(runs["local"], runs["ray"], strict=True)
    paired = [ray_pass["wall_per_case_s"] / local_pass["wall_per_case_s"] for local_pass, ray_pass in pairs]
    info = machine.machine_info()
    result: dict[str, Any] = {
        "command": "unshare -n sh -c 'ip link set lo up && python scripts/fleet_overhead.py "
        + " ".join(sys.argv[1:])
        + "'",
        "when": machine.now_iso(),
        "machine": {k: info.get(k) for k in ("cpu_model", "cpu_count", "memory_gib", "fingerprint")},
        "load_average_at_start": load_start,
        "sweep": dataclasses.asdict(spec),
        "cluster_start_s": started_s,
        "join_s": joined_s,
        "runs": runs,
        "per_case": per,
        "wall_per_case_ratio_ray_over_local": median_interval(paired),
    }
    if args.default_sweep:
        with tempfile.TemporaryDirectory(prefix="fleet-overhead-") as scratch:
            result["default_sweep_wall_s"] = default_sweep_walls(Path(scratch))
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "overhead.json").write_text(json.dumps(result, indent=1) + "\n")
    text = markdown(result, args, len(spec.cases()))
    (args.out / "overhead.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
