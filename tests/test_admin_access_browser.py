"""The admin page's staff-access section in Chromium (issue #21 item 8): an admin disables a
user, resets a password, makes a desk-button token and revokes it; the section fits every
screen size in English and Hindi with long usernames. And the portal's own part (items 10 and
the DPDP nominee): log out another device, record a nominee."""

from __future__ import annotations

import pytest
from playwright.sync_api import BrowserContext

from tests.support_accounts import PASSWORD as ACCOUNT_PASSWORD
from tests.support_accounts import portal, register  # noqa: F401
from tests.support_browser import browser, open_page, screenshot  # noqa: F401
from tests.support_http import PASSWORD, LiveServer, app_server  # noqa: F401

SIZES = [(1920, 1080), (1366, 768), (1080, 1920), (360, 740)]
LONG_NAME = "dr.venkataraghavan.subramaniam-iyer"


def _sign_in(context: BrowserContext, live: LiveServer, username: str) -> None:
    r = context.request.post(live.api("/auth/login"), data={"username": username, "password": PASSWORD})
    assert r.ok, r.text()


def test_an_admin_withdraws_access_from_the_page(browser: BrowserContext, app_server: LiveServer) -> None:
    app_server.clinic("c1", ("gp",))
    boss = app_server.add_user("admin", username="boss")
    desk_name = app_server.add_user("reception", username=LONG_NAME)
    desk = app_server.login(desk_name)
    _sign_in(browser, app_server, boss)
    watched = open_page(browser, f"{app_server.url}/admin#access", 1366, 768)
    page = watched.page
    page.wait_for_function("() => document.querySelectorAll('#ax-user option').length === 2")
    page.select_option("#ax-user", label=LONG_NAME)
    page.wait_for_function("() => document.getElementById('ax-state').textContent === 'Active'")
    page.once("dialog", lambda d: d.accept())
    page.click("#ax-disable")
    page.wait_for_function("() => !document.getElementById('ax-enable').hidden")
    assert desk.get("/auth/me").status_code == 401
    page.click("#ax-enable")
    page.wait_for_function("() => !document.getElementById('ax-disable').hidden")
    page.fill("#ax-pass", "12345678")
    page.click("#ax-pass-form button[type=submit]")
    # a weak password is refused beside its field (issue #16: errors next to the field they are about)
    page.wait_for_function("() => !!document.getElementById('ax-pass-error')?.textContent")
    assert page.get_attribute("#ax-pass", "aria-invalid") == "true"
    page.fill("#ax-pass", "monsoon tamarind lantern")
    page.click("#ax-pass-form button[type=submit]")
    page.wait_for_function("() => document.getElementById('a-msg').textContent.startsWith('Password of')")
    assert app_server.login(desk_name, "monsoon tamarind lantern").get("/auth/me").status_code == 200
    page.select_option("#ax-scope", "press")
    page.click("#ax-token-form button[type=submit]")
    page.wait_for_selector("#ax-token-new:not([hidden])")
    token = page.inner_text("#ax-token")
    assert app_server.client(headers={"Authorization": f"Bearer {token}"}).post("/queues/gp/next",
                                                                                 json={}).status_code == 200
    page.wait_for_function("() => document.querySelectorAll('#ax-tokens button.danger').length === 1")
    page.once("dialog", lambda d: d.accept())
    page.click("#ax-tokens button.danger")
    page.wait_for_function("() => document.querySelectorAll('#ax-tokens button.danger').length === 0")
    assert app_server.client(headers={"Authorization": f"Bearer {token}"}).post("/queues/gp/next",
                                                                                 json={}).status_code == 401
    # 422: the weak password refused on purpose; 404: the stats charts of a clinic the record
    # (no persister runs here) does not hold yet
    watched.assert_clean(ignore=("422", "404"))


@pytest.mark.parametrize("lang", ["en", "hi"])
def test_the_staff_access_section_fits_every_screen(browser: BrowserContext, app_server: LiveServer,
                                                    lang: str) -> None:
    boss = app_server.add_user("admin", username="boss")
    app_server.add_user("reception", username=LONG_NAME)
    _sign_in(browser, app_server, boss)
    for width, height in SIZES:
        watched = open_page(browser, f"{app_server.url}/admin?lang={lang}#access", width, height)
        page = watched.page
        page.wait_for_function("() => document.querySelectorAll('#ax-user option').length === 2")
        page.locator("#access").scroll_into_view_if_needed()
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"), (width, lang)
        clipped = page.evaluate("""() => [...document.querySelectorAll('#access button, #access label, #access select')]
            .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.id || e.textContent)""")
        assert clipped == [], (width, lang, clipped)
        screenshot(page, f"admin-access-{lang}-{width}x{height}")
        watched.assert_clean()
        page.close()


@pytest.mark.parametrize("lang", ["en", "hi"])
def test_the_portal_logs_out_another_device_and_records_a_nominee(browser: BrowserContext, portal: LiveServer,
                                                                  lang: str) -> None:
    p = register(portal)
    elsewhere = portal.client()
    assert elsewhere.post("/auth/account-login", json={"email": p.email, "password": ACCOUNT_PASSWORD}).status_code == 200
    r = browser.request.post(portal.api("/auth/account-login"), data={"email": p.email, "password": ACCOUNT_PASSWORD})
    assert r.ok, r.text()
    for width, height in SIZES:
        watched = open_page(browser, f"{portal.url}/account?lang={lang}", width, height)
        page = watched.page
        page.wait_for_function("() => document.querySelectorAll('#devices li').length >= 2")
        for section in ("#devices", "#nominee-form"):
            right = page.evaluate(f"() => Math.max(...[...document.querySelectorAll('{section}, {section} *')]"
                                  ".map(e => e.getBoundingClientRect().right))")
            assert right <= width + 1, (section, width, lang)
        page.locator("#nominee-form").scroll_into_view_if_needed()
        screenshot(page, f"portal-security-{lang}-{width}x{height}")
        watched.assert_clean()
        page.close()
    watched = open_page(browser, f"{portal.url}/account?lang={lang}", 1366, 768)
    page = watched.page
    page.wait_for_function("() => document.querySelectorAll('#devices button').length === 2")
    page.click("#devices button")  # the newest other device first: `elsewhere`
    page.wait_for_function("() => document.querySelectorAll('#devices button').length === 1")
    assert elsewhere.get("/me").status_code == 401 and p.get("/me").status_code == 200
    page.fill("#nm-name", "Ravi Verma")
    page.fill("#nm-relation", "son")
    page.fill("#nm-contact", "+91 98123 00044")
    page.click("#nominee-form button[type=submit]")
    page.wait_for_selector("#nominee-remove:not([hidden])")
    assert p.get("/me/nominee").json()["nominee"]["contact"] == "+919812300044"
    watched.assert_clean()
