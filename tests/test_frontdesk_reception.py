"""The front desk in Chromium against a real ``qtraq-live serve``: each waiting row's actions by
mouse and keyboard, closing a counter (the TV and the patient's page follow), bringing back
skipped and no-show tickets, today's appointments with
one-click check-in, a doctor's console, errors next to their field in the page's language (the
walk-in and self check-in forms, and every form of the admin page),
forms that never put what was typed into a URL (JavaScript on and off), the landing page, and
patient pages that never scroll sideways at 360 px, the admin's "served per day" chart counting
days in a far-away clinic's timezone."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page

from qtraq_live.display import i18n
from tests.support_browser import Watched, browser, open_page, screenshot  # noqa: F401
from tests.support_frontdesk import SIDEWAYS_JS, FrontdeskSite, frontdesk_site, sign_in  # noqa: F401
from tests.support_serve import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]
HINDI_MOBILE_ERROR = "कृपया मोबाइल नंबर ऐसे लिखें"


def desk_page(context: BrowserContext, site: FrontdeskSite, query: str = "?queue=gp&counter=3",
              size: tuple[int, int] = (1366, 768)) -> Watched:
    w = open_page(context, f"{site.url}/reception{query}", *size)
    w.page.wait_for_function("() => document.body.dataset.socket === 'open'")
    return w


def rows(page: Page, n: int) -> None:
    page.wait_for_function(f"() => document.querySelectorAll('#r-waiting tr').length === {n}")


def idle(page: Page) -> None:
    """The console's last request has answered (a press while one is in flight is ignored)."""
    page.wait_for_function("() => !document.getElementById('b-next').disabled")


def status(site: FrontdeskSite, ticket_id: int) -> dict[str, Any]:
    return dict(site.api.get(f"/tickets/{ticket_id}").json()["ticket"])


def test_each_row_calls_or_cancels_by_mouse_and_keyboard(browser: BrowserContext, frontdesk_site: FrontdeskSite) -> None:
    site = frontdesk_site
    site.reset()
    a, b, c, e = (site.issue("gp", n) for n in ("Asha Rao", "Bala K", "Chitra M", "Dev S"))
    sign_in(browser, site, "desk")
    w = desk_page(browser, site)
    page = w.page
    rows(page, 4)
    # Mouse: call the third patient to this counter, out of order.
    page.click(f"#r-waiting tr[data-id='{c['id']}'] .r-call")
    page.wait_for_function("l => document.getElementById('r-current').textContent === l", arg=c["label"])
    assert (status(site, c["id"])["status"], status(site, c["id"])["counter"]) == ("called", "3")
    rows(page, 3)
    idle(page)
    # Keyboard: focus the first row, X arms the cancel, X again cancels it.
    page.focus(f"#r-waiting tr[data-id='{a['id']}']")
    page.keyboard.press("x")
    assert page.text_content(f"#r-waiting tr[data-id='{a['id']}'] .r-cancel") == "Sure? Press again"
    assert status(site, a["id"])["status"] == "waiting"
    page.keyboard.press("x")
    rows(page, 2)
    idle(page)
    assert status(site, a["id"])["status"] == "cancelled"
    # Arrow down to the next row and C: called to this counter, the previous call ends.
    page.focus(f"#r-waiting tr[data-id='{b['id']}']")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("c")
    page.wait_for_function("l => document.getElementById('r-current').textContent === l", arg=e["label"])
    assert status(site, c["id"])["status"] == "done"
    assert status(site, e["id"])["counter"] == "3"
    screenshot(page, "reception-rows-1366x768")
    w.assert_clean()
    page.close()


def test_closing_the_counter_clears_the_tv_and_finishes_the_patient(browser: BrowserContext,
                                                                   frontdesk_site: FrontdeskSite) -> None:
    site = frontdesk_site
    site.reset()
    a, b = site.issue("gp", "Kavya S"), site.issue("gp", "Lalit M")
    sign_in(browser, site, "desk")
    tv = open_page(browser, f"{site.url}/display/city?key={site.keys['city']}", 1920, 1080)
    tv.page.wait_for_function("() => document.body.dataset.socket === 'open'")
    w = desk_page(browser, site, "?queue=gp&counter=5")
    page = w.page
    rows(page, 2)
    page.click("#b-next")
    page.wait_for_function("l => document.getElementById('r-current').textContent === l", arg=a["label"])
    idle(page)
    patient = open_page(browser, f"{site.url}/t/{a['token']}", 360, 740)
    assert patient.page.get_attribute("#p-card", "data-status") == "called"
    card = tv.page.locator(".d-queue[data-queue=gp]")
    card.locator(".d-serving .d-label", has_text=a["label"]).wait_for()
    # Mouse: the first press asks once more and changes nothing; the second closes the counter.
    page.click("#b-close")
    assert page.text_content("#b-close") == "Sure? Press again"
    assert status(site, a["id"])["status"] == "called"
    page.click("#b-close")
    page.wait_for_function("() => document.getElementById('r-msg').textContent === 'Counter 5 is closed.'")
    assert page.text_content("#b-close kbd") == "E"  # the button is itself again
    assert status(site, a["id"])["status"] == "done"
    card.locator(".d-serving .d-label", has_text=a["label"]).wait_for(state="detached")
    assert [x.strip() for x in card.locator(".d-serving .d-label").all_text_contents()] == ["—"]
    patient.page.wait_for_function("() => document.getElementById('p-card').dataset.status === 'done'")
    assert patient.page.text_content("#p-status") == "Your visit is complete. Thank you!"
    assert page.text_content("#r-current") == "—"
    assert status(site, b["id"])["status"] == "waiting"  # nobody else was called
    # Keyboard: E twice on a counter that is closed already says so.
    idle(page)
    page.keyboard.press("e")
    page.keyboard.press("e")
    page.wait_for_function("() => document.getElementById('r-msg').textContent === 'Counter 5 was not open.'")
    # The console keeps its counter; its next press opens the counter again.
    page.goto(f"{site.url}/reception")
    page.wait_for_function("() => document.body.dataset.socket === 'open'")
    assert page.input_value("#r-counter") == "5"
    idle(page)
    page.keyboard.press("n")
    page.wait_for_function("l => document.getElementById('r-current').textContent === l", arg=b["label"])
    card.locator(".d-serving .d-label", has_text=b["label"]).wait_for()
    for x in (w, tv, patient):
        x.assert_clean()
        x.page.close()


def test_skipped_and_no_show_tickets_come_back(browser: BrowserContext, frontdesk_site: FrontdeskSite) -> None:
    site = frontdesk_site
    site.reset()
    a, b = site.issue("gp", "Farah N"), site.issue("gp", "Gopal R")
    sign_in(browser, site, "desk")
    w = desk_page(browser, site)
    page = w.page
    rows(page, 2)
    page.keyboard.press("n")
    page.wait_for_function("l => document.getElementById('r-current').textContent === l", arg=a["label"])
    idle(page)
    page.keyboard.press("s")  # not here: set aside
    page.wait_for_selector(f"#r-aside li:has-text('{a['label']}') .r-noshow")
    idle(page)
    page.keyboard.press("n")
    page.wait_for_function("l => document.getElementById('r-current').textContent === l", arg=b["label"])
    idle(page)
    page.keyboard.press("m")  # marked as a no-show at once
    page.wait_for_selector(f"#r-aside li:has-text('{b['label']}')")
    idle(page)
    page.click(f"#r-aside li:has-text('{a['label']}') .r-noshow")
    wait_until(lambda: status(site, a["id"])["status"] == "no_show", 5, "the no-show")
    # A reloaded console finds them again (from the record), and brings one back to the queue.
    page.reload()
    page.wait_for_selector(f"#r-aside li:has-text('{a['label']}')")
    idle(page)
    page.click(f"#r-aside li:has-text('{b['label']}') .r-requeue")
    rows(page, 1)
    idle(page)
    assert status(site, b["id"])["status"] == "waiting"
    page.click(f"#r-aside li:has-text('{a['label']}') .r-call")
    page.wait_for_function("l => document.getElementById('r-current').textContent === l", arg=a["label"])
    assert page.locator("#r-aside li").count() == 0
    w.assert_clean()
    page.close()


def _book_today(site: FrontdeskSite, name: str, mobile: str) -> None:
    """A patient registers, adds a family member and books the gp queue for today."""
    with httpx.Client(base_url=f"{site.url}/api/v1", timeout=10) as c:
        r = c.post("/accounts", json={"name": name, "mobile": mobile, "password": "a long unusual passphrase"})
        assert r.status_code == 201, r.text
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        patient = c.post("/me/patients", json={"name": name, "relation": "self", "age": 40}).json()
        today = datetime.now(ZoneInfo("Asia/Kolkata")).date().isoformat()
        r = c.post("/me/appointments", json={"patient": patient["id"], "queue": "gp", "date": today})
        assert r.status_code == 201, r.text


def test_todays_appointments_are_found_and_checked_in_with_one_click(browser: BrowserContext,
                                                                    frontdesk_site: FrontdeskSite) -> None:
    site = frontdesk_site
    site.reset()
    _book_today(site, "Harish Chandra", "98450 11111")
    _book_today(site, "Indira Menon", "98450 22222")
    sign_in(browser, site, "desk")
    w = desk_page(browser, site)
    page = w.page
    page.wait_for_selector("#a-list li:has-text('Harish Chandra')")
    page.fill("#a-q", "indira")
    page.wait_for_function("() => document.querySelectorAll('#a-list li').length === 1")
    page.fill("#a-q", "22222")  # or by the digits of the mobile
    page.wait_for_selector("#a-list li:has-text('Indira Menon')")
    page.click("#a-list li:has-text('Indira Menon') button")
    page.wait_for_selector("#r-issued:not([hidden])")
    page.wait_for_selector("#a-list li:has-text('checked in')")
    rows(page, 1)
    screenshot(page, "reception-appointments-1366x768")
    w.assert_clean()
    page.close()


def test_a_doctors_console_shows_only_what_a_doctor_may_do(browser: BrowserContext,
                                                          frontdesk_site: FrontdeskSite) -> None:
    site = frontdesk_site
    site.reset()
    t = site.issue("gp", "Jaya P")
    browser.clear_cookies()
    sign_in(browser, site, "doc")
    w = desk_page(browser, site, "?queue=gp&counter=Room%202")
    page = w.page
    rows(page, 1)
    for hidden in ("#issue-form", "#b-transfer", "#b-pause", "#appt-search", ".r-cancel"):
        assert page.locator(hidden).count() == 0, hidden
    assert [o for o in page.eval_on_selector_all("#r-queue option", "os => os.map(o => o.value)")] == ["gp"]
    page.click(f"#r-waiting tr[data-id='{t['id']}'] .r-call")
    page.wait_for_function("l => document.getElementById('r-current').textContent === l", arg=t["label"])
    page.wait_for_function("() => !document.getElementById('b-done').disabled")  # the call's answer is in
    page.keyboard.press("d")
    wait_until(lambda: status(site, t["id"])["status"] == "done", 5, "done")
    w.assert_clean()
    page.close()
    browser.clear_cookies()


def test_a_wrong_number_is_explained_next_to_its_field_in_the_page_language(browser: BrowserContext,
                                                                           frontdesk_site: FrontdeskSite) -> None:
    site = frontdesk_site
    site.reset()
    sign_in(browser, site, "desk")
    w = desk_page(browser, site, "?queue=gp&counter=1&lang=hi")
    page = w.page
    page.fill("#i-mobile", "98765")
    page.click("#issue-form button[type=submit]")
    error = page.locator("#i-mobile-error")
    error.wait_for()
    assert HINDI_MOBILE_ERROR in (error.text_content() or "")
    assert "must be" not in page.inner_text("body") and "invalid_field" not in page.inner_text("body")
    assert page.get_attribute("#i-mobile", "aria-invalid") == "true"
    page.fill("#i-mobile", "098450 33333")  # as people write it
    assert page.is_hidden("#i-mobile-error")
    page.click("#issue-form button[type=submit]")
    page.wait_for_selector("#r-issued:not([hidden])")
    # The patient's own check-in page too, in Hindi.
    join = open_page(browser, f"{site.url}/join/gp?lang=hi", 360, 740)
    join.page.fill("#j-mobile", "12")
    join.page.click("#j-submit")
    join.page.locator("#j-mobile-error").wait_for()
    assert HINDI_MOBILE_ERROR in (join.page.text_content("#j-mobile-error") or "")
    for x in (w, join):
        x.assert_clean(ignore=("422",))
        x.page.close()


# Every form of the admin page, refused by the server: what to type (selector, value; "~…" picks
# an option: a user by name, else by value), where the error must show, in which words.
# Browser checks (required, pattern, min, maxlength) are taken off first: the server's are tested.
ADMIN_FORM_ERRORS: list[tuple[str, list[tuple[str, str]], str, str]] = [
    ("clinic-form", [("#cf-id", "city"), ("#cf-name", "Second City")], "cf-id", "admin.err_clinic_taken"),
    ("clinic-form", [("#cf-id", "Bad Id!")], "cf-id", "admin.err_id"),
    ("clinic-form", [("#cf-id", "newclinic"), ("#cf-tz", "Mars/Olympus")], "cf-tz", "admin.err_timezone"),
    ("queue-form", [("#qf-id", "gp"), ("#qf-name", "Another GP"), ("#qf-prefix", "G")], "qf-id",
     "admin.err_queue_taken"),
    ("queue-form", [("#qf-id", "newq"), ("#qf-prefix", "a1")], "qf-prefix", "js.err_field_prefix"),
    ("queue-form", [("#qf-prefix", "Q"), ("#qf-avg", "5")], "qf-avg", "admin.err_avg_service"),
    ("user-form", [("#uf-name", "desk"), ("#uf-pass", "a long unusual passphrase")], "uf-name",
     "admin.err_username_taken"),
    ("user-form", [("#uf-name", "x")], "uf-name", "admin.err_username"),
    ("user-form", [("#uf-name", "newdesk"), ("#uf-pass", "password")], "uf-pass", "js.err_field_password"),
    ("user-form", [("#uf-pass", "a long unusual passphrase"), ("#uf-role", "~doctor"), ("#uf-queues", "nowhere")],
     "uf-queues", "admin.err_queues"),
    ("key-form", [("#kf-label", "x" * 81)], "kf-label", "admin.err_label"),
    ("chan-form", [("#cc-email", "not a url")], "cc-email", "admin.err_channel_url"),
    ("test-form", [("#tf-channel", "~email"), ("#tf-to", "not-an-address")], "tf-to", "admin.err_test_to"),
    ("ax-pass-form", [("#ax-user", "~desk"), ("#ax-pass", "password")], "ax-pass", "js.err_field_password"),
    ("ax-role-form", [("#ax-user", "~boss"), ("#ax-role", "~reception")], "ax-role", "admin.err_own_account"),
    ("ax-role-form", [("#ax-user", "~desk"), ("#ax-role", "~doctor"), ("#ax-queues", "nowhere")], "ax-queues",
     "admin.err_queues"),
    ("ax-token-form", [("#ax-days", "-3")], "ax-days", "admin.err_expires_days"),
    ("notice-form", [("#nf-subject", "Clinic closed"), ("#nf-text", "   ")], "nf-text", "admin.err_text"),
    ("upi-form", [("#pf-upi", "not a upi id")], "pf-upi", "admin.err_upi"),
    ("fee-form", [("#pf-queue", "nowhere"), ("#pf-fee", "100")], "pf-queue", "admin.err_fee_queue"),
    ("fee-form", [("#pf-queue", "gp"), ("#pf-fee", "-5")], "pf-fee", "admin.err_fee"),
]
NO_BROWSER_CHECKS_JS = """f => { f.noValidate = true;
  f.querySelectorAll('[maxlength],[minlength],[pattern],[min],[max],[required]').forEach(el =>
    ['maxlength', 'minlength', 'pattern', 'min', 'max', 'required'].forEach(a => el.removeAttribute(a))); }"""
SHOWN_ERROR_JS = """([id, text]) => { const e = document.getElementById(id + '-error');
  return !!e && !e.hidden && e.textContent === text; }"""


@pytest.mark.parametrize("lang", ["hi", "en"])
def test_admin_form_errors_show_beside_their_field_in_the_page_language(browser: BrowserContext,
                                                                       frontdesk_site: FrontdeskSite,
                                                                       lang: str) -> None:
    site = frontdesk_site
    t = i18n.translator(lang)
    browser.clear_cookies()
    sign_in(browser, site, "boss")
    w = open_page(browser, f"{site.url}/admin?lang={lang}", 1366, 768)
    page = w.page
    page.wait_for_function("() => document.querySelectorAll('#ax-user option').length >= 3")
    page.wait_for_selector("#chan-form:not([hidden])")
    page.wait_for_selector("#test-form:not([hidden])")
    for form_id, steps, field, key in ADMIN_FORM_ERRORS:
        form = page.locator(f"#{form_id}")
        form.evaluate(NO_BROWSER_CHECKS_JS)
        for selector, value in steps:
            if value is not None and value.startswith("~"):  # an option: a user by name, else by value
                page.select_option(selector, **{"label" if selector == "#ax-user" else "value": value[1:]})
            else:
                page.fill(selector, value)
        form.locator("button[type=submit]").first.click()
        expected = t(key)
        page.wait_for_function(SHOWN_ERROR_JS, arg=[field, expected])
        assert page.get_attribute(f"#{field}", "aria-invalid") == "true", (form_id, field)
        assert f"{field}-error" in (page.get_attribute(f"#{field}", "aria-describedby") or "")
        # Beside the field: the sentence follows it in the form, and the page's message line is not used.
        assert page.evaluate("id => document.getElementById(id).nextElementSibling.id", field) == f"{field}-error"
        assert page.text_content("#a-msg") in ("", t("js.saved")), (form_id, page.text_content("#a-msg"))
    # Each language's own words, never the API's English or its codes.
    body = page.inner_text("main")
    for api_words in ("already_exists", "invalid_field", "own_account", "not_found", "must be", "must have",
                      "unknown queue", "is required", "has an invalid format"):
        assert api_words not in body, api_words
    # The speech languages box (no form: saved as it changes) says it beside itself too.
    page.fill("#speech-city", "xx")
    page.press("#speech-city", "Tab")
    page.wait_for_function(SHOWN_ERROR_JS, arg=["speech-city", t("admin.err_speech_languages")])
    if lang == "hi":
        screenshot(page, "admin-errors-1366x768-hi")
    w.assert_clean(ignore=("409", "422", "404", "400"))
    page.close()
    browser.clear_cookies()


SENSITIVE_FORMS_JS = """() => [...document.querySelectorAll('form')]
  .filter(f => f.querySelector('input[type=password], input[type=tel], input[type=email], input[name=mobile], input[name=email]'))
  .map(f => [f.id, f.method, f.getAttribute('action')])"""


def test_forms_with_secrets_never_put_them_in_a_url(browser: BrowserContext, frontdesk_site: FrontdeskSite,
                                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    site = frontdesk_site
    browser.clear_cookies()
    # Every form holding a password, a phone or an email, on every page, is a POST.
    for path in ("/reception", "/admin", "/account", "/join/gp"):
        w = open_page(browser, site.url + path, 1366, 768)
        forms = w.page.evaluate(SENSITIVE_FORMS_JS)
        assert forms and all(method == "post" for _, method, _ in forms), (path, forms)
        w.page.close()
    # With JavaScript on, the check-in goes to the API and the page URL never holds the number.
    w = open_page(browser, f"{site.url}/join/gp", 360, 740)
    w.page.fill("#j-mobile", "98450 44444")
    w.page.click("#j-submit")
    w.page.wait_for_url("**/t/**")
    assert "98450" not in w.page.url and "44444" not in w.page.url
    w.page.close()
    # With JavaScript off, the same forms land on the refusal page with nothing in the URL.
    off = browser.browser.new_context(java_script_enabled=False) if browser.browser else None
    assert off is not None
    try:
        page = off.new_page()
        page.goto(f"{site.url}/join/gp")
        page.fill("#j-mobile", "98450 55555")
        page.click("#j-submit")
        page.wait_for_url("**/forms/refused")
        assert page.url == f"{site.url}/forms/refused"
        assert "JavaScript" in page.inner_text("h1")
        page.goto(f"{site.url}/reception")
        page.fill("#l-user", "desk")
        page.fill("#l-pass", "a secret typed")
        page.click("#login-form button[type=submit]")
        page.wait_for_url("**/forms/refused")
        assert "secret" not in page.url and "desk" not in page.url
    finally:
        off.close()


def test_landing_page_links_the_screens(browser: BrowserContext, frontdesk_site: FrontdeskSite) -> None:
    w = open_page(browser, frontdesk_site.url + "/", 1366, 768)
    hrefs = w.page.eval_on_selector_all("main a", "as => as.map(a => a.getAttribute('href'))")
    for expected in ("/reception", "/admin", "/account", "/join/gp", "/privacy"):
        assert expected in hrefs
    assert "/join/eye" not in hrefs  # no self check-in there
    w.assert_clean()
    w.page.close()


@pytest.mark.parametrize("lang", ["en", "hi"])
def test_patient_pages_never_scroll_sideways_at_360_px(browser: BrowserContext, frontdesk_site: FrontdeskSite,
                                                       lang: str) -> None:
    site = frontdesk_site
    browser.clear_cookies()
    ticket = site.api.post("/queues/gp/tickets", json={"name": "Venkata Lakshmi Narasimha Subrahmanyam"}).json()
    pages = ["/", "/account", "/privacy", "/join/gp", f"/t/{ticket['track_url'].rsplit('/', 1)[1]}",
             "/forms/refused"]
    for path in pages:
        w = open_page(browser, f"{site.url}{path}{'&' if '?' in path else '?'}lang={lang}", 360, 740)
        w.page.wait_for_load_state("networkidle")
        assert not w.page.evaluate(SIDEWAYS_JS), f"{path} scrolls sideways at 360 px ({lang})"
        w.page.close()
    # Signed in, with long names everywhere the portal shows them.
    with httpx.Client(base_url=f"{site.url}/api/v1", timeout=10) as c:
        email = f"verylongname.{lang}.someone@a-rather-long-domain-name.example.com"
        r = c.post("/accounts", json={"name": "Venkata Lakshmi Narasimha Subrahmanyam Chowdary", "email": email,
                                      "password": "a long unusual passphrase"})
        assert r.status_code == 201, r.text
        cookies = [{"name": k, "value": v, "url": site.url} for k, v in c.cookies.items()]
    browser.add_cookies(cookies)  # type: ignore[arg-type]
    w = open_page(browser, f"{site.url}/account?lang={lang}", 360, 740)
    w.page.wait_for_load_state("networkidle")
    assert not w.page.evaluate(SIDEWAYS_JS), f"/account signed in scrolls sideways at 360 px ({lang})"
    screenshot(w.page, f"account-360x740-{lang}")
    w.page.close()
    browser.clear_cookies()


def test_admin_edits_closes_archives_a_queue_and_sets_up_slots(browser: BrowserContext,
                                                              frontdesk_site: FrontdeskSite) -> None:
    site = frontdesk_site
    browser.clear_cookies()
    sign_in(browser, site, "boss")
    w = open_page(browser, f"{site.url}/admin", 1366, 768)
    page = w.page
    box = page.locator("details.a-queue[data-queue=ent]")
    box.locator("summary").click()
    box.locator("[name=name]").fill("ENT — Dr. Kavitha Srinivasan")
    box.locator("[name=prefix]").fill("N")
    box.locator("[name=avg_service_s]").fill("420")
    box.locator("[name=notify_ahead]").fill("5")
    box.locator(".a-queue-edit button[type=submit]").click()
    page.wait_for_function("() => document.getElementById('a-msg').textContent === 'Saved.'")
    q = site.api.get("/clinics/hosp").json()["queues"]
    ent = next(x for x in q if x["id"] == "ent")
    assert (ent["name"], ent["prefix"], ent["avg_service_s"], ent["notify_ahead"]) == (
        "ENT — Dr. Kavitha Srinivasan", "N", 420, 5)
    # A bad prefix is explained next to its field.
    box.locator("[name=prefix]").fill("n1")
    box.locator("[name=prefix]").evaluate("el => el.removeAttribute('pattern')")  # past the browser's own check
    box.locator(".a-queue-edit button[type=submit]").click()
    page.locator("#qe-prefix-ent-error").wait_for()
    # Appointment slots, set up here rather than through the API.
    box.locator("[name=opens]").fill("10:00")
    box.locator("[name=closes]").fill("12:00")
    box.locator("[name=slot_minutes]").fill("30")
    box.locator("[name=capacity]").fill("3")
    with page.expect_navigation():  # saved, the page reloads (waiting for "load" alone saw the old page)
        box.locator(".a-queue-slots button[type=submit]").click()
    tomorrow = (datetime.now(ZoneInfo("Asia/Kolkata")) + timedelta(days=1)).date().isoformat()
    slots = site.api.get("/queues/ent/slots", params={"date": tomorrow}).json()
    assert [s["slot"] for s in slots["slots"]] == ["10:00", "10:30", "11:00", "11:30"], slots
    # Close (pause) and open again.
    page.locator("details.a-queue[data-queue=ent] summary").click()
    with page.expect_navigation():  # the reload must be over before the next click, or it eats it
        page.locator("details.a-queue[data-queue=ent] .a-queue-pause").click()
    wait_until(lambda: site.api.get("/queues/ent").json()["paused"] is True, 5, "the pause")
    # Archive: refused while patients wait, then done; the queue leaves the console and the TV.
    t = site.issue("derma")
    derma = page.locator("details.a-queue[data-queue=derma]")
    derma.locator("summary").click()
    derma.locator(".a-queue-archive").click()
    page.wait_for_function("() => document.getElementById('a-msg').classList.contains('error')")
    assert "still waiting" in page.inner_text("#a-msg")
    site.api.post(f"/tickets/{t['id']}/cancel")
    with page.expect_navigation():
        derma.locator(".a-queue-archive").click()
    page.wait_for_selector("details.a-queue[data-queue=derma] summary:has-text('archived')")
    assert error_of_status(site.api.post("/queues/derma/tickets", json={})) == (409, "queue_archived")
    desk = open_page(browser, f"{site.url}/reception", 1366, 768)
    desk.page.select_option("#r-clinic", "hosp")
    assert "derma" not in desk.page.eval_on_selector_all("#r-queue option", "os => os.map(o => o.value)")
    tv = open_page(browser, f"{site.url}/display/hosp?key={site.keys['hosp']}", 1920, 1080)
    tv.page.wait_for_selector(".d-queue")
    assert tv.page.locator(".d-queue[data-queue=derma]").count() == 0
    screenshot(page, "admin-queues-1366x768")
    for x in (w, desk, tv):
        x.assert_clean(ignore=("409", "422"))
        x.page.close()
    browser.clear_cookies()


def error_of_status(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


def test_the_portal_books_by_queue_name_and_confirms_each_deletion(browser: BrowserContext,
                                                                  frontdesk_site: FrontdeskSite) -> None:
    site = frontdesk_site
    browser.clear_cookies()
    with httpx.Client(base_url=f"{site.url}/api/v1", timeout=10) as c:
        r = c.post("/accounts", json={"name": "Kamala Devi", "email": "kamala.devi@mail.example",
                                      "password": "a long unusual passphrase"})
        assert r.status_code == 201, r.text
        cookies = [{"name": k, "value": v, "url": site.url} for k, v in c.cookies.items()]
    browser.add_cookies(cookies)  # type: ignore[arg-type]
    w = open_page(browser, f"{site.url}/account", 360, 740)
    page = w.page
    page.on("dialog", lambda dialog: dialog.accept())
    page.fill("#add-patient [name=name]", "Kamala Devi")
    page.select_option("#add-patient [name=relation]", "self")
    page.fill("#add-patient [name=age]", "62")
    page.click("#add-patient button[type=submit]")
    page.wait_for_selector("#patients tr")
    names = page.eval_on_selector_all("#book [name=queue] option", "os => os.map(o => o.textContent)")
    assert "General Physician" in names and "Pharmacy" in names  # by name, nobody types an id
    page.select_option("#book [name=queue]", label="General Physician")
    page.fill("#book [name=date]", datetime.now(ZoneInfo("Asia/Kolkata")).date().isoformat())
    page.click("#book button[type=submit]")
    page.wait_for_selector("#appointments tr:has-text('General Physician')")
    page.click("#appointments tr button")  # cancel it: confirmed, then said
    page.wait_for_function("() => document.getElementById('flash').textContent === 'The appointment is cancelled.'")
    page.click("#patients tr button")
    page.wait_for_function("() => document.getElementById('flash').textContent === 'Kamala Devi was removed.'")
    w.assert_clean()
    # The removal's reloads of the lists may still be on their way when the account goes: a read
    # that reaches the server after the erasure is refused (401), which the browser logs; the
    # page handles it (no uncaught rejection) and leaves for the confirmation either way.
    page.click("#erase")
    page.wait_for_url("**/account?erased=1")
    assert "have been deleted" in page.inner_text("#flash")
    assert not page.evaluate(SIDEWAYS_JS)
    w.assert_clean(ignore=("401 (Unauthorized)",))
    page.close()
    browser.clear_cookies()


@pytest.mark.parametrize(("width", "height"), [(1920, 1080), (1366, 768), (1080, 1920), (360, 740)])
def test_every_screen_touched_fits_each_size_in_hindi(browser: BrowserContext, frontdesk_site: FrontdeskSite,
                                                      width: int, height: int) -> None:
    site = frontdesk_site
    site.issue("gp", "Venkata Lakshmi Narasimha Subrahmanyam Chowdary")
    browser.clear_cookies()
    sign_in(browser, site, "boss")
    for path in ("/reception?queue=gp&counter=Consultation%20Room%207", "/admin", "/", "/join/gp",
                 "/forms/refused"):
        w = open_page(browser, f"{site.url}{path}{'&' if '?' in path else '?'}lang=hi", width, height)
        w.page.wait_for_load_state("networkidle")
        assert not w.page.evaluate(SIDEWAYS_JS), f"{path} scrolls sideways at {width}x{height}"
        if path.startswith("/reception") and width == 360:
            screenshot(w.page, "reception-360x740-hi")
        w.assert_clean()
        w.page.close()
    browser.clear_cookies()


# Clinics far from UTC: whatever the hour, at least one of the last two has another date than UTC.
FAR_ZONES = {"far-kolkata": "Asia/Kolkata", "far-kiritimati": "Pacific/Kiritimati", "far-pagopago": "Pacific/Pago_Pago"}
BAR_TITLES_JS = """() => [...document.querySelectorAll('rect > title')].map(t => [t.textContent, t.parentElement.getAttribute('height')])"""
AXIS_LABELS_JS = """() => [...document.querySelectorAll('svg > text')].map(t => [t.textContent, t.getBoundingClientRect().right])"""


def _served_after_local_midnight(site: FrontdeskSite, clinic: str, tz: str, first_id: int) -> str:
    """Six patients served just after midnight in the clinic's timezone today; returns that day."""
    now = datetime.now(ZoneInfo(tz))
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    now_ms, start = int(now.timestamp() * 1000) - 1000, int(midnight.timestamp() * 1000)
    with sqlite3.connect(site.data_dir / "qtraq.db") as db:
        for i in range(6):
            created, called, done = (min(start + ms, now_ms) for ms in (60_000 + i, 120_000 + i, 300_000 + i))
            db.execute("INSERT INTO tickets (id, clinic, queue, label, status, score, day, created_at, called_at,"
                       " done_at) VALUES (?, ?, 'q', ?, 'done', '0', ?, ?, ?, ?)",
                       (first_id + i, clinic, f"A-{i + 1:03d}", midnight.strftime("%Y%m%d"), created, called, done))
    return midnight.strftime("%m-%d")


def test_served_per_day_chart_ends_on_the_clinics_own_today(browser: BrowserContext,
                                                            frontdesk_site: FrontdeskSite) -> None:
    site = frontdesk_site
    utc_today = datetime.now(timezone.utc).strftime("%m-%d")
    days: dict[str, str] = {}
    for n, (clinic, tz) in enumerate(FAR_ZONES.items()):
        r = site.api.post("/clinics", json={"id": clinic, "name": f"Clinic in {tz}", "timezone": tz})
        assert r.status_code in (201, 409), r.text
        with sqlite3.connect(site.data_dir / "qtraq.db") as db:
            wait_until(lambda: db.execute("SELECT 1 FROM clinics WHERE id = ?", (clinic,)).fetchone() is not None,
                       10, f"clinic {clinic} in the record")
            db.execute("DELETE FROM tickets WHERE clinic = ?", (clinic,))
        days[clinic] = _served_after_local_midnight(site, clinic, tz, 9_000_000 + 10 * n)
    assert set(days.values()) - {utc_today}, "no clinic has another date than UTC: the test would prove nothing"
    browser.clear_cookies()
    sign_in(browser, site, "boss")
    w = open_page(browser, f"{site.url}/admin", 1366, 768)
    page = w.page
    unit = i18n.translator("en")("admin.unit_patients")
    for clinic, today in days.items():
        # The admin page draws it for the chosen clinic...
        page.select_option("#sf-clinic", clinic)
        page.wait_for_function("c => { const i = document.getElementById('chart-served-per-day');"
                               " return i.complete && i.naturalWidth > 0 && i.src.includes('/' + c + '/'); }",
                               arg=clinic)
        # ...and the chart itself, opened in the browser: the last bar is today there, six patients.
        chart = open_page(browser, f"{site.url}/admin/charts/{clinic}/served-per-day.svg", 1366, 768).page
        bars = chart.evaluate(BAR_TITLES_JS)
        assert len(bars) == 14, bars
        assert bars[-1][0] == f"{today}: 6 {unit}", (clinic, bars[-1])
        assert float(bars[-1][1]) > 0
        assert all(title.startswith(f"{today}:") is False for title, _ in bars[:-1])
        labels = [text for text, _ in chart.evaluate(AXIS_LABELS_JS) if len(text) == 5 and text[2] == "-"]
        assert labels[-1] == today, (clinic, labels)
        width = chart.evaluate("() => document.documentElement.getBoundingClientRect().right")
        assert all(right <= width + 1 for _, right in chart.evaluate(AXIS_LABELS_JS)), "a label cut off"
        chart.close()
    w.assert_clean()
    page.close()
    browser.clear_cookies()

