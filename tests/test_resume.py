"""Resume's matching (suite.session.Session): a resumed run runs exactly the cases it lacks.

In this process, with the faulty backend's build log as the record of what ran.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from backends import REGISTRY
from suite.cases import RunOptions, SweepSpec
from suite.results import CSV_NAME, ResultsError, load_run
from suite.session import Session
from suite.timing import TimerConfig
from tests.fake_backends import PLUGIN, FaultyBackend

OPTIONS = RunOptions(timer=TimerConfig(budget_s=0.02, warmup_s=0.005, min_sample_s=1e-3), isolate=False, ceilings=False)


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("CAUSAL_BENCH_BACKENDS", PLUGIN)
    monkeypatch.setitem(REGISTRY, FaultyBackend.name, FaultyBackend)
    path = tmp_path / "builds.log"
    monkeypatch.setenv("FAULTY_LOG", str(path))
    return path


def spec(**kw) -> SweepSpec:
    return SweepSpec(**{"backends": ("faulty",), "forms": ("cumsum",), "sizes": ((2, 8, 3),), **kw})


def built(log: Path) -> list[str]:
    lines = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return lines


def run(out: Path, s: SweepSpec, resume: bool) -> Session:
    session = Session(out, resume=resume)
    session.open()
    session.run(s, OPTIONS)
    return session


def test_resume_runs_only_the_cases_not_stored_and_keeps_the_rest(log: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(out, spec(sizes=((2, 8, 3),)), resume=False)
    assert built(log) == ["cumsum 8"]
    stored = load_run(out)[1]
    # A case differing in any part of its key is another case: T, C, dtype, input, form.
    wider = spec(
        forms=("cumsum", "matrix"),
        sizes=((2, 8, 3), (2, 16, 3), (2, 8, 4)),
        dtypes=("float32", "float64"),
        inputs=("normal", "offset"),
    )
    session = run(out, wider, resume=True)
    assert len(built(log)) == len(wider.cases()) - 1
    _, rows = load_run(out)
    assert sorted(r.key for r in rows) == sorted(c.key for c in wider.cases())
    assert rows[0].key == stored[0].key and rows[0].run_id == stored[0].run_id
    assert len(session.rows) == len(rows)
    # Nothing left: a second resume runs nothing and keeps every row.
    run(out, wider, resume=True)
    assert built(log) == []
    assert len(load_run(out)[1]) == len(rows)


def test_resume_does_not_rerun_a_failed_case(log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    monkeypatch.setenv("FAULTY_RAISE_T", "8")
    run(out, spec(sizes=((2, 8, 3), (2, 16, 3))), resume=False)
    assert [r.status for r in load_run(out)[1]] == ["error", "ok"]
    built(log)
    monkeypatch.delenv("FAULTY_RAISE_T")
    run(out, spec(sizes=((2, 8, 3), (2, 16, 3), (2, 32, 3))), resume=True)
    assert built(log) == ["cumsum 32"]


def test_resume_without_a_stored_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="does not exist"):
        Session(tmp_path, resume=True).open()
    assert not (tmp_path / CSV_NAME).exists()


def test_a_fresh_run_refuses_to_overwrite_a_file_that_is_not_results(tmp_path: Path) -> None:
    (tmp_path / CSV_NAME).write_text("not, a results file\n")
    with pytest.raises(ResultsError, match=f"refusing to overwrite {tmp_path / CSV_NAME}, which is not a readable"):
        Session(tmp_path).open()
    assert (tmp_path / CSV_NAME).read_text() == "not, a results file\n"
