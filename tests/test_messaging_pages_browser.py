"""Issue #20's page parts in Chromium: the ticket page's Web Push button (in the page's
language, fitting every screen with a long clinic name, a refusal explained) and the admin
page's announcement languages per clinic."""

from __future__ import annotations

import pytest
from playwright.sync_api import BrowserContext

from qtraq_live.display.i18n import catalogue
from tests.support_browser import browser, open_page, screenshot  # noqa: F401
from tests.support_http import PASSWORD, LiveServer, app_server  # noqa: F401

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


# The stats charts of a clinic without a finished visit answer 404 (the admin page's, not ours).
CHARTS = ("status of 404",)
# Our field and its help fit the screen (at 360 px the admin page's queue table, not ours, is wider).
FITS = """() => [document.getElementById('speech-c1'), document.getElementById('speech-c1-help')].every(e => {
    const r = e.getBoundingClientRect();
    return r.left >= 0 && r.right <= window.innerWidth && r.width > 0;
})"""


def test_admin_sets_the_announcement_languages(browser: BrowserContext, app_server: LiveServer, token: str) -> None:
    user = app_server.add_user("admin")
    r = browser.request.post(f"{app_server.url}/api/v1/auth/login", data={"username": user, "password": PASSWORD})
    assert r.ok
    for lang in ("en", "hi"):
        for width, height in SIZES:
            page = open_page(browser, f"{app_server.url}/admin?lang={lang}", width, height)
            field = page.page.locator("#speech-c1")
            page.page.wait_for_function("() => document.getElementById('speech-c1') && "
                                        "document.getElementById('speech-c1').value !== ''")
            assert page.page.locator("label[for=speech-c1]").inner_text() == catalogue(lang)["js.speech_languages"]
            if width in (360, 1366):
                screenshot(page.page, f"admin-speech-{lang}-{width}x{height}")
            assert page.page.evaluate(FITS), (lang, width, height)
            page.assert_clean(ignore=CHARTS)
            page.page.close()
    page = open_page(browser, f"{app_server.url}/admin?lang=en", 1366, 768)  # English again after the Hindi pass
    field = page.page.locator("#speech-c1")
    page.page.wait_for_function("() => document.getElementById('speech-c1').value === 'en, hi'")
    field.fill("TA  en")
    field.dispatch_event("change")
    page.page.wait_for_function("() => document.getElementById('speech-c1').value === 'ta, en'")
    assert page.page.inner_text("#a-msg") == catalogue("en")["js.saved"]
    assert app_server.run(_languages(app_server)) == ["ta", "en"]
    field.fill("ta, xx")
    field.dispatch_event("change")
    page.page.wait_for_function("() => !!document.getElementById('speech-c1-error')?.textContent")
    # the refusal beside the field as the page's own sentence (docs/frontdesk.md), not the API's
    # English message; what is saved does not change
    assert page.page.inner_text("#speech-c1-error") == catalogue("en")["admin.err_speech_languages"]
    assert field.get_attribute("aria-invalid") == "true"
    assert app_server.run(_languages(app_server)) == ["ta", "en"]
    page.assert_clean(ignore=("422", *CHARTS))


async def _languages(server: LiveServer) -> list[str]:
    from qtraq_live.speech import languages
    return await languages.get(server.app.state.redis, "c1")
