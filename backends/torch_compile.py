"""torch.compile adapter: the eager form functions, compiled by TorchInductor.

Each build resets dynamo and compiles with ``dynamic=False`` so every case gets
its own static-shape graph: otherwise the second shape would trigger automatic
dynamic shapes and, past the recompile limit, a silent fallback to eager.

The loop form is compiled as the same Python double loop a user would write.
Dynamo unrolls it into B*T steps, so its compile time grows with B*T; the adapter
keeps a measured model of that growth (``CompileModel``) and the runner refuses
cases whose predicted compile time exceeds the limit.
"""

from __future__ import annotations

import shutil
from typing import Any, ClassVar

from backends import _probes
from backends._attention import torch_ran
from backends._common import CompileModel, timed_first_call
from backends.base import Availability, Built, CaseUnsupported
from backends.torch_eager import TorchEagerBackend

#: Step counts compiled to seed the loop's compile-time model when this process
#: has not yet measured two sizes, after one unrecorded warm-up compile (the first
#: compile of a process pays one-off costs that would hide the growth). Why these
#: two: results/tuning/compile_probe.md. Their times are kept for the next process
#: on this machine and torch version (``backends._probes``).
PROBE_STEPS: tuple[int, ...] = (8, 32)


class TorchCompileBackend(TorchEagerBackend):
    name = "torch-compile"
    module = "torch"
    extra = "torch"
    #: Block size of the chunked form per device type: results/tuning/chunk_block.md.
    chunk_block: ClassVar[dict[str, int]] = {"cpu": 16, "cuda": 64}

    def __init__(self, device: str = "auto") -> None:
        super().__init__(device)
        #: Compile-time models of the forms whose compile grows with the shape (the unrolled loop).
        self.compile_models: dict[str, CompileModel] = {}

    def _device_availability(self) -> Availability:
        base = super()._device_availability()
        if not base.ok:
            return base
        if not self.is_gpu() and shutil.which("g++") is None and shutil.which("c++") is None:
            return Availability(False, "TorchInductor needs a C++ compiler on the CPU: install g++")
        return base

    def _build(self, form: str, x: Any, precision: str) -> Built:
        compiled, seconds, cached = self._compile(self._prepare(form, precision), x)
        if form == "loop" and not cached:
            # A graph served from Inductor's on-disk cache compiles in a fraction of
            # the cold time; fitting it would make large loops look cheap to compile.
            self._loop_model().add(loop_steps(tuple(x.shape)), seconds)
        notes = "graph served from the Inductor cache" if cached else ""
        return Built(lambda: compiled(x), compile_s=seconds, notes=notes)

    def _compile(self, impl: Any, *args: Any) -> tuple[Any, float, bool]:
        """``impl`` compiled afresh and called once on ``args``: (compiled, seconds, served from cache)."""
        torch = self.torch
        torch._dynamo.reset()
        compiled = torch.compile(impl, dynamic=False)
        hits = _cache_hits()
        _, seconds = timed_first_call(lambda: compiled(*args), self.sync)
        return compiled, seconds, _cache_hits() > hits

    def _build_kernel(self, form: str, x: Any, precision: str, kernel: str) -> Built:
        """SDPA compiled with ``kernel`` pinned while Dynamo traces; the profiler says what then runs.

        Inductor may lower SDPA to its own code instead of the pinned kernel (on the
        CPU it emits batched matmuls and a softmax, whatever the pin): a pinned kernel
        that does not run is a skipped case, and ``auto`` records what ran.
        """
        impl, qkv = self._attention(x, precision, kernel)
        compiled, seconds, cached = self._compile(impl, *qkv)
        ran = torch_ran(lambda: self.sync(compiled(*qkv)))
        # No SDPA operator in the profile: Inductor compiled the math algorithm itself.
        what = ran or "math (Inductor's own matmuls and softmax; no SDPA kernel in the profile)"
        if kernel not in ("auto", ran or "math"):
            raise CaseUnsupported(f"torch.compile on {self.device()} does not run the {kernel} kernel: it ran {what}")
        notes = [
            f"auto ran {what}" if kernel == "auto" else "",
            "graph served from the Inductor cache" if cached else "",
        ]
        return Built(lambda: compiled(*qkv), compile_s=seconds, notes="; ".join(filter(None, notes)))

    def _loop_model(self) -> CompileModel:
        return self.compile_models.setdefault("loop", CompileModel())

    def estimate_compile_s(self, form: str, shape: tuple[int, int, int], dtype: str) -> tuple[float, str] | None:
        """Predict the compile time of ``form`` at ``shape`` from measured compiles.

        Only the unrolled loop has a compile time that depends on the shape enough
        to matter. When fewer than two sizes have been compiled in this process,
        the loop's probe seeds the model: compiles at ``PROBE_STEPS`` (B=1, C=1)
        kept by an earlier process on this machine, else measured now and kept.
        """
        if form != "loop":
            return None
        model = self._loop_model()
        steps = loop_steps(shape)
        if model.points and steps <= max(s for s, _ in model.points):
            return None  # not beyond what this process already compiled
        if model.distinct_steps() < 2:
            self._probe_loop(dtype)
        return model.predict(steps), model.describe()

    def _probe_loop(self, dtype: str) -> None:
        """Seed the loop's model with cold compiles: kept ones for this machine and torch, else measured now."""
        model = self._loop_model()
        key = f"torch-compile loop {dtype} | torch {self.torch.__version__} | {self.device()} | {_probes.host_id()}"
        kept = _probes.load(key)
        if len({s for s, _ in kept}) >= 2:
            model.points.extend(kept)
            model.kept += len(kept)
            return
        before = len(model.points)
        self._measure_probes(dtype)
        _probes.save(key, model.points[before:])

    def _measure_probes(self, dtype: str) -> None:
        import numpy as np

        torch = self.torch
        # Probes compile cold: with the graph caches on, a probe that an earlier run
        # already compiled would come back in milliseconds and teach the model nothing.
        with (
            torch._inductor.config.patch(fx_graph_cache=False),
            torch._functorch.config.patch(enable_autograd_cache=False),
        ):
            warm = self.to_device(np.zeros((1, 1, 1)), dtype)
            torch._dynamo.reset()
            self.sync(torch.compile(self.forms["loop"], dynamic=False)(warm))
            for steps in PROBE_STEPS:
                x = self.to_device(np.zeros((1, steps, 1)), dtype)
                self.build("loop", x, "ieee")


def _cache_hits() -> int:
    """Graphs Inductor and AOTAutograd served from their caches in this process so far."""
    from torch._dynamo.utils import counters

    return int(counters["inductor"]["fxgraph_cache_hit"] + counters["aot_autograd"]["autograd_cache_hit"])


def loop_steps(shape: tuple[int, ...]) -> int:
    """Steps dynamo unrolls for the double loop: one per (b, t)."""
    return int(shape[0] * shape[1])
