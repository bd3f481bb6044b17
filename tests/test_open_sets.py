"""Forms and backends are open sets: one new module brings both, end to end.

The module below is written to a temporary folder, outside the repository, and
registered through the plugin variable alone: no file of the project is touched.
``python -m suite run`` then checks and times the new form on the new backend in
its worker process, and the stored row and the report carry it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from backends import PLUGINS_ENV

ROOT = Path(__file__).resolve().parents[1]

PLUGIN_MODULE = textwrap.dedent(
    '''
    """A backend and a form of its own, in one module."""
    from typing import Any

    import numpy as np

    from backends._common import HostBackend
    from backends.base import Built
    from suite.forms import Form, register

    register(
        Form(
            name="reverse-cumsum",
            summary="flip, cumsum, flip back the running total: a form nobody else implements",
            complexity="O(B T C)",
            uses_matmul=False,
            flops=lambda B, T, C, s: 2.0 * B * T * C,
            min_bytes=lambda B, T, C, s: 2.0 * B * T * C * s,
            extra_bytes=lambda B, T, C, s: float(B * T * C * s),
        )
    )


    def reverse_cumsum(x: np.ndarray) -> np.ndarray:
        T = x.shape[1]
        total = np.flip(np.cumsum(np.flip(x, axis=1), axis=1), axis=1)  # suffix sums
        prefix = total[:, :1] - total + x  # sum of x[:, :t+1]
        return prefix / np.arange(1, T + 1, dtype=x.dtype).reshape(1, T, 1)


    class ReverseBackend(HostBackend):
        name = "reverse"
        module = "numpy"
        extra = "numpy"
        forms = {"reverse-cumsum": reverse_cumsum}

        def versions(self) -> dict[str, str]:
            return {"numpy": np.__version__}

        def _build(self, form: str, x: Any, precision: str) -> Built:
            return Built(lambda: self.forms[form](x))
    '''
)


@pytest.mark.slow
def test_a_new_form_on_a_new_backend_runs_end_to_end_from_one_module(tmp_path: Path) -> None:
    (tmp_path / "my_plugin.py").write_text(PLUGIN_MODULE, encoding="utf-8")
    out = tmp_path / "run"
    env = {
        **os.environ,
        PLUGINS_ENV: "my_plugin:ReverseBackend",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH", "")])),
    }
    argv = [sys.executable, "-m", "suite", "run", "--backends", "reverse,numpy", "--forms", "reverse-cumsum,cumsum"]
    argv += [
        "--sizes",
        "2x33x3",
        "--budget",
        "0.02",
        "--warmup",
        "0.005",
        "--no-ceilings",
        "--quiet",
        "--out",
        str(out),
    ]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = {(r["backend"], r["form"]): r for r in json.loads((out / "results.json").read_text())["rows"]}
    new = rows[("reverse", "reverse-cumsum")]
    assert new["status"] == "ok" and new["n_samples"] >= 3
    assert new["rel_err"] <= new["tol"]
    # Each side refuses what the other brought, with a reason, as a skipped row.
    assert rows[("reverse", "cumsum")]["status"] == "skipped"
    assert rows[("reverse", "cumsum")]["reason"] == "reverse does not implement form 'cumsum'"
    assert rows[("numpy", "reverse-cumsum")]["status"] == "skipped"
    assert "reverse-cumsum" in (out / "report.md").read_text()
