"""Debian's Chromium driven by Playwright, one browser per test module.

``browser`` launches ``/usr/bin/chromium`` (never a Playwright browser download) headless
with a fresh user-data dir, and yields a persistent context: cookies (a staff login) carry
from one test of the module to the next, pages are opened per test. :func:`open_page`
records console errors and uncaught exceptions of a page so a test can assert there were
none; :func:`screenshot` saves under ``var/screenshots/`` (a CI artifact; the README shows
them).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, sync_playwright

from conftest import TIMEOUT_FACTOR

CHROMIUM = os.environ.get("QTRAQ_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"
TIMEOUT_MS = 10_000 * TIMEOUT_FACTOR


@dataclass
class Watched:
    """A page and what went wrong in it."""

    page: Page
    errors: list[str] = field(default_factory=list)

    def assert_clean(self, ignore: tuple[str, ...] = ()) -> None:
        bad = [e for e in self.errors if not any(part in e for part in ignore)]
        assert not bad, f"console errors on {self.page.url}: {bad}"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            tmp_path_factory.mktemp("chromium-profile"), executable_path=CHROMIUM, headless=True, args=ARGS,
            viewport={"width": 1366, "height": 768})
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


def open_page(context: BrowserContext, url: str, width: int, height: int) -> Watched:
    """A new tab at ``url`` with the given viewport, its console errors recorded."""
    page = context.new_page()
    page.set_viewport_size({"width": width, "height": height})
    watched = Watched(page)

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            watched.errors.append(msg.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: watched.errors.append(f"uncaught: {exc}"))
    page.goto(url)
    return watched


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
