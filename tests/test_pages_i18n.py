"""The patient portal ``/account`` and the privacy page ``/privacy`` in both languages: every
visible string and every string of ``account.js`` comes from the catalogue, and the pages
follow the same language choice as the other screens (``?lang=``, then the account's own
language, then Accept-Language, then English)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from importlib import resources

import httpx
import pytest
from playwright.sync_api import BrowserContext, expect

from qtraq_live.accounts.appointments import LIVE
from qtraq_live.accounts.records import GENDERS, RELATIONS
from qtraq_live.display import i18n
from tests.support_accounts import codes_sent, portal, register  # noqa: F401
from tests.support_browser import browser, open_page  # noqa: F401
from tests.support_http import LiveServer
from tests.test_pages import assert_safe_page, page_data

# Latin words a Hindi page may show: names of formats and protocols, the "English" link of
# the language switch, the legal title kept in brackets, and the configured grievance contact.
LATIN_ALLOWED = {"English", "JSON", "IP", "Grievance", "Officer", "grievance", "clinic", "example",
                 "JPEG", "PNG", "PDF", "UPI", "zip",  # file formats and the payment system keep their names
                 "Clinic", "Queue", "eye"}  # the fixture's clinic and queue names, in the booking list (data)
ACCOUNT_JS = resources.files("qtraq_live.display").joinpath("static/account.js").read_text()


class _Text(HTMLParser):
    """The visible text of a page: everything but scripts, styles and the <title>."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "title"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "title"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.parts.append(data.strip())


def visible_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(parser.parts)


def get(live: LiveServer, path: str, cookies: httpx.Cookies | None = None,
        headers: dict[str, str] | None = None) -> httpx.Response:
    r = httpx.get(f"{live.url}{path}", headers=headers, cookies=cookies)
    assert r.status_code == 200, r.text
    assert_safe_page(r)
    return r


def assert_hindi(r: httpx.Response) -> None:
    """``<html lang="hi">`` and no English word left on the page."""
    assert '<html lang="hi">' in r.text
    text = visible_text(r.text)
    assert re.search(r"[\u0900-\u097F]", text)
    english = set(re.findall(r"[A-Za-z]{3,}", text)) - LATIN_ALLOWED
    assert not english, english


def signed_in(live: LiveServer, **fields: str) -> httpx.Cookies:
    """The session cookie of a new account (the page reads the session from it)."""
    return register(live, **fields).client.cookies


def test_portal_and_privacy_are_english_by_default(portal: LiveServer) -> None:
    r = get(portal, "/account")
    assert '<html lang="en">' in r.text
    assert "<h1>My account</h1>" in r.text and "Send me queue and appointment notices" in r.text
    assert page_data(r.text)["t"]["portal_verified"] == "Verified."  # type: ignore[index]
    days = portal.settings["privacy.walkin_contact_days"]
    r = get(portal, "/privacy")
    assert '<html lang="en">' in r.text
    assert f"Contact details and names are deleted {days} days after the visit." in r.text
    assert "Grievance officer:" in r.text and 'href="/account"' in r.text


def test_portal_and_privacy_in_hindi(portal: LiveServer) -> None:
    for path in ("/account?lang=hi", "/privacy?lang=hi"):
        assert_hindi(get(portal, path))
    r = get(portal, "/account", headers={"Accept-Language": "hi-IN,hi;q=0.9,en;q=0.5"})
    assert_hindi(r)
    assert "<h1>मेरा खाता</h1>" in r.text
    assert 'href="/privacy?lang=hi"' in r.text  # the language carries over to the linked page
    r = get(portal, "/privacy?lang=hi")
    assert f"विज़िट के {portal.settings['privacy.walkin_contact_days']} दिन बाद मिटा" in r.text
    assert "शिकायत अधिकारी" in r.text and 'href="/account?lang=hi"' in r.text


def test_signed_in_portal_follows_the_account_language(portal: LiveServer) -> None:
    hindi = signed_in(portal, lang="hi")
    r = get(portal, "/account", hindi)
    assert_hindi(r)
    assert "लॉग आउट करें" in r.text and "रक्त समूह" in r.text
    assert re.search(r'<option value="hi" lang="hi" selected>', r.text)  # the profile's language choice
    assert '<html lang="en">' in get(portal, "/account?lang=en", hindi).text  # ?lang= still wins
    english = signed_in(portal)
    assert '<html lang="en">' in get(portal, "/account", english).text


def test_portal_script_takes_every_string_from_the_catalogue(portal: LiveServer) -> None:
    """account.js builds its text with QT.t only; every key it can ask for exists in both languages."""
    assert not re.findall(r'(?:say|confirm|button)\(\s*"', ACCOUNT_JS)
    assert not re.findall(r'textContent\s*=\s*"[^"]', ACCOUNT_JS)
    used = set(re.findall(r'QT\.t\("([a-z_]+)"', ACCOUNT_JS))
    words = {"portal_gender_": GENDERS, "portal_relation_": RELATIONS,
             "portal_appt_": (*LIVE, "cancelled", "no_show"), "portal_ticket_": ("waiting", "called", "serving")}
    for prefix, codes in words.items():
        assert f'word("{prefix}"' in ACCOUNT_JS
        used |= {prefix + code for code in codes}
    strings = page_data(get(portal, "/account?lang=hi").text)["t"]
    assert isinstance(strings, dict)
    for key in used:
        assert "js." + key in i18n.catalogue("en"), key
        assert strings[key] == i18n.catalogue("hi")["js." + key], key


@pytest.mark.browser
@pytest.mark.slow
def test_portal_script_speaks_the_account_language_in_the_browser(portal: LiveServer, browser: BrowserContext,
                                                                  redis_url: str) -> None:
    patient = register(portal, lang="hi")
    browser.add_cookies([{"name": name, "value": value, "url": portal.url}
                         for name, value in patient.client.cookies.items()])
    watched = open_page(browser, f"{portal.url}/account", 420, 900)
    page = watched.page
    expect(page.locator("html")).to_have_attribute("lang", "hi")
    verify = page.locator("#verify")
    expect(verify).to_be_visible()
    verify.locator("[name=code]").fill(codes_sent(redis_url, patient.email)[0])
    verify.locator("button[type=submit]").click()
    expect(page.locator("#flash")).to_have_text("सत्यापित हो गया।")
    add = page.locator("#add-patient")
    add.locator("[name=name]").fill("Meera Iyer")
    add.locator("[name=age]").fill("40")
    add.locator("[name=gender]").select_option("female")
    add.locator("button[type=submit]").click()
    patients = page.locator("#patients")
    expect(patients).to_contain_text("महिला")
    expect(patients).to_contain_text("स्वयं")
    expect(patients.get_by_role("button")).to_have_text("हटाएँ")
    expect(page.locator("#consent-history li").first).to_contain_text("सूचनाएँ बंद")
    profile = page.locator("#profile")
    profile.locator("[name=lang]").select_option("en")
    profile.get_by_role("button").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")  # saved, and the page follows at once
    expect(page.get_by_role("heading", level=1)).to_have_text("My account")
    assert patient.get("/me").json()["lang"] == "en"
    watched.assert_clean()
