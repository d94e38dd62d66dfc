"""The waiting-room TV in Chromium against a real ``qtraq-live serve``: a hospital-sized board
(eight queues, six counters busy on each, long names, a long clinic name) with no text clipped
at 1920×1080, 1366×768, 1280×720 and portrait 1080×1920 (paged when it must be); ``?queues=``;
names masked by default; a counter's call clears after the idle time; a frozen board says so."""

from __future__ import annotations

import pytest
from playwright.sync_api import BrowserContext

from tests.support_browser import Watched, browser, open_page, screenshot  # noqa: F401
from tests.support_frontdesk import (FrontdeskSite, clipped_text, frontdesk_site,  # noqa: F401
                                     HOSPITAL_QUEUES, LONG_NAMES)
from tests.support_serve import ServeProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SIZES = [(1920, 1080), (1366, 768), (1280, 720), (1080, 1920)]


def tv(context: BrowserContext, site: FrontdeskSite, clinic: str, width: int, height: int, query: str = "") -> Watched:
    d = open_page(context, f"{site.url}/display/{clinic}?key={site.keys[clinic]}{query}", width, height)
    d.page.wait_for_selector(".d-queue")
    d.page.wait_for_function("() => document.body.dataset.socket === 'open'")
    return d


@pytest.mark.parametrize(("width", "height"), SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_a_hospital_board_clips_nothing(browser: BrowserContext, frontdesk_site: FrontdeskSite,
                                        width: int, height: int) -> None:
    frontdesk_site.fill_hospital()
    d = tv(browser, frontdesk_site, "hosp", width, height)
    page = d.page
    page.wait_for_function("() => document.querySelectorAll('.d-serving li').length >= 6")
    pages = int(page.get_attribute("#queues", "data-pages") or "1")
    seen: set[str] = set()
    for i in range(pages):
        page.wait_for_function(f"() => document.getElementById('queues').dataset.page === '{i}'")
        if i == 0:
            screenshot(page, f"tv-hospital-{width}x{height}")
        assert clipped_text(page) == [], f"clipped at {width}x{height}, page {i + 1}/{pages}"
        shown = page.eval_on_selector_all(".d-queue:not([hidden])", "cards => cards.map(c => c.dataset.queue)")
        seen.update(shown)
        # Every busy counter of a shown queue is on screen, with the patient's whole name.
        assert page.locator(".d-queue:not([hidden]) .d-serving li").count() == 6 * len(shown)
        page.keyboard.press("ArrowRight")
    assert seen == {q for q, _, _ in HOSPITAL_QUEUES}, "every queue is shown on some page"
    assert page.locator(".d-name", has_text=LONG_NAMES[0]).count() >= 1
    d.assert_clean()
    page.close()


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_one_to_eight_queues_fit_every_size_in_hindi(browser: BrowserContext, frontdesk_site: FrontdeskSite,
                                                    n: int) -> None:
    frontdesk_site.fill_hospital()
    chosen = ",".join(q for q, _, _ in HOSPITAL_QUEUES[:n])
    for width, height in SIZES:
        d = tv(browser, frontdesk_site, "hosp", width, height, f"&queues={chosen}&lang=hi")
        page = d.page
        page.wait_for_function("() => document.querySelectorAll('.d-serving li').length >= 6")
        pages = int(page.get_attribute("#queues", "data-pages") or "1")
        for i in range(pages):
            page.wait_for_function(f"() => document.getElementById('queues').dataset.page === '{i}'")
            assert clipped_text(page) == [], f"{n} queues clipped at {width}x{height}, page {i + 1}/{pages}"
            page.keyboard.press("ArrowRight")
        if n == 5 and (width, height) == (1080, 1920):
            screenshot(page, "tv-portrait-1080x1920")
        d.assert_clean()
        page.close()


def test_queues_param_chooses_what_a_screen_shows(browser: BrowserContext, frontdesk_site: FrontdeskSite) -> None:
    frontdesk_site.fill_hospital()
    d = tv(browser, frontdesk_site, "hosp", 1920, 1080, "&queues=lab,cardio,nope")
    page = d.page
    assert page.eval_on_selector_all(".d-queue", "cards => cards.map(c => c.dataset.queue)") == ["lab", "cardio"]
    recent = page.eval_on_selector_all("#recent strong", "bs => bs.map(b => b.textContent)")
    assert recent and all(label[0] in "LA" for label in recent), recent  # the recent calls of these queues only
    ws_path = page.evaluate("() => window.QT.data.ws_path")
    assert ws_path.endswith("&queues=lab,cardio")
    assert clipped_text(page) == []
    d.assert_clean()
    page.close()


def test_names_are_masked_unless_the_clinic_turns_it_off(browser: BrowserContext,
                                                         frontdesk_site: FrontdeskSite) -> None:
    frontdesk_site.reset()
    frontdesk_site.issue("gp", "Ramesh Kumar")
    frontdesk_site.api.post("/queues/gp/next", json={"counter": "2"})
    d = tv(browser, frontdesk_site, "city", 1366, 768)
    d.page.wait_for_selector(".d-name")
    assert d.page.text_content(".d-name") == "R. K."
    assert "Ramesh" not in (d.page.text_content("body") or "")
    d.assert_clean()
    d.page.close()


def test_a_counters_call_clears_after_the_idle_time(browser: BrowserContext, frontdesk_site: FrontdeskSite) -> None:
    frontdesk_site.reset()
    frontdesk_site.issue("gp")
    called = frontdesk_site.api.post("/queues/gp/next", json={"counter": "4"}).json()["called"]
    page = browser.new_page()
    page.clock.install()
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{frontdesk_site.url}/display/city?key={frontdesk_site.keys['city']}")
    card = page.locator(".d-queue[data-queue=gp]")
    card.locator(".d-label", has_text=called["label"]).wait_for()
    page.clock.fast_forward("29:00")
    assert card.locator(".d-label", has_text=called["label"]).count() == 1
    page.clock.fast_forward("02:00")  # the default is 30 minutes
    card.locator(".d-label", has_text=called["label"]).wait_for(state="detached")
    page.close()


def test_a_revoked_key_freezes_the_board_visibly(browser: BrowserContext, frontdesk_site: FrontdeskSite) -> None:
    r = frontdesk_site.api.post("/admin/clinics/city/display-keys", json={"label": "to revoke"})
    assert r.status_code == 201, r.text
    key = r.json()
    d = open_page(browser, f"{frontdesk_site.url}/display/city?key={key['key']}", 1920, 1080)
    d.page.wait_for_function("() => document.body.dataset.socket === 'open'")
    assert d.page.is_hidden("#frozen")
    assert frontdesk_site.api.delete(f"/admin/clinics/city/display-keys/{key['id']}").status_code == 200
    d.page.wait_for_selector("#frozen:not([hidden])")
    assert "no longer valid" in (d.page.text_content("#frozen") or "")
    assert d.page.get_attribute("body", "data-frozen") == "1"
    screenshot(d.page, "tv-frozen-1920x1080")
    d.page.close()


def test_a_board_whose_server_is_gone_says_so(browser: BrowserContext, frontdesk_site: FrontdeskSite,
                                             tmp_path_factory: pytest.TempPathFactory) -> None:
    srv = ServeProcess(tmp_path_factory.mktemp("gone") / "data",
                       env={"QTRAQ_REDIS_URL": frontdesk_site.srv.env["QTRAQ_REDIS_URL"]})
    srv.start()
    try:
        page = browser.new_page()
        page.clock.install()
        page.goto(f"{srv.url}/display/city?key={frontdesk_site.keys['city']}")
        page.wait_for_function("() => document.body.dataset.socket === 'open'")
    finally:
        srv.stop()
    page.wait_for_function("() => document.body.dataset.socket !== 'open'")
    page.clock.fast_forward("00:10")
    assert page.is_hidden("#frozen"), "a short drop only shows the small badge"
    page.clock.fast_forward("00:15")
    page.wait_for_selector("#frozen:not([hidden])")
    assert "not updating" in (page.text_content("#frozen") or "")
    page.close()
