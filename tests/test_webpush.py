"""Web Push end to end: a running ``serve`` hands out its VAPID key, takes a ticket's browser
subscription, and its RQ workers push "ahead" and "called" to a local push service; the test
decrypts each message (RFC 8291 aes128gcm) with the subscription's own keys and checks the
VAPID signature. A subscription the push service calls gone (410) is dropped and the notice
goes by SMS instead."""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import http_ece
import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from qtraq_live.api.push import _check_endpoint
from qtraq_live.errors import Conflict, Invalid
from qtraq_live.queue_engine import QueueEngine
from tests.support_http import error_of
from tests.support_messaging import admin_client, issue, messaging_server, wait_for_notifier
from tests.support_notify import Sink, sink, wait_until  # noqa: F401

PATIENT = "+919812340002"


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class PushService:
    """A local push service: records every POST, answers ``status`` (201, or 410 for gone)."""

    port: int = 0
    status: int = 201
    received: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def endpoint(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/push/{name}"

    def messages(self, code: int = 201) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.received if m["answered"] == code]


@pytest.fixture
def push_service() -> Iterator[PushService]:
    svc = PushService()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with svc.lock:
                svc.received.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body,
                                     "answered": svc.status})
            self.send_response(svc.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    svc.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield svc
    server.shutdown()
    server.server_close()


@dataclass
class Browser:
    """The receiving side of a subscription: its ECDH key pair and auth secret (RFC 8291)."""

    private: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    def subscription(self, endpoint: str) -> dict[str, Any]:
        public = self.private.public_key().public_bytes(serialization.Encoding.X962,
                                                        serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": endpoint, "expirationTime": None, "keys": {"p256dh": b64e(public), "auth": b64e(self.auth)}}

    def decrypt(self, body: bytes) -> dict[str, Any]:
        plain = http_ece.decrypt(body, private_key=self.private, auth_secret=self.auth, version="aes128gcm")
        out: dict[str, Any] = json.loads(plain)
        return out


def check_vapid(headers: dict[str, str], public_key: str, audience: str) -> None:
    """``Authorization: vapid t=<JWT>, k=<key>``: the server's key, a valid ES256 signature."""
    scheme, _, params = headers["authorization"].partition(" ")
    fields = dict(p.strip().split("=", 1) for p in params.split(","))
    assert scheme == "vapid" and fields["k"] == public_key
    head, claims, sig = fields["t"].split(".")
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64d(public_key))
    raw = b64d(sig)
    key.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
               f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    payload = json.loads(b64d(claims))
    assert payload["aud"] == audience and payload["sub"].startswith(("mailto:", "https:"))


def test_push_subscription_gets_encrypted_notices_and_falls_back_to_sms_when_gone(
        tmp_path: Path, sink: Sink, push_service: PushService) -> None:
    with messaging_server(tmp_path, sink) as srv, admin_client(srv.url) as admin:
        key = httpx.get(f"{srv.url}/api/v1/push/key").json()["public_key"]
        assert len(b64d(key)) == 65 and b64d(key)[0] == 4  # an uncompressed P-256 point
        vapid_file = tmp_path / "data" / "vapid.json"
        assert stat.S_IMODE(vapid_file.stat().st_mode) == 0o600 and key in vapid_file.read_text()

        wait_for_notifier(srv)
        issue(admin)
        issue(admin)
        mine = issue(admin, mobile=PATIENT)  # a mobile, but no notices asked for at the desk
        ticket, token = mine["ticket"], mine["track_url"].rsplit("/", 1)[1]
        browser = Browser()
        url = f"{srv.url}/api/v1/t/{token}/push"

        # Bad subscriptions are refused, naming the field; nothing is stored.
        bad = browser.subscription("http://push.example.com/x")  # not https, not loopback
        assert error_of(httpx.post(url, json=bad)) == (422, "invalid_field")
        assert error_of(httpx.post(url, json={"endpoint": push_service.endpoint("a")}))[0] == 422
        assert error_of(httpx.post(url, json={**browser.subscription(push_service.endpoint("a")), "x": 1}))[0] == 422
        short = browser.subscription(push_service.endpoint("a"))
        short["keys"]["p256dh"] = "AAAA"
        assert error_of(httpx.post(url, json=short))[0] == 422
        assert error_of(httpx.post(f"{srv.url}/api/v1/t/{'x' * 32}/push",
                                   json=browser.subscription(push_service.endpoint("a")))) == (404, "not_found")

        r = httpx.post(url, json=browser.subscription(push_service.endpoint("mine")))
        assert r.status_code == 201 and r.json() == {"subscribed": True}
        shown = admin.get(f"/tickets/{ticket['id']}").json()
        assert shown.get("ticket", shown)["notify"] is True  # subscribing asked for notices

        # Two ahead of a queue that tells at 3: "ahead" comes by push, encrypted for this browser.
        first = wait_until(lambda: push_service.messages(), "the ahead push")[0]
        assert first["path"] == "/push/mine" and first["headers"]["content-encoding"] == "aes128gcm"
        assert int(first["headers"]["ttl"]) > 0
        check_vapid(first["headers"], key, f"http://127.0.0.1:{push_service.port}")
        ahead = browser.decrypt(first["body"])
        assert ahead["tag"] == "ahead" and "2 ahead of you" in ahead["body"] and ahead["url"] == f"/t/{token}"
        with pytest.raises(Exception):  # another browser's keys cannot read it
            Browser().decrypt(first["body"])

        for counter in ("1", "2"):
            admin.post("/queues/gp/next", json={"counter": counter})
        admin.post("/queues/gp/next", json={"counter": "2"})
        called = wait_until(lambda: [m for m in (browser.decrypt(x["body"]) for x in push_service.messages())
                                     if m["tag"] == "called"], "the called push")[0]
        assert "please come to General, counter 2" in called["body"]
        assert not sink.to(PATIENT)  # Web Push first: no SMS while the subscription works

        # The patient revokes permission: the push service answers 410; the recall goes by SMS.
        push_service.status = 410
        assert admin.post(f"/tickets/{ticket['id']}/recall").status_code == 200
        sms = wait_until(lambda: sink.to(PATIENT), "the recall by SMS")
        assert "called again" in sms[0]["message"]
        assert len(push_service.messages(410)) == 1
    log = srv.log_text()
    assert "push subscription gone" in log and token not in log and "9812340002" not in log


@pytest.mark.parametrize(("url", "production", "ok"), [
    ("https://fcm.googleapis.com/fcm/send/abc", True, True),
    ("https://updates.push.services.mozilla.com/wpush/v2/abc", True, True),
    ("http://127.0.0.1:9000/push", False, True),  # a local test push service
    ("http://127.0.0.1:9000/push", True, False),  # never in production
    ("http://169.254.169.254/latest/meta-data", False, False),  # no plain http to anything else
    ("http://redis.internal:6379/", False, False),
    ("ftp://push.example.com/x", False, False),
    ("https:///nohost", True, False),
])
def test_push_endpoints_must_be_push_services(url: str, production: bool, ok: bool) -> None:
    if ok:
        _check_endpoint(url, production)
    else:
        with pytest.raises(Invalid, match="endpoint"):
            _check_endpoint(url, production)


async def test_notify_on_turns_notices_on_once_with_an_event(engine: QueueEngine) -> None:
    await engine.create_clinic("c1", "C", timezone="UTC")
    await engine.create_queue("c1", "gp", "GP", "A")
    t = await engine.issue("gp")
    assert t["notify"] is False
    assert await engine.notify_on(t["id"]) is True
    assert (await engine.ticket(t["id"]))["notify"] is True
    v = await engine.version("c1")
    assert await engine.notify_on(t["id"]) is False and await engine.version("c1") == v  # no change, no event
    events = await engine.events_since("c1", v - 1)
    assert events is not None and events[-1]["type"] == "notify_on" and events[-1]["tickets"][0]["notify"] is True
    await engine.cancel(t["id"])
    with pytest.raises(Conflict):
        await engine.notify_on(t["id"])
