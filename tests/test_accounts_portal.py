"""The /account portal in the real Chromium: register, verify with the code, add a patient,
book, and watch the checked-in ticket change live when reception calls it."""

from __future__ import annotations

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.support_accounts import Clinic, clinic, codes_sent, portal  # noqa: F401
from tests.support_browser import browser, open_page, screenshot  # noqa: F401
from tests.support_http import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_the_portal_from_registration_to_a_live_ticket(portal: LiveServer, clinic: Clinic, browser: BrowserContext,
                                                       redis_url: str) -> None:
    watched = open_page(browser, f"{portal.url}/account", 420, 900)
    page = watched.page
    form = page.locator("#register")
    form.locator("[name=name]").fill("Kavya Rao")
    form.locator("[name=email]").fill("kavya@mail.example")
    form.locator("[name=password]").fill("a long unusual passphrase")
    form.locator("[name=notifications]").check()
    form.locator("button[type=submit]").click()
    verify = page.locator("#verify")
    expect(verify).to_be_visible()
    verify.locator("[name=code]").fill(codes_sent(redis_url, "kavya@mail.example")[0])
    verify.locator("button[type=submit]").click()
    expect(page.locator("#flash")).to_have_text("Verified.")
    expect(page.locator("#verify-card")).to_be_hidden()

    add = page.locator("#add-patient")
    add.locator("[name=name]").fill("Kavya Rao")
    add.locator("[name=age]").fill("31")
    add.locator("[name=blood_group]").select_option("B+")
    add.locator("button[type=submit]").click()
    expect(page.locator("#patients")).to_contain_text("B+")
    book = page.locator("#book")
    book.locator("[name=queue]").select_option(clinic.by_date)
    book.locator("[name=date]").fill(clinic.today())
    book.locator("button[type=submit]").click()
    expect(page.locator("#appointments")).to_contain_text("booked")
    consent = page.locator("#consent")
    expect(consent.locator("[name=notifications]")).to_be_checked()

    desk = portal.staff("reception")
    with portal.db() as db:
        appt_id = db.execute("SELECT id FROM appointments").fetchone()[0]
    label = desk.post(f"/appointments/{appt_id}/check-in").json()["ticket"]["label"]
    page.reload()
    tickets = page.locator("#tickets")
    expect(tickets).to_contain_text(label)
    expect(tickets).to_contain_text("position 1")
    desk.post(f"/queues/{clinic.by_date}/next", json={"counter": "2"})
    expect(tickets).to_contain_text("called")
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "account-portal")
    watched.assert_clean()
