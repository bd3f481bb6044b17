"""A real browser for the tests of pages read from disk: Debian's chromium driven by playwright.

Playwright's own browser download is not used: ``CHROMIUM`` is the system's. Without
it (or without playwright) the tests skip and say how to install it, unless
``CAUSAL_BENCH_REQUIRE_BROWSER=1`` (set by ``nox -s tests``), where they fail.
Every request that is not ``file://`` is aborted and recorded: a page that reaches
the network fails its test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("CAUSAL_BENCH_CHROMIUM", "/usr/bin/chromium"))
INSTALL = "apt-get install chromium (Debian) and pip install playwright, or set CAUSAL_BENCH_CHROMIUM"


def need_browser() -> None:
    """Skip (or fail, when the browser is required) without chromium and playwright."""
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright")
    if not CHROMIUM.exists():
        missing.append(str(CHROMIUM))
    if missing:
        message = f"no browser ({', '.join(missing)} missing): {INSTALL}"
        if os.environ.get("CAUSAL_BENCH_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)


@dataclass
class Visit:
    """What a page did while it was open: console errors, uncaught errors, requests off the disk."""

    page: Any
    errors: list[str] = field(default_factory=list)
    offdisk: list[str] = field(default_factory=list)

    def clean(self) -> None:
        assert not self.offdisk, f"requests left the disk: {self.offdisk}"
        assert not self.errors, f"errors in the page: {self.errors}"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start.
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def visit(chromium: Any) -> Iterator[Any]:
    """``visit(path)`` opens a file in a fresh page and gives its ``Visit``."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    visits: list[Visit] = []

    def open_file(path: Path) -> Visit:
        page = context.new_page()
        v = Visit(page)

        def route(r: Any) -> None:
            if r.request.url.startswith("file://"):
                r.continue_()
            else:
                v.offdisk.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.on("console", lambda m: v.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: v.errors.append(str(e)))
        page.goto(path.resolve().as_uri())
        visits.append(v)
        return v

    yield open_file
    context.close()
