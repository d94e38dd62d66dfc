"""Every patient-facing page, the TV and the error pages in each language, against a running
server: the language chosen by ``?lang=`` (kept in the ``qt_lang`` cookie from the check-in
form to the ticket page and every page after), by the ticket, clinic or account, or by
Accept-Language with its q-values; staff pages in English and Hindi only."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from qtraq_live.display import i18n, render, script_strings
from qtraq_live.languages import LANG_COOKIE, LANGS, STAFF_LANGS
from tests.support_accounts import portal, register  # noqa: F401
from tests.support_http import LiveServer, StartServer, error_of, start_server  # noqa: F401
from tests.test_pages import assert_safe_page, display_key, page_data
from tests.test_pages_i18n import LATIN_ALLOWED as PORTAL_LATIN
from tests.test_pages_i18n import visible_text

SCRIPTS = {"hi": "\u0900-\u097F", "mr": "\u0900-\u097F", "ta": "\u0B80-\u0BFF", "te": "\u0C00-\u0C7F",
           "bn": "\u0980-\u09FF"}
# Latin words a page in another language may show: those the portal test allows (the language
# switch's "English", JSON, IP, the configured grievance contact), the SMS channel, and the
# clinic's and queues' own names from the test data. Links (the QR poster's) are left out.
LATIN_ALLOWED = PORTAL_LATIN | {"SMS", "Clinic", "Queue", "walk", "Pune",
                                "Data", "Fiduciary"}  # the DPDP Act's own term for the clinic


@pytest.fixture
def site(portal: LiveServer) -> LiveServer:  # noqa: F811
    """The portal's clinic c1 (queues gp, eye) plus a self check-in queue ``walk``."""
    portal.run(portal.engine.create_queue("c1", "walk", "Queue walk", "W", self_checkin=True))
    return portal


def _join(server: LiveServer, client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post(server.api("/public/queues/walk/join"), json=body)


def assert_speaks(r: httpx.Response, lang: str) -> None:
    """``<html lang>``, the language's own script, and no English word left."""
    assert r.status_code in (200, 401, 404), r.text
    assert f'<html lang="{lang}">' in r.text
    text = re.sub(r"https?://\S+", "", visible_text(r.text))
    if lang != "en":
        assert re.search(f"[{SCRIPTS[lang]}]", text), text
        english = set(re.findall(r"[A-Za-z]{3,}", text)) - LATIN_ALLOWED
        assert not english, (lang, english)


@pytest.mark.parametrize("lang", LANGS[1:])
def test_every_patient_page_and_the_tv_speak_each_language(site: LiveServer, lang: str) -> None:
    t = i18n.translator(lang)
    joined = _join(site, httpx.Client(), name="Kavya Nair", lang=lang)
    assert joined.status_code == 201, joined.text
    track = joined.json()["track_url"]
    key = display_key(site)
    pages = {
        "/join/walk": t("join.title", queue="Queue walk"),
        "/join/walk/qr": t("join.poster_help"),
        track.removeprefix(site.url): t("js.status_waiting"),
        "/account": t("portal.title"),
        "/privacy": t("privacy.title"),
        f"/display/c1?key={key}": t("display.recent"),
        f"/t/{'x' * 32}": t("error.no_ticket"),
        "/no-such-page": t("error.not_found"),
        "/join/gp": t("error.no_join"),
    }
    for path, expected in pages.items():
        sep = "&" if "?" in path else "?"
        r = httpx.get(f"{site.url}{path}{sep}lang={lang}")
        assert_speaks(r, lang)
        assert_safe_page(r)
        assert expected in r.text, (path, expected)
        if not path.startswith("/display/"):  # the TV has no language switch
            nav = re.search(r'<nav class="langs".*?</nav>', r.text, re.S)
            assert nav and re.findall(r'hreflang="(\w+)"', nav.group(0)) == list(LANGS), path
    ticket_page = httpx.get(f"{track}?lang={lang}")
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', ticket_page.text)
    weight = len(ticket_page.content) + sum(len(httpx.get(site.url + a).content) for a in assets)
    # Still light on a slow 3G phone in every script: the page carries only the browser strings
    # its own scripts use (display/script_strings.py), not every page's.
    assert weight < 40_000, (lang, weight)
    assert set(page_data(ticket_page.text)["t"]) == script_strings.page_keys(render._env, "ticket.html")
    data = page_data(httpx.get(f"{site.url}/display/c1?key={key}&lang={lang}").text)
    assert data["speech_lang"] == data["locale"] == f"{lang}-IN"
    assert data["t"]["call_speech"] == i18n.catalogue(lang)["js.call_speech"]  # type: ignore[index]


def test_the_language_chosen_on_the_check_in_form_follows_the_patient(site: LiveServer) -> None:
    patient = httpx.Client(base_url=site.url)
    r = patient.get("/join/walk?lang=ta")
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{LANG_COOKIE}=ta;") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Path=/" in cookie and "Max-Age=31536000" in cookie and "Secure" not in cookie
    assert page_data(r.text)["lang"] == "ta"
    joined = patient.post("/api/v1/public/queues/walk/join", json={"lang": page_data(r.text)["lang"]})
    assert joined.status_code == 201, joined.text
    ticket_path = joined.json()["track_url"].removeprefix(site.url)
    for path in (ticket_path, "/privacy", "/account", "/join/walk/qr", "/nowhere"):
        assert_speaks(patient.get(path), "ta")  # no ?lang=: the cookie carries it
    r = patient.get("/privacy?lang=bn")  # a new choice replaces the old one
    assert r.headers["set-cookie"].startswith(f"{LANG_COOKIE}=bn;")
    assert_speaks(patient.get(ticket_path), "bn")
    r = patient.get("/privacy?lang=xx")  # an unknown choice is ignored, never stored
    assert "set-cookie" not in r.headers and '<html lang="bn">' in r.text
    # without any choice the ticket's own language (from the form) wins over Accept-Language
    fresh = httpx.get(f"{site.url}{ticket_path}", headers={"Accept-Language": "hi"})
    assert_speaks(fresh, "ta")


def test_a_forged_language_cookie_is_ignored_and_never_echoed(site: LiveServer) -> None:
    for value in ('"><script>alert(1)</script>', "ta-IN", "../../etc", "x" * 300):
        r = httpx.get(f"{site.url}/privacy", cookies={LANG_COOKIE: value})
        assert r.status_code == 200 and '<html lang="en">' in r.text
        assert value not in r.text and "set-cookie" not in r.headers
    r = httpx.get(f"{site.url}/privacy?lang=%3Cb%3E")
    assert '<html lang="en">' in r.text and "<b>" not in r.text and "set-cookie" not in r.headers


def test_the_language_cookie_is_secure_in_production(start_server: StartServer) -> None:  # noqa: F811
    live = start_server(env="production")
    cookie = httpx.get(f"{live.url}/privacy?lang=mr").headers["set-cookie"]
    assert cookie.startswith(f"{LANG_COOKIE}=mr;") and "Secure" in cookie and "HttpOnly" in cookie


@pytest.mark.parametrize(("header", "lang"), [
    ("en;q=0.3, te;q=0.9", "te"),
    ("ta;q=0, bn;q=0.2, fr", "bn"),
    ("mr-IN,mr;q=0.9,en-GB;q=0.8", "mr"),
    ("fr, de;q=0.9", "en"),
])
def test_accept_language_weights_choose_the_page_language(site: LiveServer, header: str, lang: str) -> None:
    r = httpx.get(f"{site.url}/privacy", headers={"Accept-Language": header})
    assert_speaks(r, lang)
    assert "set-cookie" not in r.headers  # only an explicit choice is remembered


def test_staff_pages_speak_english_and_hindi_and_offer_every_clinic_language(site: LiveServer) -> None:
    r = httpx.get(f"{site.url}/reception?lang=ta")
    assert '<html lang="en">' in r.text  # no Tamil staff console: English, never a mix
    assert r.headers["set-cookie"].startswith(f"{LANG_COOKIE}=ta;")  # still remembered for patient pages
    nav = re.search(r'<nav class="langs".*?</nav>', r.text, re.S)
    assert nav and re.findall(r'hreflang="(\w+)"', nav.group(0)) == list(STAFF_LANGS)
    r = httpx.get(f"{site.url}/admin", headers={"Accept-Language": "ta, hi;q=0.8"})
    assert '<html lang="hi">' in r.text
    admin = site.staff("admin")
    page = admin.get(f"{site.url}/admin?lang=hi")
    assert '<html lang="hi">' in page.text
    for code in LANGS:  # a clinic's screens and notices may use any language
        assert re.search(rf'<option value="{code}"[^>]*>{re.escape(i18n.translator(code)(f"lang.{code}"))}</option>',
                         page.text), code


def test_languages_are_accepted_by_the_api_and_anything_else_is_refused(site: LiveServer) -> None:
    admin = site.staff("admin")
    r = admin.post("/clinics", json={"id": "pune", "name": "Pune Clinic", "timezone": "Asia/Kolkata", "lang": "mr"})
    assert r.status_code == 201, r.text
    key = display_key(site, "pune")
    r = httpx.get(f"{site.url}/display/pune?key={key}")  # the clinic's language on its TV
    assert_speaks(r, "mr")
    assert page_data(r.text)["speech_lang"] == "mr-IN"
    r = admin.patch("/clinics/pune", json={"lang": "fr"})
    assert error_of(r) == (422, "invalid_field") and "lang" in r.json()["error"]["message"]
    r = _join(site, httpx.Client(), lang="xx")
    assert error_of(r) == (422, "invalid_field") and "lang" in r.json()["error"]["message"]
    patient = register(site, lang="bn")
    assert patient.client.get("/me").json()["lang"] == "bn"
    assert_speaks(httpx.get(f"{site.url}/account", cookies=patient.client.cookies), "bn")


def test_print_slip_dates_are_written_in_the_slip_language(site: LiveServer) -> None:
    ticket = site.run(site.engine.issue("gp", name="Asha Rao"))
    desk = site.staff("reception")
    for lang, month_script in (("ta", SCRIPTS["ta"]), ("bn", SCRIPTS["bn"])):
        r = desk.get(f"{site.url}/tickets/{ticket['id']}/print?lang={lang}")
        assert r.status_code == 200 and f'<html lang="{lang}">' in r.text
        when = re.search(r'<p class="slip-time"><time datetime="[^"]+">(.*?)</time>', r.text)
        assert when and re.search(f"[{month_script}]", when.group(1)), when  # the month's name
