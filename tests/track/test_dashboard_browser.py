"""The dashboard in a real browser, from disk: charts drawn with their data, hover names the commit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from suite.cli import main
from suite.track.dashboard_page import PAGE_NAME
from tests.browser import chromium, visit  # noqa: F401  (fixtures)
from tests.track.test_dashboard import commit, page_data, write_history

TREND = "document.getElementById('cb-trend')"


def test_dashboard_draws_each_case_and_hovers_its_commit(tmp_path: Path, visit: Any) -> None:  # noqa: F811
    write_history(tmp_path / "runs" / "a", fp="aaa")
    write_history(tmp_path / "runs" / "b", fp="bbb")
    out = tmp_path / "site"
    assert main(["dashboard", str(tmp_path / "runs" / "a"), str(tmp_path / "runs" / "b"), "--out", str(out)]) == 0
    data = page_data(out / PAGE_NAME)
    v = visit(out / PAGE_NAME)
    page = v.page
    page.wait_for_selector("#cb-trend .scatterlayer .trace")
    page.wait_for_selector("#cb-backends .barlayer .trace")

    # The first case shown is the one with a step: per machine a line and a step marker.
    first = data["first"]
    expected = data["cases"][first]["trend"]["data"]
    assert page.evaluate("document.getElementById('cb-case').value") == first
    assert page.evaluate(f"{TREND}.data.length") == len(expected) == 4
    assert page.evaluate(f"{TREND}.data.map(t => t.x)") == [t["x"] for t in expected]
    assert page.locator("#cb-trend .scatterlayer .trace").count() == 4
    assert page.locator("#cb-trend .scatterlayer .point").count() == sum(len(t["x"]) for t in expected) == 10
    assert page.locator("#cb-backends .barlayer .point").count() == 4  # numpy and torch, two machines
    hovertext = page.evaluate(f"{TREND}.data[0].hovertext[2]")
    assert hovertext.startswith(f"commit {commit(3)[:12]}")

    # A real hover on the third run of the first machine shows its commit in the hover layer.
    page.evaluate(f"Plotly.Fx.hover({TREND}, [{{curveNumber: 0, pointNumber: 2}}])")
    page.wait_for_selector("#cb-trend .hoverlayer .hovertext")
    shown = page.locator("#cb-trend .hoverlayer .hovertext").text_content() or ""
    assert f"commit {commit(3)[:12]}" in shown and "machine aaa" in shown

    # The picker swaps the case: the other size's trend, with no step.
    other = next(k for k in data["cases"] if ":4x128x8:" in k)
    page.select_option("#cb-case", other)
    page.wait_for_function(f"{TREND}.layout.title.text.startsWith('{other}')")
    assert page.evaluate(f"{TREND}.data.length") == 2
    assert page.locator("#cb-trend .scatterlayer .point").count() == 8
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
    v.clean()


def test_an_empty_history_is_a_page_without_charts(tmp_path: Path, visit: Any) -> None:  # noqa: F811
    (tmp_path / "runs").mkdir()
    assert main(["dashboard", str(tmp_path / "runs"), "--out", str(tmp_path / "site")]) == 0
    v = visit(tmp_path / "site" / PAGE_NAME)
    assert "No runs yet" in v.page.inner_text("body")
    assert v.page.locator(".main-svg").count() == 0
    v.clean()
