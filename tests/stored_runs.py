"""Hand-made rows and run folders for the tests of what reads stored runs (report, track)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from suite.cases import Case
from suite.results import JSON_NAME, Row, write_json

MEDIAN_S = 1e-3


def samples(factor: float = 1.0, n: int = 40, seed: int = 0, sigma: float = 0.02) -> list[float]:
    """Per-call seconds around ``factor`` ms, log-normal noise of ``sigma``."""
    rng = np.random.default_rng(seed)
    return list(MEDIAN_S * factor * np.exp(rng.normal(0.0, sigma, n)))


def row(
    factor: float = 1.0,
    *,
    status: str = "ok",
    form: str = "cumsum",
    backend: str = "numpy",
    T: int = 64,
    seed: int = 0,
    n: int = 40,
    variant: str = "",
) -> Row:
    s = samples(factor, n, seed) if status == "ok" else []
    return Row(
        Case(backend, form, 4, T, 8, "float32", "ieee", "normal", variant=variant),
        device="cpu",
        status=status,
        reason="" if status == "ok" else f"it went {status}",
        median_s=float(np.median(s)) if s else math.nan,
        ci_low_s=float(np.percentile(s, 40)) if s else math.nan,
        ci_high_s=float(np.percentile(s, 60)) if s else math.nan,
        iqr_s=float(np.subtract(*np.percentile(s, [75, 25]))) if s else math.nan,
        n_samples=len(s),
        calls_per_sample=10,
        samples_s=s,
        run_id="r1",
    )


def meta(fp: str = "abc123", started: str = "2026-01-01T00:00:00+00:00", run_id: str = "r") -> dict[str, Any]:
    return {
        "run_id": run_id,
        "started": started,
        "git_commit": "0123456789abcdef",
        "machine": {"fingerprint": fp, "cpu_model": "Test CPU", "cpu_count": 2},
    }


def write_run(folder: Path, rows: list[Row], m: dict[str, Any] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / JSON_NAME, m or meta(), rows)
    return folder


def config_file(tmp_path: Path, text: str) -> Path:
    """A ``pyproject.toml`` holding ``text``."""
    path = tmp_path / "pyproject.toml"
    path.write_text(text)
    return path


def run_pair(tmp_path: Path, factor: float) -> tuple[Path, Path]:
    """Base and head runs of two cases; head's cumsum ``factor`` times base's."""
    base = write_run(tmp_path / "base", [row(1.0, seed=10), row(1.0, T=128, seed=11, form="matrix")])
    head = write_run(tmp_path / "head", [row(factor, seed=12), row(1.0, T=128, seed=13, form="matrix")])
    return base, head
