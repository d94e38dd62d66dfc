"""The front desk in Chromium against a real ``qtraq-live serve``: each waiting row's actions by
mouse and keyboard, bringing back skipped and no-show tickets, today's appointments with
one-click check-in, a doctor's console, errors next to their field in the page's language,
forms that never put what was typed into a URL (JavaScript on and off), the landing page, and
patient pages that never scroll sideways at 360 px."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page

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
