"""The ticket page's Web Push button in Chromium: shown in the page's language, fits every
screen (no sideways scroll, nothing clipped) with a long clinic name, and says so plainly when
the browser refuses notifications."""

from __future__ import annotations

import pytest
from playwright.sync_api import BrowserContext

from qtraq_live.display.i18n import catalogue
from tests.support_browser import browser, open_page, screenshot  # noqa: F401
from tests.support_http import LiveServer, app_server  # noqa: F401

pytestmark = pytest.mark.browser
SIZES = [(1920, 1080), (1366, 768), (1080, 1920), (360, 740)]
LONG = "Shri Venkateswara Multispeciality Hospital and Diagnostic Research Centre"


@pytest.fixture
def token(app_server: LiveServer) -> str:
    async def make() -> str:
        await app_server.engine.create_clinic("c1", LONG[:80], timezone="UTC")
        await app_server.engine.create_queue("c1", "gp", "Dr. Ananthapadmanabhan Subramaniam (Paediatrics)", "A")
        await app_server.engine.issue("gp")
        ticket = await app_server.engine.issue("gp", name="Asha")
        return str(ticket["token"])
    return app_server.run(make())


@pytest.mark.parametrize("lang", ["en", "hi"])
def test_push_button_fits_every_screen_in_the_page_language(browser: BrowserContext, app_server: LiveServer,
                                                            token: str, lang: str) -> None:
    browser.clear_permissions()
    for width, height in SIZES:
        page = open_page(browser, f"{app_server.url}/t/{token}?lang={lang}", width, height)
        button = page.page.locator("#p-push")
        button.wait_for(state="visible")
        assert button.inner_text().strip() == catalogue(lang)["js.push_allow"]
        fits = page.page.evaluate("""() => {
            const r = document.getElementById('p-push').getBoundingClientRect();
            return document.documentElement.scrollWidth <= window.innerWidth && r.left >= 0 && r.right <= window.innerWidth;
        }""")
        assert fits, (width, height)
        if width == 360:
            screenshot(page.page, f"ticket-push-{lang}-360x740")
        page.assert_clean()
        page.page.close()


def test_refused_notifications_are_explained(browser: BrowserContext, app_server: LiveServer, token: str) -> None:
    browser.clear_permissions()
    page = open_page(browser, f"{app_server.url}/t/{token}", 360, 740)
    page.page.locator("#p-push").wait_for(state="visible")
    page.page.evaluate("() => { Notification.requestPermission = () => Promise.resolve('denied'); }")
    page.page.click("#p-push")
    state = page.page.locator("#p-push-state")
    state.wait_for(state="visible")
    assert state.inner_text() == catalogue("en")["js.push_blocked"]
    assert page.page.locator("#p-push").is_hidden()
    page.assert_clean()
