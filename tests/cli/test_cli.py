"""The command line: bad input gives one line and exit 2; runs write their files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from suite.cases import parse_sizes
from suite.cli import main
from suite.forms import FORM_NAMES
from suite.results import SCHEMA_VERSION, load_run

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--budget", "0.05", "--warmup", "0.01", "--quiet", "--no-isolate"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--sizes", "0x8x2"], "at least 1"),
        (["run", "--sizes=-4x8x2"], "expected BxTxC"),
        (["run", "--sizes", "4x8"], "expected BxTxC"),
        (["run", "--sizes", "axbxc"], "expected BxTxC"),
        (["run", "--sizes", "enormous"], "expected BxTxC"),
        (["run", "--backends", "tensorflow"], "unknown backend 'tensorflow'"),
        (["run", "--forms", "fft"], "unknown form 'fft'"),
        (["run", "--dtypes", "int8"], "unknown dtype 'int8'"),
        (["run", "--precisions", "tf16"], "unknown precision 'tf16'"),
        (["run", "--budget", "-1"], "positive number"),
        (["run", "--target-ci", "2"], "fraction below 1"),
        (["run", "--timeout", "zero"], "positive number"),
        (["run", "--device", "tpu"], "invalid choice"),
        (["run", "--bogus"], "unrecognized arguments"),
        (["run", "--min-samples", "2"], "--min-samples must be at least 3"),
        (["run", "--drift-limit", "1.5"], "--drift-limit: expected a fraction in [0, 1)"),
        (["run", "--drift-limit", "ten"], "--drift-limit: expected a fraction"),
        (["run", "--cold-cache", "--backends", "numpy,numba"], "--cold-cache: no requested backend"),
        (["run", "--cold-cache", "--backends", "torch,jax", "--device", "cpu"], "--cold-cache: no requested backend"),
        (["run", "--worker-cores", "999"], "--worker-cores: 999 worker cores asked"),
        (["run", "--worker-cores", "some"], "expected auto, all or a positive number of cores, got 'some'"),
        (["run", "--worker-cores", "1", "--no-isolate"], "--worker-cores needs worker processes"),
        (["run", "--worker-cores", "1", "--isolation", "quiet"], "--worker-cores needs the pin step"),
        (["run", "--isolation", "pin,bogus"], "unknown isolation step 'bogus'"),
        (["run", "--threads", "999"], "--threads 999 exceeds the worker's"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv: list[str], message: str, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("error: ") and message in err


def test_unwritable_output_folder(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["run", "--backends", "numpy", "--sizes", "seed", "--out", str(blocker / "sub"), *FAST]) == 2
    assert "cannot write to output folder" in capsys.readouterr().err


def test_parse_sizes_mixes_presets_and_shapes() -> None:
    assert parse_sizes("seed,16x32x8,seed") == ((4, 8, 2), (16, 32, 8))
    assert parse_sizes(" 1X2X3 ") == ((1, 2, 3),)


def test_no_traceback_from_the_real_entry_point(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "suite", "run", "--sizes", "4x8x0", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == ["error: bad size '4x8x0': every dimension must be at least 1"]
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_run_writes_csv_json_and_report(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    code = main(["run", "--backends", "numpy", "--sizes", "seed,2x16x4", "--out", str(out), *FAST])
    assert code == 0
    meta, rows = load_run(out)
    # Every form's idiom and NumPy's one variant, cumsum[staged], at each of two sizes.
    assert len(rows) == 2 * (len(FORM_NAMES) + 1)
    assert sum(r.variant == "staged" for r in rows) == 2
    # NumPy has no fused attention kernel: those rows are skipped, every other form timed.
    assert {(r.form == "attention", r.status) for r in rows} == {(False, "ok"), (True, "skipped")}
    rows = [r for r in rows if r.status == "ok"]
    assert all(r.n_samples >= 3 and r.median_s > 0 and r.samples_s for r in rows)
    assert all(r.gbs > 0 and r.gflops > 0 for r in rows)
    # The host's ceilings are in the metadata and every timed row is placed under one.
    assert meta["ceilings"]["cpu"]["copy_gbs"] > 0
    assert all(r.bound in ("memory", "compute") and r.ceiling_frac > 0 for r in rows)
    assert meta["machine"]["fingerprint"] and meta["run_id"] == rows[0].run_id
    assert "git_commit" in meta
    doc = json.loads((out / "results.json").read_text())
    assert doc["schema_version"] == SCHEMA_VERSION and len(doc["rows"]) == 2 * (len(FORM_NAMES) + 1)
    report = (out / "report.md").read_text()
    assert "### cumsum (float32)" in report and "| numpy (cpu) |" in report


def test_run_refuses_to_overwrite_a_foreign_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "results.json").write_text("{ not json")
    before = (tmp_path / "results.json").read_text()
    assert main(["run", "--backends", "numpy", "--sizes", "seed", "--out", str(tmp_path), *FAST]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert (tmp_path / "results.json").read_text() == before


def test_report_rebuilds_from_stored_results(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["run", "--backends", "numpy", "--forms", "cumsum", "--sizes", "seed", "--out", str(out), *FAST]) == 0
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0
    assert "### cumsum (float32)" in (out / "report.md").read_text()


def test_report_of_corrupt_results_exits_2(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "results.json"
    bad.write_text('{"schema": "causal-bench/results", "schema_version": 1, "rows": [')
    assert main(["report", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not valid JSON" in err and err.count("\n") == 1


def test_check_prints_the_table_and_passes(capsys) -> None:
    code = main(["check", "--backends", "numpy", "--sizes", "seed,1x100x3", "--quiet", "--no-isolate"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0].split()[:3] == ["backend", "form", "size"]
    # The forms (attention has no NumPy kernel: skipped) and cumsum[staged], x 2 sizes x 2 inputs.
    n = len(FORM_NAMES) * 2 * 2
    assert out.count(" pass") == n
    assert out.count("numpy          cumsum[staged]   ") == 4  # the variant checked too, under its name
    assert out.strip().endswith(f"{n} ok, 4 skipped")


def test_check_exits_1_on_disagreement(capsys) -> None:
    argv = ["check", "--backends", "numpy", "--forms", "cumsum", "--sizes", "1x8x2", "--dtypes", "float16"]
    code = main([*argv, "--inputs", "offset", "--quiet", "--no-isolate"])
    assert code == 1
    assert "FAIL" in capsys.readouterr().out


def test_check_refuses_nan_input_file_before_running(tmp_path: Path, capsys) -> None:
    x = np.ones((1, 4, 2))
    x[0, 1, 0] = np.nan
    np.save(tmp_path / "x.npy", x)
    assert main(["check", "--input-file", str(tmp_path / "x.npy"), "--quiet", "--no-isolate"]) == 2
    captured = capsys.readouterr()
    assert "non-finite" in captured.err and captured.out == ""


def test_check_runs_a_user_input_file(tmp_path: Path, capsys) -> None:
    np.save(tmp_path / "x.npy", np.arange(24.0).reshape(2, 4, 3))
    code = main(["check", "--backends", "numpy", "--input-file", str(tmp_path / "x.npy"), "--quiet", "--no-isolate"])
    assert code == 0
    assert capsys.readouterr().out.count("2x4x3") == len(FORM_NAMES) + 1  # and cumsum[staged]


def test_backends_lists_availability(capsys) -> None:
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("numpy") and "available" in out
