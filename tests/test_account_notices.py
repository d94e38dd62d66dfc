"""Notices to accounts against the running server: an admin's notice reaches only accounts that
consented to its purpose, only their verified contacts, counted before sending and audited;
security notices (new device, password change, erasure) need no consent; the optional postal
address is kept, exported and erased."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from qtraq_live.config import Settings
from tests.support_accounts import (PASSWORD, Patient, codes_sent, fast_account_hashes, notice_requests,  # noqa: F401
                                    portal, register, verify, with_channels)
from tests.support_http import LiveServer, error_of, live_server, use_fast_hashes
from tests.support_notify import Sink, await_until, sink  # noqa: F401

PHONE_UA = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36"
DESKTOP_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"


def verified(live: LiveServer, redis_url: str, channels: tuple[str, ...] = ("email",), **consent: bool) -> Patient:
    p = register(live, consent={"notifications": False, "analytics": False, "marketing": False, **consent})
    for ch in channels:
        to = p.email if ch == "email" else p.mobile
        assert verify(p, ch, codes_sent(redis_url, to)[-1]).status_code == 200
    return p


def sent(redis_url: str, kind: str) -> list[dict[str, Any]]:
    return [r for r in notice_requests(redis_url) if r.get("kind") == kind]


def test_an_admin_notice_goes_only_to_accounts_that_consented_to_its_purpose(portal: LiveServer,  # noqa: F811
                                                                           redis_url: str) -> None:
    service = verified(portal, redis_url, notifications=True)
    news = verified(portal, redis_url, ("email", "mobile"), marketing=True)
    nothing = verified(portal, redis_url)
    unverified = register(portal, consent={"notifications": True, "analytics": True, "marketing": True})
    admin = portal.bearer("admin")
    body = {"purpose": "maintenance", "channels": ["email", "sms"], "subject": "Closed on Sunday",
            "text": "The clinic is closed on Sunday.", "dry_run": True}
    preview = admin.post("/admin/notices", json=body)
    assert preview.status_code == 200 and preview.json() == {
        "recipients": 1, "dry_run": True, "preview": {"subject": "Closed on Sunday", "text": body["text"]}}
    assert admin.post("/admin/notices", json={**body, "purpose": "updates"}).json()["recipients"] == 1
    assert admin.post("/admin/notices", json={**body, "purpose": "security"}).json()["recipients"] == 3
    assert sent(redis_url, "admin_notice") == []  # a preview sends nothing

    r = admin.post("/admin/notices", json={**body, "dry_run": False})
    assert r.status_code == 201 and r.json()["recipients"] == 1
    assert [(n["to"], n["channel"]) for n in sent(redis_url, "admin_notice")] == [(service.email, "email")]
    r = admin.post("/admin/notices", json={**body, "purpose": "updates", "channels": ["sms"], "dry_run": False})
    assert [(n["to"], n["channel"]) for n in sent(redis_url, "admin_notice")][1:] == [(news.mobile, "sms")]
    everyone = {n["to"] for n in sent(redis_url, "admin_notice")}
    assert nothing.email not in everyone and unverified.email not in everyone and unverified.mobile not in everyone
    with portal.db() as db:
        audit = [tuple(x) for x in db.execute("SELECT action, target FROM audit_log WHERE action = 'notice.send'")]
        assert audit == [("notice.send", "notice:1"), ("notice.send", "notice:2")]


def test_notice_bodies_are_checked_and_cannot_forge_headers(portal: LiveServer) -> None:  # noqa: F811
    admin = portal.bearer("admin")
    good = {"purpose": "maintenance", "channels": ["email"], "subject": "Hello", "text": "Body", "dry_run": True}
    for bad in ({"subject": "Hi\r\nBcc: everyone@example.com"}, {"subject": "   "}, {"text": ""},
                {"purpose": "marketing"}, {"channels": []}, {"channels": ["fax"]}, {"subject": "x" * 121},
                {"extra": 1}):
        assert error_of(admin.post("/admin/notices", json={**good, **bad}))[0] == 422, bad
    assert error_of(portal.bearer("reception").post("/admin/notices", json=good))[0] == 403
    assert error_of(portal.client().post("/admin/notices", json=good))[0] == 401


@pytest.fixture
def sms_portal(settings: Settings, sink: Sink, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:  # noqa: F811
    """The portal with its SMS channel pointed at the local HTTP sink (the erasure notice goes
    straight to the provider, so the test watches the provider)."""
    use_fast_hashes(monkeypatch)
    fast_account_hashes(monkeypatch)
    with live_server(with_channels(settings).replace(notify__sms=sink.url())) as live:
        yield live


async def test_security_notices_need_no_consent_and_cannot_be_switched_off(sms_portal: LiveServer, sink: Sink,  # noqa: F811
                                                                           redis_url: str) -> None:
    mobile = await asyncio.to_thread(_security_notices, sms_portal, redis_url)
    texts = await await_until(lambda: [r["message"] for r in sink.to(mobile)], "the erasure SMS")
    assert texts[0].startswith("As you asked, your qtraq account")
    assert sent(redis_url, "security_erasure") == []  # never through Redis: the address is gone from there


def _security_notices(portal: LiveServer, redis_url: str) -> str:  # noqa: F811
    """Login, password change and erasure of an account that consented to nothing; returns the
    mobile number the erasure SMS goes to."""
    p = verified(portal, redis_url, ("email", "mobile"))  # consented to nothing
    assert sent(redis_url, "security_login") == []  # registering is not a new-device login
    login = {"email": p.email, "password": PASSWORD}
    assert portal.client(headers={"User-Agent": PHONE_UA}).post("/auth/account-login", json=login).status_code == 200
    assert sent(redis_url, "security_login") == []  # the device it registered from
    updated = PHONE_UA.replace("Chrome/120", "Chrome/121")
    assert portal.client(headers={"User-Agent": updated}).post("/auth/account-login", json=login).status_code == 200
    assert sent(redis_url, "security_login") == []  # a browser update is not a new device
    assert portal.client(headers={"User-Agent": DESKTOP_UA}).post("/auth/account-login", json=login).status_code == 200
    notice, by_sms = sent(redis_url, "security_login")
    assert notice["to"] == p.email and by_sms["to"] == p.mobile and notice["context"]["device"].startswith("Firefox")
    assert "Windows" in notice["context"]["device"]
    assert notice["subject"] == f"account:{p.id}:security"
    r = p.client.patch("/me", json={"password": "another long passphrase", "current_password": PASSWORD})
    assert r.status_code == 200, r.text
    assert [n["to"] for n in sent(redis_url, "security_password")] == [p.email, p.mobile]
    assert p.client.delete("/me").status_code == 204
    return p.mobile


def test_the_postal_address_is_optional_exported_and_erased(portal: LiveServer) -> None:  # noqa: F811
    p = register(portal, address="12 MG Road, Pune 411001")
    assert p.get("/me").json()["address"] == "12 MG Road, Pune 411001"
    assert p.get("/me/export").json()["account"]["address"] == "12 MG Road, Pune 411001"
    assert p.client.patch("/me", json={"address": "  4 Park Street, Kolkata  "}).json()["address"] == \
        "4 Park Street, Kolkata"
    assert error_of(p.client.patch("/me", json={"address": "x" * 301}))[0] == 422
    assert error_of(p.client.patch("/me", json={"religion": "any"})) == (422, "unknown_field")
    assert p.client.patch("/me", json={"address": None}).json()["address"] is None
    p.client.patch("/me", json={"address": "4 Park Street"})
    assert p.client.delete("/me").status_code == 204
    with portal.db() as db:
        assert db.execute("SELECT count(*) FROM account_addresses").fetchone()[0] == 0
