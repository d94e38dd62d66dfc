"""The demo as a first impression: ``demo --host`` with a readable banner (logs in a file), the
demo outbox that shows verification codes (used in Chromium to verify an account), the QR
poster that encodes the configured public URL, and a simulator that never calls at the
counter of the reception URL the demo prints (tests/test_frontdesk_api.py)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext

from qtraq_live.display.pages import _qr_svg
from qtraq_live.runtime import demo
from tests.support_browser import browser, open_page, screenshot  # noqa: F401
from tests.support_notify import free_port
from tests.support_http import LiveServer, StartServer, start_server  # noqa: F401
from tests.support_serve import ServeProcess, wait_until

BANNER_DONE = "Press Ctrl+C"


@pytest.mark.browser
@pytest.mark.slow
def test_demo_on_every_interface_with_a_readable_banner_and_an_outbox(browser: BrowserContext,  # noqa: F811
                                                                     tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    with ServeProcess(data, command="demo", args=["--host", "0.0.0.0", "--port", str(port)]) as srv:
        wait_until(lambda: BANNER_DONE in srv.log_text(), 20, "the demo's banner")
        out = srv.log_text()
        # Readable: the banner and nothing else (the logs went to the file it names).
        assert not [line for line in out.splitlines() if line.startswith("{")], out
        log_file = data.resolve() / "demo.log"
        assert f"Logs go to {log_file}" in out
        wait_until(lambda: log_file.exists() and log_file.stat().st_size > 0, 10, "log lines in the file")
        lan = demo.lan_address()
        base = f"http://{lan}:{port}" if lan else srv.url
        assert f"{base}/reception?queue=gp&counter={demo.RECEPTION_COUNTER}" in out
        assert f"{base}/demo/outbox" in out and f"{base}/" in out
        # The QR poster encodes the URL phones can reach.
        poster = httpx.get(f"{srv.url}/join/gp/qr").text
        assert f"{base}/join/gp" in poster

        # A newcomer registers in the portal, finds the code in the demo's outbox, verifies.
        page = open_page(browser, f"{srv.url}/account", 390, 844).page
        page.fill("#register [name=name]", "Asha Verma")
        page.fill("#register [name=email]", "asha.demo@mail.example")
        page.fill("#register [name=mobile]", "98765 43210")
        page.fill("#register [name=password]", "a long unusual passphrase")
        page.click("#register button[type=submit]")
        page.wait_for_selector("#verify-card:not([hidden])")
        assert page.locator("#verify-card a[href='/demo/outbox']").count() == 1
        assert "We sent" not in page.inner_text("#verify-card")
        outbox = open_page(browser, f"{srv.url}/demo/outbox", 390, 844).page
        assert "DEMO" in outbox.inner_text(".outbox-banner")
        line = outbox.locator(".outbox li", has_text="a•••@mail.example").first.inner_text()
        assert "+91•••••43210" in outbox.inner_text(".outbox")  # the mobile's code too, masked
        screenshot(outbox, "demo-outbox-390x844")
        code = re.match(r"\d{6}", line)
        assert code is not None, line
        page.select_option("#verify [name=channel]", "email")
        page.fill("#verify [name=code]", code.group(0))
        page.click("#verify button[type=submit]")
        page.wait_for_function("() => !document.getElementById('flash').hidden")
        page.click("#resend")  # the mobile's code again: too soon, and it says when
        page.wait_for_function("() => !document.getElementById('failure').hidden")
        assert "seconds" in page.inner_text("#failure")
        page.context.clear_cookies()


def test_the_outbox_is_the_demos_only(start_server: StartServer) -> None:  # noqa: F811
    plain = start_server()
    assert httpx.get(f"{plain.url}/demo/outbox").status_code == 404
    production = start_server(env="production", secret_key="s" * 40, demo__outbox=True)
    assert httpx.get(f"{production.url}/demo/outbox").status_code == 404


def test_the_qr_poster_encodes_the_configured_public_url(start_server: StartServer) -> None:  # noqa: F811
    live: LiveServer = start_server(server__public_url="https://clinic.example")
    live.clinic("c1", ("gp",), self_checkin=True)
    poster = httpx.get(f"{live.url}/join/gp/qr").text
    expected = _qr_svg("https://clinic.example/join/gp", "x").split("<path", 1)[1].split("/>", 1)[0]
    assert expected in poster and "https://clinic.example/join/gp" in poster
