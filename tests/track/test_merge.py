"""merge: shards into one run, machine by machine; conflicts refused; inputs never touched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from suite.cli import main
from suite.machine import fingerprint
from suite.results import JSON_NAME, REPORT_NAME, load_run, write_json
from suite.track.merge import MergeError, load_shard, merge_shards

QUICK = [
    "--backends",
    "numpy",
    "--variants",
    "none",
    "--sizes",
    "1x8x2,1x16x2",
    "--no-isolate",
    "--no-ceilings",
    "--quiet",
]
QUICK += ["--budget", "0.01", "--warmup", "0.002", "--min-samples", "3", "--rounds", "1", "--on-contention", "flag"]


def run_suite(out: Path, forms: str) -> Path:
    assert main(["run", "--forms", forms, "--out", str(out), *QUICK]) == 0
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("runs")
    return {
        "whole": run_suite(base / "whole", "cumsum,loop"),
        "a": run_suite(base / "a", "cumsum"),
        "b": run_suite(base / "b", "loop"),
    }


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def relabel(src: Path, dst: Path, cpu_model: str | None = None, shift: float = 0.0, finished: str = "") -> Path:
    """A copy of run ``src`` as another machine would have written it, or with other timings."""
    meta, rows = load_run(src)
    if cpu_model is not None:
        meta["machine"] = {**meta["machine"], "cpu_model": cpu_model}
        meta["machine"]["fingerprint"] = fingerprint(meta["machine"])
        for r in rows:
            r.machine = meta["machine"]["fingerprint"]
    for r in rows:
        r.median_s += shift
        r.samples_s = [s + shift for s in r.samples_s]
    if finished:
        meta["finished"] = finished
    dst.mkdir()
    write_json(dst / JSON_NAME, meta, rows)
    return dst


def test_merging_two_shards_gives_the_whole_run_row_for_row(runs: dict[str, Path], tmp_path: Path) -> None:
    before = {k: digest(p) for k, p in runs.items()}
    out = tmp_path / "merged"
    assert main(["merge", str(runs["a"]), str(runs["b"]), "--out", str(out), "--no-plots"]) == 0
    meta, merged = load_run(out)
    _, whole = load_run(runs["whole"])
    assert sorted((r.key, r.status) for r in merged) == sorted((r.key, r.status) for r in whole)
    assert len(merged) == len(whole) == 4
    fp = load_run(runs["a"])[0]["machine"]["fingerprint"]
    assert all(r.machine == fp and r.node for r in load_run(runs["a"])[1])  # a local run names its machine
    assert list(meta["machines"]) == [fp] and meta["machine"]["fingerprint"] == fp
    assert all(r.machine == fp for r in merged)
    assert [s["path"] for s in meta["merged_from"]] == [str(runs["a"]), str(runs["b"])]
    assert (out / REPORT_NAME).exists()
    assert {k: digest(p) for k, p in runs.items()} == before  # the inputs are never touched


def test_the_same_shard_twice_is_one_shard(runs: dict[str, Path]) -> None:
    merged = merge_shards([load_shard(runs["a"]), load_shard(runs["a"])])
    assert sorted(r.key for r in merged.rows) == sorted(r.key for r in load_run(runs["a"])[1])


def test_one_case_with_two_results_on_one_machine_is_refused_unless_keep_newest(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = relabel(runs["a"], tmp_path / "old", finished="2020-01-01T00:00:00+00:00")
    new = relabel(runs["a"], tmp_path / "new", shift=1e-3, finished="2030-01-01T00:00:00+00:00")
    out = tmp_path / "merged"
    assert main(["merge", str(new), str(old), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "differs between" in err and "--keep newest" in err
    assert not out.exists()
    assert main(["merge", str(new), str(old), "--out", str(out), "--keep", "newest", "--no-plots"]) == 0
    kept = {r.key: r.median_s for r in load_run(out)[1]}
    assert kept == {r.key: r.median_s for r in load_run(new)[1]}


def test_different_machines_are_kept_apart_and_reported_side_by_side(runs: dict[str, Path], tmp_path: Path) -> None:
    other = relabel(runs["a"], tmp_path / "other", cpu_model="Another CPU", shift=1e-3)
    out = tmp_path / "merged"
    assert main(["merge", str(runs["a"]), str(other), "--out", str(out), "--no-plots"]) == 0
    meta, rows = load_run(out)
    fps = sorted(meta["machines"])
    assert len(fps) == 2 and len(rows) == 2 * len(load_run(runs["a"])[1])
    assert meta["machine"]["fingerprint"] == "+".join(fps)  # never taken for one of them
    assert {r.machine for r in rows} == set(fps)
    report = (out / REPORT_NAME).read_text()
    assert "## Across machines" in report and "Another CPU" in report
    # compare keeps refusing to mix machines unless asked
    assert main(["compare", str(runs["a"]), str(out)]) == 2


def test_a_machine_claim_that_does_not_match_its_description_is_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    meta, rows = load_run(runs["a"])
    meta["machine"] = {**meta["machine"], "cpu_count": 1024}  # the description changed, the claim did not
    (tmp_path / "tampered").mkdir()
    write_json(tmp_path / "tampered" / JSON_NAME, meta, rows)
    with pytest.raises(MergeError, match="claims machine"):
        merge_shards([load_shard(runs["b"]), load_shard(tmp_path / "tampered")])


def test_merge_never_writes_into_a_shard(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    before = digest(runs["a"])
    assert main(["merge", str(runs["a"]), str(runs["b"]), "--out", str(runs["a"])]) == 2
    assert "never touches its inputs" in capsys.readouterr().err
    assert digest(runs["a"]) == before
