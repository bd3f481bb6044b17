"""Compile probes kept between processes (backends/_probes.py): one probe per machine and torch version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backends import _probes
from backends.torch_compile import TorchCompileBackend
from tests.conftest import adapter_or_skip


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(_probes.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache" / _probes.FILE_NAME


def test_points_round_trip_under_their_key(store: Path) -> None:
    assert _probes.load("k") == []
    assert _probes.save("k", [(8, 1.5), (32, 4.0)]) == store
    _probes.save("other", [(8, 9.0)])
    assert _probes.load("k") == [(8, 1.5), (32, 4.0)]
    assert _probes.load("other") == [(8, 9.0)]


@pytest.mark.parametrize(
    "text",
    ["not json", "[1, 2]", '{"k": "x"}', '{"k": [[8, -1.0], [0, 2.0], [8], ["8", 2.0], [32, 3.0]]}'],
)
def test_a_damaged_store_yields_only_its_valid_points(store: Path, text: str) -> None:
    store.parent.mkdir(parents=True)
    store.write_text(text)
    assert _probes.load("k") == ([(32, 3.0)] if "32" in text else [])


def test_an_unwritable_store_is_no_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(_probes.CACHE_ENV, str(blocker / "cache"))  # a folder inside a file
    assert _probes.save("k", [(8, 1.0)]) is None
    assert _probes.load("k") == []


def _counting_probes(adapter: TorchCompileBackend, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace the cold compiles by two fixed measurements; return the list of probe runs."""
    runs: list[str] = []

    def fake(dtype: str) -> None:
        runs.append(dtype)
        adapter._loop_model().add(8, 2.0)
        adapter._loop_model().add(32, 6.0)

    monkeypatch.setattr(adapter, "_measure_probes", fake)
    return runs


def test_the_next_process_reads_the_probe_instead_of_compiling(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    adapter = adapter_or_skip("torch-compile")
    assert isinstance(adapter, TorchCompileBackend)
    runs = _counting_probes(adapter, monkeypatch)
    monkeypatch.setattr(adapter, "compile_models", {})
    first = adapter.estimate_compile_s("loop", (8, 1024, 256), "float32")
    assert runs == ["float32"] and first is not None
    assert "kept" not in first[1]
    saved = json.loads(store.read_text())
    assert list(saved.values()) == [[[8, 2.0], [32, 6.0]]]

    monkeypatch.setattr(adapter, "compile_models", {})  # a fresh process: nothing measured in it
    again = adapter.estimate_compile_s("loop", (8, 1024, 256), "float32")
    assert runs == ["float32"]  # no second probe
    assert again is not None and again[0] == pytest.approx(first[0])
    assert "2 kept from an earlier process" in again[1]

    # Another dtype is another key: its probe runs.
    monkeypatch.setattr(adapter, "compile_models", {})
    adapter.estimate_compile_s("loop", (8, 1024, 256), "float64")
    assert runs == ["float32", "float64"]


def test_a_store_with_one_size_is_probed_again(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    adapter = adapter_or_skip("torch-compile")
    assert isinstance(adapter, TorchCompileBackend)
    runs = _counting_probes(adapter, monkeypatch)
    monkeypatch.setattr(adapter, "compile_models", {})
    adapter.estimate_compile_s("loop", (8, 1024, 256), "float32")
    key = next(iter(json.loads(store.read_text())))
    _probes.save(key, [(8, 2.0)])  # one size cannot fit a model
    monkeypatch.setattr(adapter, "compile_models", {})
    adapter.estimate_compile_s("loop", (8, 1024, 256), "float32")
    assert len(runs) == 2
    assert _probes.load(key) == [(8, 2.0), (32, 6.0)]
