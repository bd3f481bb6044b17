"""The user's manual builds strictly and reads from disk in a real browser, with no request off the disk."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.browser import chromium, visit  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("mkdocs") is None:
        message = "mkdocs is not installed: pip install -e '.[docs]'"
        if os.environ.get("CAUSAL_BENCH_REQUIRE_BROWSER") == "1":  # nox -s tests installs the docs extra
            pytest.fail(message)
        pytest.skip(message)
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "--site-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    return out


def test_every_figure_names_its_committed_run() -> None:
    """A figure on a page is a committed run's, and the page names that run and the command that made it."""
    figures = 0
    for page in sorted((ROOT / "docs").rglob("*.md")):
        text = " ".join(page.read_text().split())  # line breaks as spaces
        for figure in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
            figures += 1
            run = figure.split("/plots/")[0]
            assert (ROOT / figure).exists() and (ROOT / run / "results.json").exists(), (page, figure)
            assert f"*Figure: `{figure}`" in text and f"committed run `{run}/`" in text, (page, figure)
            assert f"--out {run}" in text, (page, f"no command writing {run}")
    assert figures >= 3


@pytest.mark.slow
def test_the_site_reads_from_disk(site: Path, visit: Any, tmp_path: Path) -> None:  # noqa: F811
    pages = sorted(p for p in site.rglob("*.html") if p.name != "404.html")
    assert {"index.html", "api.html", "gpu.html", "dashboard.html"} <= {p.name for p in pages}
    for path in pages:
        v = visit(path)
        v.page.wait_for_load_state("load")
        # Every image on the page came from the disk and was drawn.
        broken = v.page.evaluate(
            "[...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)"
        )
        assert not broken, (path, broken)
        v.clean()
        v.page.close()

    home = visit(site / "index.html")
    figure = home.page.locator("img[src$='time-vs-T-cumsum.svg']")
    assert figure.count() == 1 and figure.evaluate("i => i.naturalWidth") > 100
    home.page.screenshot(path=str(tmp_path / "docs-home.png"), full_page=False)
    # Search works offline: the index is on the disk beside the pages.
    home.page.click("input[data-md-component='search-query']")
    home.page.keyboard.type("contention")  # typed: the search listens to key events
    home.page.wait_for_selector(".md-search-result__item")
    assert home.page.locator(".md-search-result__item").count() >= 1
    home.clean()

    api = visit(site / "api.html")
    for name in ("suite.Timer", "suite.SweepSpec", "suite.Case", "suite.Row", "suite.run_cases", "suite.load_frame"):
        assert api.page.locator(f"[id='{name}']").count() == 1, name
    api.clean()
