"""Pick the chunked form's block size K per backend by measurement.

Times the chunked form of each CPU backend at one shape for several K with the
suite's own timer and prints the median per K (and GB/s of compulsory traffic).
``results/tuning/chunk_block.md`` holds the figures this printed, behind each backend's ``chunk_block``.

    python scripts/chunk_block_size.py --size 8x1024x256 --blocks 8,16,32,64,128
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backends import get_backend
from suite.reference import make_input
from suite.timing import Timer, TimerConfig


def build(name: str, x: Any, block: int) -> Any:
    """The chunked form of backend ``name`` at block size ``block``, compiled where the backend compiles."""
    if name == "numpy":
        from backends import numpy_backend

        return lambda: numpy_backend.chunked(x, block)
    if name in ("torch", "torch-compile"):
        import torch

        from backends import torch_eager

        fn = partial(torch_eager.chunked, block=block)
        if name == "torch-compile":
            torch._dynamo.reset()
            fn = torch.compile(fn, dynamic=False)
        fn(x)
        return lambda: fn(x)
    if name == "jax":
        import jax

        from backends import jax_jit

        compiled = jax.jit(partial(jax_jit.chunked, block=block)).lower(x).compile()
        return lambda: compiled(x)
    raise SystemExit(f"unknown backend {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="8x1024x256")
    parser.add_argument("--blocks", default="8,16,32,64,128,256")
    parser.add_argument("--backends", default="numpy,torch,torch-compile,jax")
    parser.add_argument("--budget", type=float, default=0.5, help="seconds of sampling per point")
    args = parser.parse_args()
    B, T, C = (int(v) for v in args.size.split("x"))
    blocks = [int(k) for k in args.blocks.split(",")]
    config = TimerConfig(budget_s=args.budget)
    print(f"chunked form, {B}x{T}x{C} float32: median ms (GB/s of read x + write out)")
    print(f"{'backend':<14}" + "".join(f"{f'K={k}':>16}" for k in blocks))
    for name in args.backends.split(","):
        adapter = get_backend(name, "cpu")
        x = adapter.to_device(make_input((B, T, C)), "float32")
        cells = []
        for k in blocks:
            m = Timer(build(name, x, k), adapter.sync, config).measure()
            gbs = 2 * B * T * C * 4 / m.median / 1e9
            cells.append(f"{m.median * 1e3:7.3f} ({gbs:4.1f})")
        print(f"{name:<14}" + "".join(f"{c:>16}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
