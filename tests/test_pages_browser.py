"""The screens in a real browser against a real ``qtraq-live serve``: a press at reception
reaches the TV and the patient's phone, the TV survives a server restart,
a patient leaves the queue, the console's keyboard shortcuts, self check-in, the printable
slip and the admin page. Each page is screenshotted at its target size (var/screenshots/)
and must log no console error."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext

from conftest import TIMEOUT_FACTOR
from qtraq_live.runtime.embedded_redis import EmbeddedRedis
from tests.support_browser import Watched, browser, open_page, screenshot  # noqa: F401
from tests.support_frontdesk import PASSWORD, seed_site, sign_in
from tests.support_serve import ServeProcess, seeded_serve, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]
# Expected while the server is down in the restart test.
DOWN_ERRORS = ("WebSocket connection", "ERR_CONNECTION_REFUSED", "Failed to load resource")


@dataclass
class Site:
    srv: ServeProcess
    api: httpx.Client
    display_key: str

    @property
    def url(self) -> str:
        return self.srv.url

    def issue(self, queue: str = "gp", name: str | None = None) -> dict[str, Any]:
        body = {"name": name} if name else {}
        r = self.api.post(f"/queues/{queue}/tickets", json=body)
        assert r.status_code == 201, r.text
        return {**r.json()["ticket"], "track_url": r.json()["track_url"]}

    def snapshot(self, queue: str) -> dict[str, Any]:
        r = self.api.get(f"/queues/{queue}")
        assert r.status_code == 200, r.text
        snap: dict[str, Any] = r.json()
        return snap

    def reset(self) -> None:
        """Cancel every active ticket, so each test starts with empty queues."""
        for queue in ("gp", "eye"):
            snap = self.snapshot(queue)
            for t in snap["now_serving"] + snap["waiting"]:
                self.api.post(f"/tickets/{t['id']}/cancel")
            if snap["paused"]:
                self.api.post(f"/queues/{queue}/resume")


@pytest.fixture(scope="module")
def site(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data = tmp_path_factory.mktemp("pages") / "data"
    data.mkdir()
    seed = functools.partial(seed_site, hospital=False, doctor=False, token_user="desk")
    with seeded_serve(redis_server.url, data, seed) as (srv, (token, keys)):
        with httpx.Client(base_url=f"{srv.url}/api/v1", headers={"Authorization": f"Bearer {token}"},
                          timeout=10) as api:
            yield Site(srv, api, keys["city"])


def display_page(context: BrowserContext, site: Site, width: int, height: int) -> Watched:
    d = open_page(context, f"{site.url}/display/city?key={site.display_key}", width, height)
    d.page.wait_for_selector(".d-queue")
    return d


def reception_page(context: BrowserContext, site: Site, query: str = "?queue=gp&counter=3") -> Watched:
    r = open_page(context, f"{site.url}/reception{query}", 1366, 768)
    r.page.wait_for_function("() => document.body.dataset.socket === 'open'")
    return r


def test_login_form_then_next_press_reaches_display_and_patient_within_a_second(browser: BrowserContext,
                                                                                site: Site) -> None:
    site.reset()
    first = site.issue(name="Ramesh Kumar")
    for name in ("Sita Devi", None, "Arjun Mehta"):
        site.issue(name=name)
    site.issue("eye", name="Meena Iyer")
    browser.clear_cookies()
    desk = open_page(browser, f"{site.url}/reception?queue=gp&counter=3", 1366, 768)
    desk.page.fill("#l-user", "desk")
    desk.page.fill("#l-pass", PASSWORD)
    desk.page.click("#login-form button[type=submit]")
    desk.page.wait_for_selector("#b-next")
    desk.page.wait_for_function("() => document.querySelectorAll('#r-waiting tr').length === 4")
    tv = display_page(browser, site, 1920, 1080)
    tv.page.wait_for_function("() => document.querySelectorAll('.d-next li').length >= 5")
    phone = open_page(browser, first["track_url"], 390, 844)
    assert phone.page.inner_text(".p-label") == first["label"]
    assert "Ramesh" not in phone.page.content()
    screenshot(tv.page, "display-1920x1080")
    screenshot(phone.page, "patient-390x844")
    screenshot(desk.page, "reception-1366x768")

    # The press reaches both screens (how fast: benchmarks/fanout.py; a timed assertion here
    # would fail on a loaded machine, not on a slow server)
    desk.page.locator("body").press("n")
    tv.page.wait_for_function("l => !document.getElementById('call').hidden && "
                              "document.getElementById('call-label').textContent === l", arg=first["label"])
    phone.page.wait_for_function("() => document.getElementById('p-card').dataset.status === 'called'")
    assert "Counter 3" in phone.page.inner_text("#p-status")
    assert "Counter 3" in tv.page.inner_text("#call-where")
    desk.page.wait_for_function("l => document.getElementById('r-current').textContent === l", arg=first["label"])
    screenshot(tv.page, "display-call-1920x1080")
    screenshot(phone.page, "patient-called-390x844")

    small = display_page(browser, site, 1366, 768)
    small.page.wait_for_function("l => document.querySelector('.d-serving .d-label').textContent === l",
                                 arg=first["label"])
    screenshot(small.page, "display-1366x768")
    for w in (desk, tv, phone, small):
        w.assert_clean()
        w.page.close()


def test_double_click_calls_one_patient_and_other_consoles_follow(browser: BrowserContext, site: Site) -> None:
    site.reset()
    tickets = [site.issue() for _ in range(3)]
    sign_in(browser, site, "desk")
    desk = reception_page(browser, site, "?queue=gp&counter=7")
    other = reception_page(browser, site, "?queue=gp&counter=8")  # a second receptionist
    for w in (desk, other):
        w.page.wait_for_function("() => document.querySelectorAll('#r-waiting tr').length === 3")
    desk.page.dblclick("#b-next")
    desk.page.wait_for_function("l => document.getElementById('r-current').textContent === l", arg=tickets[0]["label"])
    desk.page.wait_for_function("() => !document.getElementById('b-next').disabled")
    snap = site.snapshot("gp")
    assert [t["label"] for t in snap["now_serving"]] == [tickets[0]["label"]]
    assert [t["label"] for t in snap["waiting"]] == [tickets[1]["label"], tickets[2]["label"]]
    other.page.wait_for_function("l => document.querySelectorAll('#r-waiting tr').length === 2 && "
                                 "document.getElementById('r-serving').textContent.indexOf(l) === 0",
                                 arg=tickets[0]["label"])
    other.page.click("#b-pause")  # pausing at one console shows at the other
    desk.page.wait_for_function("() => !document.getElementById('r-paused').hidden && document.getElementById('b-next').disabled")
    assert site.snapshot("gp")["paused"] is True
    other.page.click("#b-pause")
    desk.page.wait_for_function("() => document.getElementById('r-paused').hidden && !document.getElementById('b-next').disabled")
    # A double click's second click that comes after the first call's answer (on a loaded
    # machine the two are far apart) is still no call: only the next single press calls.
    desk.page.dispatch_event("#b-next", "click", {"detail": 2})
    desk.page.click("#b-next")
    desk.page.wait_for_function("() => !document.getElementById('b-next').disabled")
    snap = site.snapshot("gp")
    assert [t["label"] for t in snap["now_serving"] if t["counter"] == "7"] == [tickets[1]["label"]]
    assert [t["label"] for t in snap["waiting"]] == [tickets[2]["label"]]
    for w in (desk, other):
        w.assert_clean()
        w.page.close()


def _status(site: Site, ticket: dict[str, Any]) -> str:
    status: str = httpx.get(f"{site.url}/api/v1/t/{ticket['token']}").json()["status"]
    return status


def _wait_status(site: Site, ticket: dict[str, Any], status: str) -> None:
    wait_until(lambda: _status(site, ticket) == status, 5, f"{ticket['label']} to be {status}")


def test_keyboard_shortcuts(browser: BrowserContext, site: Site) -> None:
    site.reset()
    a, b, c = (site.issue() for _ in range(3))
    sign_in(browser, site, "desk")
    desk = reception_page(browser, site, "?queue=gp&counter=2")
    page = desk.page
    page.wait_for_function("() => document.querySelectorAll('#r-waiting tr').length === 3")
    current = "l => document.getElementById('r-current').textContent === l && !document.getElementById('b-next').disabled"
    body = page.locator("body")

    body.press("n")
    page.wait_for_function(current, arg=a["label"])
    body.press("r")
    page.wait_for_function("() => document.getElementById('r-msg').textContent.indexOf('Recalled') === 0")
    assert site.snapshot("gp")["now_serving"][0]["recalls"] == 1
    body.press("s")
    _wait_status(site, a, "skipped")
    page.wait_for_function(current, arg="—")
    body.press("n")
    page.wait_for_function(current, arg=b["label"])
    body.press("d")
    _wait_status(site, b, "done")
    body.press("n")
    page.wait_for_function(current, arg=c["label"])
    page.select_option("#r-transfer", "eye")
    body.press("t")
    wait_until(lambda: [t["id"] for t in site.snapshot("eye")["waiting"]] == [c["id"]], 5, "the transfer")
    page.fill("#i-name", "Walk In")
    page.click("#issue-form button[type=submit]")
    page.wait_for_selector("#r-issued:not([hidden])")
    page.wait_for_function("() => document.querySelectorAll('#r-waiting tr').length === 1")
    body.press("p")
    frame = page.frame_locator("#print-frame")
    assert frame.locator(".slip-label").inner_text() == page.inner_text("#r-issued-label").split()[1]
    desk.assert_clean()
    page.close()


def test_patient_leaves_the_queue(browser: BrowserContext, site: Site) -> None:
    site.reset()
    site.issue()
    mine = site.issue()
    tv = display_page(browser, site, 1366, 768)
    tv.page.wait_for_function("l => [...document.querySelectorAll('.d-next li')].some(e => e.textContent === l)",
                              arg=mine["label"])
    phone = open_page(browser, mine["track_url"], 390, 844)
    phone.page.wait_for_function("() => document.getElementById('p-position').textContent === '2'")
    # the range the server gives, in minutes (this module's earlier presses may have taught the
    # queue a cycle of seconds: then the range can round to one number, or to "< 1 min")
    shown = site.api.get(f"/t/{mine['token']}").json()
    low, high = (max(1, round(shown[k] / 60)) for k in ("eta_low_s", "eta_high_s"))
    expected = ("< 1 min" if shown["eta_high_s"] < 30 else f"{high} min" if low >= high
                else f"about {low}–{high} min")
    assert shown["eta_low_s"] < shown["eta_s"] < shown["eta_high_s"]
    assert phone.page.inner_text("#p-eta") == expected
    phone.page.click("#leave")
    assert phone.page.is_visible("#leave-dialog")
    phone.page.click("#leave-yes")
    phone.page.wait_for_function("() => document.getElementById('p-card').dataset.status === 'cancelled'")
    assert phone.page.is_hidden("#leave") and "cancelled" in phone.page.inner_text("#p-status")
    assert _status(site, mine) == "cancelled"
    tv.page.wait_for_function("l => ![...document.querySelectorAll('.d-next li')].some(e => e.textContent === l)",
                              arg=mine["label"])
    screenshot(phone.page, "patient-cancelled-390x844")
    for w in (tv, phone):
        w.assert_clean()
        w.page.close()


def test_self_checkin_leads_to_the_patient_page(browser: BrowserContext, site: Site) -> None:
    site.reset()
    join = open_page(browser, f"{site.url}/join/gp", 390, 844)
    screenshot(join.page, "join-390x844")
    join.page.fill("#j-name", "Kavya Nair")
    join.page.check("#j-consent")
    join.page.click("#j-submit")
    assert join.page.is_visible("#j-error")  # consent without a number
    join.page.fill("#j-mobile", "+91 98765 43210")
    join.page.click("#j-submit")
    join.page.wait_for_url("**/t/*")
    join.page.wait_for_selector(".p-label")
    assert join.page.inner_text(".p-label").startswith("A-") and "Kavya" not in join.page.content()
    join.assert_clean()
    join.page.goto(join.page.url + "?lang=hi")
    assert join.page.get_attribute("html", "lang") == "hi" and "आप कतार में हैं" in join.page.inner_text("#p-status")
    screenshot(join.page, "patient-hindi-390x844")
    assert {c["name"]: c["value"] for c in browser.cookies()}["qt_lang"] == "hi"  # remembered for later pages,
    browser.clear_cookies(name="qt_lang")  # so forget it: the next tests read English
    poster = open_page(browser, f"{site.url}/join/gp/qr", 1366, 768)
    assert poster.page.locator("figure svg").count() == 1
    poster.assert_clean()
    for w in (join, poster):
        w.page.close()


def test_print_slip_and_admin_page_and_masked_names(browser: BrowserContext, site: Site) -> None:
    site.reset()
    ticket = site.issue(name="Asha Rao")
    sign_in(browser, site, "desk")
    slip = open_page(browser, f"{site.url}/tickets/{ticket['id']}/print?width=58", 300, 560)
    assert slip.page.inner_text(".slip-label") == ticket["label"]
    screenshot(slip.page, "print-58mm")
    slip.assert_clean()
    slip.page.close()

    sign_in(browser, site, "boss")
    admin = open_page(browser, f"{site.url}/admin", 1366, 768)
    page = admin.page
    page.wait_for_function("() => document.querySelectorAll('#users tr').length === 2")
    screenshot(page, "admin-1366x768")
    eye = page.locator("input[data-url='/api/v1/queues/eye']")
    eye.check()
    wait_until(lambda: httpx.get(f"{site.url}/join/eye").status_code == 200, 5, "self check-in on eye")
    page.wait_for_function("() => !document.querySelector(\"input[data-url='/api/v1/queues/eye']\").disabled")
    eye.uncheck()
    wait_until(lambda: httpx.get(f"{site.url}/join/eye").status_code == 404, 5, "self check-in off again")
    page.fill("#kf-label", "Lobby TV")
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#key-new:not([hidden])")
    display_url = page.inner_text("#key-url")
    assert httpx.get(display_url).status_code == 200
    page.wait_for_function("() => document.querySelectorAll('#key-list tr').length === 2")
    page.once("dialog", lambda dialog: dialog.accept())  # "Revoke this key?"
    page.locator("#key-list tr", has_text="Lobby TV").locator("button.danger").click()
    page.wait_for_function("() => [...document.querySelectorAll('#key-list tr')].some("
                           "r => r.textContent.includes('Lobby TV') && !r.querySelector('button'))")
    assert httpx.get(display_url).status_code != 200  # the revoked key opens no screen
    page.wait_for_function("() => [...document.querySelectorAll('.chart img')].every(i => i.complete && i.naturalWidth > 0)")
    page.fill("#cc-sms", "json://127.0.0.1:9/send?:to={to}")
    page.click("#chan-form button[type=submit]")
    page.wait_for_function("() => document.getElementById('cc-sms-state').textContent === '(own URL set)'")
    page.click(".cc-clear[data-channel=sms]")
    page.wait_for_function("() => document.getElementById('cc-sms-state').textContent === \"(server's setting)\"")
    page.locator("#stats").scroll_into_view_if_needed()
    screenshot(page, "admin-stats-1366x768")

    mask = page.locator("#mask-city")
    mask.check()
    page.wait_for_function("() => document.getElementById('a-msg').textContent === 'Saved.'")
    site.reset()
    site.issue(name="Ramesh Kumar")
    site.api.post("/queues/gp/next", json={"counter": "4"})
    tv = display_page(browser, site, 1366, 768)
    tv.page.wait_for_function("() => document.querySelector('.d-serving .d-name') !== null")
    assert tv.page.inner_text(".d-serving .d-name") == "R. K." and "Ramesh" not in tv.page.content()
    mask.uncheck()
    for w in (admin, tv):
        w.assert_clean()
        w.page.close()


def test_display_reconnects_after_the_server_restarts(browser: BrowserContext, site: Site) -> None:
    site.reset()
    tv = display_page(browser, site, 1366, 768)
    page = tv.page
    page.wait_for_function("() => document.body.dataset.socket === 'open'")
    site.srv.stop()
    page.wait_for_function("() => document.body.dataset.socket === 'closed' && !document.getElementById('conn').hidden")
    screenshot(page, "display-reconnecting-1366x768")
    site.srv.start()
    page.wait_for_function("() => document.body.dataset.socket === 'open' && document.getElementById('conn').hidden",
                           timeout=30_000 * TIMEOUT_FACTOR)
    ticket = site.issue()
    site.api.post("/queues/gp/next", json={"counter": "5"})
    page.wait_for_function("l => document.getElementById('call-label').textContent === l", arg=ticket["label"])
    tv.assert_clean(ignore=DOWN_ERRORS)
    page.close()
