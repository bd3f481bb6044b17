"""What Ray adds per case: the same cases through the local runner and through a Ray cluster, in one run.

Run it inside a private network namespace with loopback only (Ray must talk on
127.0.0.1 alone; the script refuses anywhere else)::

    unshare -n sh -c 'ip link set lo up && python scripts/fleet_overhead.py --out results/fleet'

It starts a ``ray.cluster_utils.Cluster`` on this machine (one node with one
``bench_slot``, so cases run one at a time as they do locally), then times the
same sweep alternately through the default local runner (one spawned worker per
backend, reused across its cases) and through the cluster (one fresh Ray worker
process per case, ``max_calls=1``), ``--repeats`` times each. Per case it reports
the wall time, the time the case itself took (``elapsed_s``, the same pipeline on
both paths), and the difference: what the runner adds. The ratio of wall times
per case is the figure the README quotes. Cluster start and joining it are
reported apart: they are paid once per run, not per case.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from suite import machine
from suite.cases import RunOptions, SweepSpec, parse_sizes
from suite.results import Row
from suite.session import run_cases
from suite.timing import TimerConfig


def sweep(options: RunOptions, spec: SweepSpec) -> tuple[float, list[Row]]:
    rows: list[Row] = []
    start = time.perf_counter()
    for _ in run_cases(spec.cases(), options, rows.append):
        pass
    return time.perf_counter() - start, rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("results/fleet"))
    p.add_argument("--backends", default="numpy")
    p.add_argument("--forms", default="cumsum,loop,matrix")
    p.add_argument("--sizes", default="small")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
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
    timer = TimerConfig(budget_s=0.05, warmup_s=0.01, min_samples=5)
    local = RunOptions(timer=timer, ceilings=False, rounds=1, on_contention="flag")
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
        for _ in range(args.repeats):
            for name, options in (("local", local), ("ray", fleet)):
                wall, rows = sweep(options, spec)
                n = len(rows)
                inside = sum(r.elapsed_s for r in rows) / n
                runs[name].append({"cases": n, "wall_per_case_s": wall / n, "case_s": inside})
                assert all(r.status == "ok" for r in rows), [(r.key, r.status, r.reason) for r in rows]
    finally:
        ray.shutdown()
        cluster.shutdown()

    def med(name: str, field: str) -> float:
        return statistics.median(r[field] for r in runs[name])

    ratio = med("ray", "wall_per_case_s") / med("local", "wall_per_case_s")
    added = {k: med(k, "wall_per_case_s") - med(k, "case_s") for k in runs}
    info = machine.machine_info()
    result: dict[str, Any] = {
        "command": "unshare -n sh -c 'ip link set lo up && python scripts/fleet_overhead.py "
        + " ".join(sys.argv[1:])
        + "'",
        "when": machine.now_iso(),
        "machine": {k: info.get(k) for k in ("cpu_model", "cpu_count", "memory_gib", "fingerprint")},
        "load_average_at_start": load_start,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "sweep": dataclasses.asdict(spec),
        "cluster_start_s": started_s,
        "join_s": joined_s,
        "runs": runs,
        "wall_per_case_ratio_ray_over_local": ratio,
        "runner_added_per_case_s": added,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "overhead.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        "# What Ray adds per case",
        "",
        f"Command: `{result['command']}` ({result['when']}, {info.get('cpu_model')}, "
        f"{info.get('cpu_count')} cores; load average {load_start[0]} at the start and "
        f"{result['load_average_at_end'][0]} at the end: the machine was shared with other work while it ran, "
        "so every figure here is contended).",
        "",
        f"Sweep: {len(spec.cases())} cases ({args.backends}; {args.forms}; sizes {args.sizes}), "
        f"{args.repeats} passes through each runner, alternating; medians over the passes.",
        "",
        "| runner | wall per case | the case itself | added by the runner |",
        "|---|---|---|---|",
        *(
            f"| {k} | {med(k, 'wall_per_case_s'):.3f} s | {med(k, 'case_s'):.3f} s | {added[k]:.3f} s |"
            for k in ("local", "ray")
        ),
        "",
        f"**Ratio (Ray / local), wall time per case: {ratio:.2f}x.** Paid once per run besides: starting the "
        f"cluster {started_s:.1f} s, joining it {joined_s:.1f} s.",
        "",
        "The local runner keeps one worker process per backend across its cases; the Ray path starts a fresh "
        "worker process for every case (`max_calls=1`: the isolation a benchmark wants), so most of what it adds "
        "is a Python process start and the imports of NumPy, the suite and Ray.",
        "",
    ]
    (args.out / "overhead.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
