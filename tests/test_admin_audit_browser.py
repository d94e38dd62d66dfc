"""The admin page's audit log in Chromium against a real ``qtraq-live serve``: entries newest
first, filters, in English and Hindi at every target size without clipping or sideways scroll."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext

from qtraq_live.record import access
from qtraq_live.runtime.embedded_redis import EmbeddedRedis
from tests.support_browser import browser, open_page, screenshot  # noqa: F401
from tests.support_serve import ServeProcess, seeded_serve, seeding, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PASSWORD = "correct-horse-battery"
DESK = "front-desk-reception-counter-number-1"  # a long username: the table must wrap, not clip
SIZES = [(1920, 1080), (1366, 768), (1080, 1920), (360, 740)]


@dataclass
class Site:
    srv: ServeProcess
    desk: httpx.Client
    admin: httpx.Client
    desk_id: int


async def _seed(data_dir: Path, redis_url: str) -> tuple[str, str, int]:
    async with seeding(data_dir, redis_url) as (store, r, engine):
        await engine.create_clinic("city", "City Clinic", timezone="Asia/Kolkata")
        await engine.create_queue("city", "gp", "General Physician", "A")
        desk_id = await access.create_user(store, r, DESK, PASSWORD, "reception")
        await access.create_user(store, r, "boss", PASSWORD, "admin")
        return (await access.create_api_token(store, r, DESK), await access.create_api_token(store, r, "boss"),
                desk_id)


@pytest.fixture(scope="module")
def site(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data = tmp_path_factory.mktemp("audit") / "data"
    data.mkdir()
    with seeded_serve(redis_server.url, data, _seed) as (srv, (desk_token, admin_token, desk_id)):
        clients = [httpx.Client(base_url=f"{srv.url}/api/v1", headers={"Authorization": f"Bearer {t}"}, timeout=10)
                   for t in (desk_token, admin_token)]
        try:
            yield Site(srv, clients[0], clients[1], desk_id)
        finally:
            for c in clients:
                c.close()


def test_the_audit_log_filters_and_fits_every_screen(browser: BrowserContext, site: Site) -> None:
    for _ in range(3):
        assert site.desk.post("/queues/gp/tickets", json={"name": "Asha"}).status_code == 201
    assert site.desk.post("/queues/gp/next", json={"counter": "2"}).status_code == 200
    assert site.desk.post("/queues/gp/pause").status_code == 200
    wait_until(lambda: len(site.admin.get("/audit", params={"action": "queue."}).json()["entries"]) == 2, 10,
               "the entries to reach the record")
    r = browser.request.post(f"{site.srv.url}/api/v1/auth/login", data={"username": "boss", "password": PASSWORD})
    assert r.ok, r.text()
    for lang in ("en", "hi"):
        for width, height in SIZES:
            watched = open_page(browser, f"{site.srv.url}/admin?lang={lang}#audit", width, height)
            page = watched.page
            page.wait_for_function("() => document.querySelectorAll('#audit-list tr').length >= 5")
            actions = page.locator("#audit-list tr td:nth-child(3)").all_inner_texts()
            assert actions[0] == "auth.login"  # the admin's own sign-in: newest first
            assert actions.index("queue.pause") < actions.index("queue.next") < actions.index("ticket.issue")
            paused = page.locator("#audit-list tr").nth(actions.index("queue.pause"))
            assert DESK in paused.inner_text()  # the actor by username, not "user:N"
            page.locator("#audit").scroll_into_view_if_needed()
            # this section: nothing past the viewport's right edge, nothing cut off inside its box
            fits = page.evaluate("""() => {
                const all = [...document.querySelectorAll('#audit *')].filter(e => e.offsetParent !== null);
                const wide = all.filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
                    .map(e => e.tagName + '#' + e.id);
                const clipped = all.filter(e => ['TD', 'TH', 'LABEL', 'BUTTON', 'P'].includes(e.tagName)
                    && e.scrollWidth > e.clientWidth + 1).map(e => e.tagName + '#' + e.id);
                return {wide, clipped};
            }""")
            assert fits == {"wide": [], "clipped": []}, (lang, width, fits)
            screenshot(page, f"admin-audit-{lang}-{width}x{height}")
            watched.assert_clean()
            page.close()

    watched = open_page(browser, f"{site.srv.url}/admin?lang=en#audit", 1366, 768)  # English after the Hindi pass
    page = watched.page
    page.wait_for_function("() => document.querySelectorAll('#au-actor option').length >= 3")
    page.select_option("#au-actor", f"user:{site.desk_id}")
    page.fill("#au-action", "ticket.")
    page.click("#audit-form button[type=submit]")
    page.wait_for_function("() => document.querySelectorAll('#audit-list tr').length === 3")
    actions = page.locator("#audit-list tr td:nth-child(3)").all_inner_texts()
    assert actions == ["ticket.issue"] * 3
    page.fill("#au-from", "2020-01-01")
    page.fill("#au-to", "2020-01-02")
    page.click("#audit-form button[type=submit]")
    page.wait_for_function("() => document.querySelectorAll('#audit-list tr').length === 1")
    assert page.locator("#audit-list td").first.inner_text() == "No entries for these filters."
    assert "Asha" not in page.content()
    watched.assert_clean()
    page.close()
