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


PER_STEP = 37.25  # the fake plant's instructions per step


def fake_count_runner(calls: list[dict[str, int]], ts: tuple[int, ...] = (16, 32)):
    """Counts as a counted run would give them: a base per case plus PER_STEP a planted step."""
    from tests.fake_backends import plant_steps

    def runner(plant, out: Path) -> dict[str, float]:
        calls.append(dict(plant))
        keys = [
            f"planted:{f}:4x{t}x32:float32:ieee:normal@instructions" for t in ts for f in ("cumsum", "cumsum[staged]")
        ]
        return {
            k: 1e5 * (1 + ts.index(int(k.split(":")[2].split("x")[1]))) + PER_STEP * plant_steps(plant, k) for k in keys
        }

    return runner


def test_counts_mode_with_an_injected_runner(gatebench: ModuleType, tmp_path: Path, monkeypatch, capsys) -> None:
    from tests.fake_backends import CALIBRATION_STEPS

    calls: list[dict[str, int]] = []
    hogs: list[float] = []

    def fake_hog(duty: float, limit: float) -> None:
        hogs.append(duty)  # no process: the runner is fake too

    monkeypatch.setattr(gatebench, "start_hog", fake_hog)
    argv = ["--mode", "counts", "--pairs-aa", "4", "--pairs-plant", "2", "--out", str(tmp_path)]
    assert gatebench.main(argv, count_runner=fake_count_runner(calls)) == 0
    # the calibration (nothing, then CALIBRATION_STEPS everywhere), 4 A/A pairs, 2 pairs per plant
    assert calls[:2] == [{}, {"*": CALIBRATION_STEPS}] and calls[2:10] == [{}] * 8
    two, one = calls[11], calls[15]
    assert calls[10::2] == [{}] * 4 and calls[11:14:2] == [two, two] and calls[15:18:2] == [one, one]
    # each case its own steps: 2% of 1e5 at 37.25 a step is 53.69 -> 54 steps, of 2e5 107.38 -> 107
    assert two == {"cumsum:4x16x32:float32:ieee": 54, "cumsum[staged]:4x16x32:float32:ieee": 54,
                   "cumsum:4x32x32:float32:ieee": 107, "cumsum[staged]:4x32x32:float32:ieee": 107}  # fmt: skip
    assert one["cumsum:4x32x32:float32:ieee"] == 54
    assert hogs == [0.0, 1.0, 1.0]  # no --load, then a full hog for each of half the A/A pairs
    text = (tmp_path / "counts-load0.md").read_text()
    assert "| A/A | 8 | 0/8 = 0.0%" in text and "| A/A, CPU hog on the other core | 8 | 0/8" in text
    assert "| 2% planted | 8 | 8/8 = 100.0%" in text and "| 1% planted | 8 | 8/8" in text
    assert "Same case counted twice: 16/16 within 0.1%" in text
    assert "per step (37.250 to 37.250 instructions)" in text and "2% planted: sized to +1.993% to +2.012%" in text
    raw = json.loads((tmp_path / "counts-load0-samples.json").read_text())
    assert len(raw["counts"]) == 32 and raw["counts"][0]["base"] == 1e5
    assert raw["info"]["calibration"]["planted:cumsum:4x32x32:float32:ieee:normal@instructions"]["per_step"] == PER_STEP
    # every planted comparison lands on its nominal size, to the rounding of one step
    for c in raw["counts"]:
        nominal = 0.02 if c["scenario"] == "2% planted" else 0.01 if c["scenario"] == "1% planted" else 0.0
        assert c["head"] / c["base"] - 1 == pytest.approx(nominal, abs=PER_STEP / 2 / c["base"] + 1e-12)
    # the stored file judges again, here at two counted thresholds
    capsys.readouterr()
    path = tmp_path / "counts-load0-samples.json"
    assert gatebench.main(["--rejudge", str(path), "--thresholds", "0.005,0.015"]) == 0
    out = capsys.readouterr().out
    assert "### Counted threshold 0.5%" in out and "### Counted threshold 1.5%" in out
    assert out.count("| 1% planted | 8 | 8/8") == 1 and "| 1% planted | 8 | 0/8" in out


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
    argv = ["--mode", "pairs", "--aa", "1", "--detect", "1", "--rounds", "2", "--sizes", "2x8x4", "--forms", "cumsum"]
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


def test_lockstep_mode_runs_the_conditions_as_sides_of_lockstep_rounds(
    gatebench: ModuleType, tmp_path: Path, capsys
) -> None:
    argv = ["--aa", "2", "--detect", "1", "--rounds", "2", "--sizes", "2x8x4", "--forms", "cumsum"]
    argv += ["--budget", "0.01", "--thresholds", "0.05", "--out", str(tmp_path)]
    assert gatebench.main(argv) == 0  # the default mode, tiny: one set of four sides, one of two
    raw = json.loads((tmp_path / "lockstep-load0-samples.json").read_text())
    assert raw["info"]["design"] == "lockstep"
    full, aa_only = raw["pairs"]
    assert sorted(full["order"]) == ["pair-a", "pair-b", "slowed-10", "slowed-25"]
    assert sorted(aa_only["order"]) == ["pair-a", "pair-b"]
    key = "numpy:cumsum:2x8x4:float32:ieee:normal"
    for r in range(2):  # every side of a round took the same number of samples, by turns
        assert len({len(by[key][r]["samples_s"]) for by in full["rounds"].values()}) == 1
    text = (tmp_path / "lockstep-load0.md").read_text()
    assert "wall-clock in lockstep" in text and "| A/A | 2 |" in text and "| 25% planted | 1 |" in text
    capsys.readouterr()
    assert gatebench.main(["--rejudge", str(tmp_path / "lockstep-load0-samples.json"), "--thresholds", "0.05"]) == 0
    assert "| A/A | 2 |" in capsys.readouterr().out


def test_counts_default_pairs_reach_the_issues_trials(gatebench: ModuleType, tmp_path: Path, monkeypatch) -> None:
    assert gatebench.default_pairs(20) == (2, 2)  # the default sizes: 10, each idiom and staged
    assert gatebench.default_pairs(8) == (6, 4)
    assert gatebench.default_pairs(1) == (40, 30)
    for cases in range(1, 41):
        aa, plant = gatebench.default_pairs(cases)
        assert aa % 2 == 0 and aa // 2 * cases >= 20 and plant * cases >= 30
    monkeypatch.setattr(gatebench, "start_hog", lambda duty, limit: None)
    calls: list[dict[str, int]] = []
    assert gatebench.main(["--mode", "counts", "--out", str(tmp_path)], count_runner=fake_count_runner(calls)) == 0
    text = (tmp_path / "counts-load0.md").read_text()  # 4 cases: 10 A/A pairs, 8 per plant
    assert "| A/A | 20 |" in text and "| A/A, CPU hog on the other core | 20 |" in text
    assert "| 2% planted | 32 |" in text and "| 1% planted | 32 |" in text
    assert len(calls) == 2 + 2 * (10 + 8 + 8)


def test_counts_calibration_refuses_a_plant_that_adds_nothing(gatebench: ModuleType, tmp_path: Path) -> None:
    def runner(plant, out: Path) -> dict[str, float]:
        return {"planted:cumsum[staged]:4x16x32:float32:ieee:normal@instructions": 1e5}  # the plant never lands

    with pytest.raises(RuntimeError, match="added nothing to planted:cumsum\\[staged\\]"):
        gatebench.calibrate(runner, tmp_path)


def test_rejudge_reads_the_committed_counts_file(gatebench: ModuleType, capsys) -> None:
    path = ROOT / "results" / "gatebench" / "power" / "counts-load0-samples.json"
    counts = json.loads(path.read_text())["counts"]
    assert gatebench.main(["--rejudge", str(path)]) == 0
    out = capsys.readouterr().out
    aa = sum(c["scenario"] == "A/A" for c in counts)
    assert "### Counted threshold 0.5%" in out and f"| A/A | {aa} |" in out and "| 2% planted |" in out
