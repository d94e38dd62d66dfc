"""End to end, with every process real: ``qtraq-live demo`` (embedded Redis, duties, RQ worker
processes, uvicorn) as the bridge and the local fake ABDM gateway. The gateway posts a share →
202 → the ticket is in the live queue → the on-share reply reaches the gateway with that ticket's
token number and the share's requestId → the TV and reception sockets show the ticket."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import TIMEOUT_FACTOR
from support_serve import ServeProcess, clean_env, wait_until
from websockets.sync.client import ClientConnection, connect

from tests.fake_abdm import CLIENT_ID, CLIENT_SECRET, HIP_ID, NHA_SAMPLE, FakeGateway
from tests.support_notify import Sink, sink  # noqa: F401

pytestmark = pytest.mark.slow  # each test starts `qtraq-live demo` and a gateway stand-in


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    with FakeGateway() as g:
        yield g


def messages_until(ws: ClientConnection, found: Any, what: str) -> dict[str, Any]:
    """Read a socket's messages until one satisfies ``found``."""
    deadline = time.monotonic() + 20 * TIMEOUT_FACTOR
    while time.monotonic() < deadline:
        msg = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if found(msg):
            return dict(msg)
    raise AssertionError(f"no message with {what}")


def test_a_scan_reaches_the_queue_the_gateway_the_tv_and_reception(gateway: FakeGateway, tmp_path: Path) -> None:
    env = clean_env(tmp_path / "data", QTRAQ_ABDM_ENABLED="true", QTRAQ_ABDM_GATEWAY_URL=gateway.url,
                    QTRAQ_ABDM_CLIENT_ID=CLIENT_ID, QTRAQ_ABDM_CLIENT_SECRET=CLIENT_SECRET,
                    QTRAQ_ABDM_HIP_ID=HIP_ID, QTRAQ_ABDM_COUNTERS="6=gp")
    with ServeProcess(tmp_path / "data", env=env, command="demo") as srv:
        wait_until(lambda: "Press Ctrl+C" in srv.log_text(), 10 * TIMEOUT_FACTOR, "the demo's welcome")
        out = srv.log_text()
        password = re.search(r"^ +reception +password (\S+)", out, re.M)
        key = re.search(r"/display/demo\?key=([A-Za-z0-9_-]+)", out)
        assert password and key, out
        desk = httpx.Client(base_url=f"{srv.url}/api/v1", timeout=10)
        assert desk.post("/auth/login", json={"username": "reception", "password": password[1]}).status_code == 200
        ws_url = srv.url.replace("http", "ws", 1)
        cookie = "; ".join(f"{k}={v}" for k, v in desk.cookies.items())
        with connect(f"{ws_url}/ws/display/demo?key={key[1]}") as tv, \
                connect(f"{ws_url}/ws/reception/demo", additional_headers={"Cookie": cookie}) as reception:
            assert json.loads(tv.recv(timeout=10))["type"] == "snapshot"
            assert json.loads(reception.recv(timeout=10))["type"] == "snapshot"
            rid = str(uuid.uuid4())
            r = gateway.share(srv.url, NHA_SAMPLE, request_id=rid)
            assert r.status_code == 202, r.text
            [ticket] = [t for t in desk.get("/queues/gp").json()["waiting"] if t["source"] == "abdm"]
            assert ticket["name"] == "John Kumar"
            wait_until(lambda: gateway.replies_for(rid), 30 * TIMEOUT_FACTOR, "the on-share reply")
            [reply] = gateway.replies_for(rid)
            assert reply["body"]["response"] == {"requestId": rid}
            assert reply["body"]["acknowledgement"]["profile"]["tokenNumber"] == ticket["label"]
            assert reply["headers"]["Authorization"].startswith("Bearer ") and gateway.errors == []
            shown = messages_until(tv, lambda m: ticket["label"] in json.dumps(m), f"{ticket['label']} on the TV")
            assert "johnkumar@sbx" not in json.dumps(shown) and "9876543210" not in json.dumps(shown)
            desk_view = messages_until(reception, lambda m: '"source": "abdm"' in json.dumps(m),
                                       "the ABHA ticket at reception")
            assert ticket["label"] in json.dumps(desk_view) and "John Kumar" in json.dumps(desk_view)
        [profile] = desk.get("/clinics/demo/abdm/profiles").json()["profiles"]
        assert (profile["label"], profile["abha_address"]) == (ticket["label"], "johnkumar@sbx")
        desk.close()
        assert len(gateway.replies_for(rid)) == 1


def test_the_watch_link_reaches_the_shared_number_when_the_clinic_sends_it(gateway: FakeGateway, sink: Sink,
                                                                           tmp_path: Path) -> None:
    env = clean_env(tmp_path / "data", QTRAQ_ABDM_ENABLED="true", QTRAQ_ABDM_GATEWAY_URL=gateway.url,
                    QTRAQ_ABDM_CLIENT_ID=CLIENT_ID, QTRAQ_ABDM_CLIENT_SECRET=CLIENT_SECRET,
                    QTRAQ_ABDM_HIP_ID=HIP_ID, QTRAQ_ABDM_COUNTERS="6=gp", QTRAQ_ABDM_SEND_LINK="true",
                    QTRAQ_NOTIFY_SMS=sink.url(), QTRAQ_PUBLIC_URL="https://clinic.example.in")
    with ServeProcess(tmp_path / "data", env=env, command="demo") as srv:
        wait_until(lambda: "Press Ctrl+C" in srv.log_text(), 10 * TIMEOUT_FACTOR, "the demo's welcome")
        assert gateway.share(srv.url, NHA_SAMPLE).status_code == 202
        wait_until(lambda: sink.to("+919876543210"), 30 * TIMEOUT_FACTOR, "the watch link by SMS")
        [sms] = sink.to("+919876543210")
        assert "https://clinic.example.in/t/" in sms["message"]
        token = sms["message"].split("https://clinic.example.in/t/")[1].split()[0].rstrip(".")
        assert httpx.get(f"{srv.url}/api/v1/t/{token}").json()["status"] == "waiting"
        assert "9876543210" not in srv.log_text() and "johnkumar" not in srv.log_text()
