"""Reception's shared-profiles panel in Chromium against a real ``qtraq-live serve`` and the
local fake ABDM gateway: a share appears with its token, the waiting list marks the ticket
"ABHA", one click registers it; at 1920×1080, 1366×768, 1080×1920 and 360×740, in English and
Hindi, with a long name: nothing clipped, no sideways scroll, no console error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page

from tests.fake_abdm import CLIENT_ID, CLIENT_SECRET, HIP_ID, FakeGateway, sample
from tests.support_browser import browser, open_page, screenshot  # noqa: F401
from tests.support_serve import ServeProcess, clean_env

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PASSWORD = "correct-horse-battery"
LONG_NAME = "Venkata Subrahmanya Lakshmi Narasimha Chakravarthy Ramanujan Iyengar Sharma"
CONFIG = """
[[clinics]]
id = "city"
name = "City Clinic"
timezone = "Asia/Kolkata"

  [[clinics.queues]]
  id = "gp"
  name = "General Physician"
  prefix = "A"

[[staff]]
username = "desk"
role = "reception"
password_env = "DESK_PASSWORD"
"""
VIEWPORTS = ((1920, 1080), (1366, 768), (1080, 1920), (360, 740))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, FakeGateway]]:
    root = tmp_path_factory.mktemp("abdm-pages")
    (root / "qtraq.toml").write_text(CONFIG)
    with FakeGateway() as gateway:
        env = clean_env(root / "data", QTRAQ_CONFIG=str(root / "qtraq.toml"), DESK_PASSWORD=PASSWORD,
                        QTRAQ_ABDM_ENABLED="true", QTRAQ_ABDM_GATEWAY_URL=gateway.url,
                        QTRAQ_ABDM_CLIENT_ID=CLIENT_ID, QTRAQ_ABDM_CLIENT_SECRET=CLIENT_SECRET,
                        QTRAQ_ABDM_HIP_ID=HIP_ID, QTRAQ_ABDM_COUNTERS="6=gp")
        with ServeProcess(root / "data", env=env) as srv:
            for i, (name, abha) in enumerate(((LONG_NAME, "venkata.subrahmanya.lakshmi.narasimha@sbx"),
                                              ("Asha Rao", "asha.rao@sbx"))):
                r = gateway.share(srv.url, sample(name=name, abhaAddress=abha, yearOfBirth=str(1960 + 20 * i)))
                assert r.status_code == 202, r.text
            yield srv, gateway


def fits(page: Page) -> None:
    """No sideways scroll, and no panel entry wider than its box."""
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    assert page.evaluate("""[...document.querySelectorAll('.abdm-item, .abdm-item *')]
        .every(el => el.scrollWidth <= el.clientWidth + 1)""")


def test_the_panel_lists_shares_and_registers_one_in_a_click(browser: BrowserContext,  # noqa: F811
                                                            site: tuple[ServeProcess, FakeGateway]) -> None:
    srv, _ = site
    r = browser.request.post(f"{srv.url}/api/v1/auth/login", data={"username": "desk", "password": PASSWORD})
    assert r.ok, r.text()
    for lang in ("en", "hi"):
        for width, height in VIEWPORTS:
            w = open_page(browser, f"{srv.url}/reception?queue=gp&counter=1&lang={lang}", width, height)
            w.page.wait_for_selector("#abdm-panel:not([hidden]) .abdm-item")
            assert w.page.locator(".abdm-item").count() == 2
            assert LONG_NAME in w.page.inner_text("#abdm-list")
            title = w.page.inner_text("#abdm-h")
            assert ("ABHA से साझा" if lang == "hi" else "Shared via ABHA") in title
            w.page.wait_for_selector("#r-waiting tr")
            assert "ABHA" in w.page.inner_text("#r-waiting")  # the ticket's source, in the waiting list
            fits(w.page)
            w.page.locator("#abdm-panel").scroll_into_view_if_needed()
            screenshot(w.page, f"reception-abdm-{lang}-{width}x{height}")
            w.assert_clean()
            w.page.close()

    w = open_page(browser, f"{srv.url}/reception?queue=gp&counter=1&lang=en", 1366, 768)
    w.page.wait_for_selector(".abdm-item")
    w.page.get_by_role("button", name="Register Asha Rao (A-002)").click()
    w.page.wait_for_function("() => document.querySelectorAll('.abdm-item').length === 1")
    assert "Asha Rao (A-002) registered: patient record" in w.page.inner_text("#abdm-msg")
    w.assert_clean()
    w.page.close()
    with httpx.Client(base_url=f"{srv.url}/api/v1") as desk:
        desk.post("/auth/login", json={"username": "desk", "password": PASSWORD})
        assert [p["name"] for p in desk.get("/clinics/city/abdm/profiles").json()["profiles"]] == [LONG_NAME]


def test_the_panel_stays_hidden_without_scan_and_share(browser: BrowserContext,  # noqa: F811
                                                       tmp_path: Path) -> None:
    (tmp_path / "qtraq.toml").write_text(CONFIG)
    env = clean_env(tmp_path / "data", QTRAQ_CONFIG=str(tmp_path / "qtraq.toml"), DESK_PASSWORD=PASSWORD)
    with ServeProcess(tmp_path / "data", env=env) as srv:
        r = browser.request.post(f"{srv.url}/api/v1/auth/login", data={"username": "desk", "password": PASSWORD})
        assert r.ok
        w = open_page(browser, f"{srv.url}/reception?queue=gp&counter=1", 1366, 768)
        w.page.wait_for_function("() => document.body.dataset.socket === 'open'")
        w.page.wait_for_load_state("networkidle")
        assert w.page.locator("#abdm-panel").is_hidden()
        w.assert_clean()
