"""Placement: the timed input at a chosen or per-round drawn offset within a page (suite.placement)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from suite.cases import Case, RunOptions
from suite.cli import main
from suite.counting import COUNTED
from suite.placement import CACHE_LINE, PAGE, RANDOM, offset_of, offsets, parse_offset, place
from suite.results import load_run
from suite.runner import input_offset
from tests.fake_backends import NOTED_PLUGIN

ROOT = Path(__file__).resolve().parents[1]
#: Runs whose ``numpy`` rows say where the input lay (``tests.fake_backends.NotedNumpy``).
NOTED_ENV = {"PYTHONPATH": str(ROOT), "CAUSAL_BENCH_BACKENDS": NOTED_PLUGIN}


@pytest.mark.parametrize("offset", [0, 64, 1344, PAGE - CACHE_LINE])
def test_place_copies_the_array_to_that_offset_within_a_page(offset: int) -> None:
    x = np.arange(2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5)[:, 1:]  # not contiguous: copied as it reads
    placed = place(x, offset)
    assert offset_of(placed) == offset and placed.flags.c_contiguous
    assert placed.dtype == x.dtype and np.array_equal(placed, x)


def test_offsets_are_cache_lines_within_a_page_and_follow_the_seed() -> None:
    drawn = offsets(7, 200)
    assert drawn == offsets(7, 200) != offsets(8, 200)
    assert all(0 <= o < PAGE and o % CACHE_LINE == 0 for o in drawn)
    assert len(set(drawn)) > 32  # spread over the page, not a handful of places


def test_parse_offset_takes_random_or_a_cache_line_and_refuses_the_rest() -> None:
    assert parse_offset("random") == RANDOM
    assert parse_offset("0") == 0 and parse_offset("4032") == 4032
    for bad in ("65", "4096", "-64", "x", ""):
        with pytest.raises(ValueError, match="multiple of 64"):
            parse_offset(bad)


def test_a_case_gets_the_named_offset_a_drawn_one_or_zero_when_counted() -> None:
    timed, counted = Case("numpy", "cumsum", 2, 16, 8), Case("numpy", "cumsum", 2, 16, 8, metric=COUNTED)
    assert input_offset(timed, RunOptions(input_offset=128)) == 128
    assert input_offset(counted, RunOptions(input_offset=128)) == 128
    assert input_offset(counted, RunOptions()) == 0
    drawn = {input_offset(timed, RunOptions()) for _ in range(200)}
    assert len(drawn) > 32 and all(o % CACHE_LINE == 0 and 0 <= o < PAGE for o in drawn)


def test_a_bad_offset_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    code = main(["run", "--backends", "numpy", "--sizes", "2x16x8", "--input-offset", "100", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--input-offset" in err and "multiple of 64" in err
    assert not (tmp_path / "results.csv").exists()


@pytest.mark.slow
def test_the_worker_times_its_input_where_input_offset_puts_it(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["run", "--backends", "numpy", "--forms", "cumsum", "--sizes", "2x16x8", "--budget", "0.05"]
    argv += ["--rounds", "1", "--no-ceilings", "--drift-limit", "0", "--input-offset", "1344", "--out", str(out)]
    env = {**os.environ, **NOTED_ENV, "CAUSAL_BENCH_ON_CONTENTION": "flag"}
    done = subprocess.run(
        [sys.executable, "-m", "suite", *argv, "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    meta, (row,) = load_run(out)
    assert row.status == "ok" and "input at 1344" in row.reason
    assert meta["options"]["input_offset"] == 1344
