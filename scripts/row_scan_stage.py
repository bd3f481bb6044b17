"""Pick the NumPy row scan's staging size (``numpy_backend.STAGE_BYTES``) by measurement.

Times NumPy's ``cumsum[staged]`` variant at one shape for several staging sizes with the
suite's own timer, beside a plain copy of x into out (the ceiling a streaming scan
is judged by), and prints the median per size with its fraction of that copy.
``results/tuning/numpy-row-scan.md`` holds what this printed.

    python scripts/row_scan_stage.py --size 8x4096x1024 --stages 128,256,512,1024,2048,4096,8192
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backends.numpy_backend import aligned_like, staged_cumsum
from suite.reference import make_input
from suite.timing import Timer, TimerConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="8x4096x1024")
    parser.add_argument("--stages", default="128,256,512,1024,2048,4096,8192", help="staging sizes in KiB")
    parser.add_argument("--budget", type=float, default=1.0, help="seconds of sampling per point")
    parser.add_argument("--repeat", type=int, default=3, help="passes over the sizes, interleaved")
    args = parser.parse_args()
    B, T, C = (int(v) for v in args.size.split("x"))
    stages = [int(k) for k in args.stages.split(",")]
    x = make_input((B, T, C)).astype(np.float32)
    out = aligned_like(x.shape, x)  # as the adapter keeps it
    config = TimerConfig(budget_s=args.budget)

    def median_ms(fn: object) -> float:
        return Timer(fn, lambda _: None, config).measure().median * 1e3  # type: ignore[arg-type]

    print(f"numpy cumsum[staged], {B}x{T}x{C} float32, one thread: median ms (fraction of a copy of x into out)")
    print(f"{'pass':<6}{'copy':>10}" + "".join(f"{f'{k} KiB':>18}" for k in stages))
    for p in range(args.repeat):
        copy = median_ms(lambda: np.copyto(out, x))
        cells = []
        for k in stages:
            ms = median_ms(lambda k=k: staged_cumsum(x, out, k * 1024))
            cells.append(f"{ms:8.2f} ({copy / ms:4.0%})")
        print(f"{p + 1:<6}{copy:10.2f}" + "".join(f"{c:>18}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
