"""scripts/gatebench.py without measuring: rejudging the committed sample files, planning, counts mode."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gatebench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gatebench", ROOT / "scripts" / "gatebench.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["gatebench"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["plain-load0", "ab-load30"])
def test_rejudge_reads_the_committed_sample_files(gatebench: ModuleType, name: str, capsys) -> None:
    path = ROOT / "results" / "gatebench" / f"{name}-samples.json"
    trials = json.loads(path.read_text())
    assert gatebench.main(["--rejudge", str(path), "--thresholds", "0.05"]) == 0
    out = capsys.readouterr().out
    aa = sum(len(t["base"]) for t in trials if t["fraction"] == 0)
    assert f"| A/A | {aa} |" in out and "| 10% planted |" in out and "### Threshold 5%" in out


def test_rejudge_reads_its_own_layout(gatebench: ModuleType, tmp_path: Path, capsys) -> None:
    key = "numpy:cumsum:8x128x32:float32:ieee:normal"
    base = [{"samples_s": [1e-4 * (1 + 0.001 * i)] * 3, "contended": False} for i in range(20)]
    slow = [{"samples_s": [1.2e-4 * (1 + 0.001 * i)] * 3, "contended": False} for i in range(10)]
    doc = {"info": {"rounds": 5}, "rounds": {"0": {key: base}, "0.1": {key: slow}}}
    path = tmp_path / "time-load0-samples.json"
    path.write_text(json.dumps(doc))
    assert gatebench.main(["--rejudge", str(path), "--thresholds", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "| A/A | 2 | 0 | 0/2 = 0.0%" in out and "| 10% planted | 2 | 0 | 2/2 = 100.0%" in out


def test_plan_gives_the_comparisons_asked_for_in_disjoint_rounds(gatebench: ModuleType) -> None:
    blocks = gatebench.plan_blocks(aa=78, detect=21, cases=3, r=5, block=5)
    assert blocks == {"0": 52, "0.1": 7, "0.25": 7}  # 26 A/A pairs of 10 rounds per case; 7 trials of 5
    order = gatebench.spread_evenly(blocks)
    assert len(order) == 66 and order.count("0.1") == 7
    assert order.index("0.1") < 10 and order[::-1].index("0.25") < 10  # spread over the session


def test_counts_mode_with_an_injected_runner(gatebench: ModuleType, tmp_path: Path, monkeypatch, capsys) -> None:
    calls: list[float] = []

    def runner(fraction: float, out: Path) -> dict[str, float]:
        calls.append(fraction)
        return {f"planted:cumsum:4x{t}x32:float32:ieee:normal@instructions": 1e6 * t * (1 + fraction) for t in (16, 32)}

    hogs: list[float] = []

    def fake_hog(duty: float, limit: float) -> None:
        hogs.append(duty)  # no process: the runner is fake too

    monkeypatch.setattr(gatebench, "start_hog", fake_hog)
    argv = ["--mode", "counts", "--pairs-aa", "4", "--pairs-plant", "2", "--out", str(tmp_path)]
    assert gatebench.main(argv, count_runner=runner) == 0
    assert calls == [0.0] * 8 + [0.0, 0.02] * 2 + [0.0, 0.01] * 2
    assert hogs == [0.0, 1.0, 1.0]  # no --load, then a full hog for each of half the A/A pairs
    text = (tmp_path / "counts-load0.md").read_text()
    assert "| A/A | 4 | 0/4 = 0.0%" in text and "| A/A, CPU hog on the other core | 4 | 0/4" in text
    assert "| 2% planted | 4 | 4/4 = 100.0%" in text and "| 1% planted | 4 | 4/4" in text
    assert "Same case counted twice: 8/8 within 0.1%" in text
    raw = json.loads((tmp_path / "counts-load0-samples.json").read_text())
    assert len(raw["counts"]) == 16 and raw["counts"][0]["base"] == 16e6


def test_pair_plan_gives_the_comparisons_asked_for(gatebench: ModuleType) -> None:
    plans = gatebench.pair_plan(aa=78, detect=21, cases=6)
    full = [p for p in plans if len(p) == 4]
    assert len(full) == 4 and len(plans) == 13  # 4 x 6 = 24 trials per plant; 13 x 6 = 78 A/A
    assert full[0] == ["pair-a", "pair-b", "slowed-10", "slowed-25"] and full[1] == full[0][::-1]
    assert all(set(p) >= {"pair-a", "pair-b"} for p in plans)
    firsts = [i for i, p in enumerate(plans) if len(p) == 4]
    assert firsts[0] < 4 and firsts[-1] > 8  # the full processes spread over the session


def _pair_process(slowdown: dict[str, float], drift: list[float]) -> dict[str, Any]:
    key = "numpy:cumsum:8x32x256:float32:ieee:normal"
    return {
        "order": list(slowdown),
        "rounds": {
            c: {
                key: [
                    {"samples_s": [1e-4 * d * f * (1 + 0.001 * j) for j in range(5)], "contended": False} for d in drift
                ]
            }
            for c, f in slowdown.items()
        },
    }


def test_rejudge_reads_the_pairs_layout(gatebench: ModuleType, tmp_path: Path, capsys) -> None:
    drift = [1.0, 1.3, 0.9, 1.2, 1.0, 1.25, 0.95]  # 30% between pairs, shared within each
    conditions = {"pair-a": 1.0, "pair-b": 1.0, "slowed-10": 1.1, "slowed-25": 1.25}
    doc = {"info": {"rounds": 7}, "pairs": [_pair_process(conditions, drift), _pair_process(conditions, drift[::-1])]}
    path = tmp_path / "pairs-load0-samples.json"
    path.write_text(json.dumps(doc))
    assert gatebench.main(["--rejudge", str(path), "--thresholds", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "| A/A | 2 | 0 | 0/2 = 0.0%" in out
    assert "| 10% planted | 2 | 0 | 2/2 = 100.0%" in out and "| 25% planted | 2 | 0 | 2/2 = 100.0%" in out


def test_pairs_mode_measures_every_condition_in_every_round(gatebench: ModuleType, tmp_path: Path, capsys) -> None:
    argv = ["--aa", "1", "--detect", "1", "--rounds", "2", "--sizes", "2x8x4", "--forms", "cumsum"]
    argv += ["--budget", "0.01", "--thresholds", "0.05", "--out", str(tmp_path)]
    assert gatebench.main(argv) == 0  # the real thing, tiny: one process of four conditions
    raw = json.loads((tmp_path / "pairs-load0-samples.json").read_text())
    (proc,) = raw["pairs"]
    assert sorted(proc["order"]) == ["pair-a", "pair-b", "slowed-10", "slowed-25"]
    for by_key in proc["rounds"].values():
        assert list(by_key) == ["numpy:cumsum:2x8x4:float32:ieee:normal"]
        assert len(by_key["numpy:cumsum:2x8x4:float32:ieee:normal"]) == 2  # one entry per round
    text = (tmp_path / "pairs-load0.md").read_text()
    assert "| A/A | 1 |" in text and "| 10% planted | 1 |" in text and "1 processes" in text
