"""Replies from patients: signed SMS gateway posts and WhatsApp Cloud API webhooks, posted to a
running ``qtraq-live serve``; the answers reach the local gateway stand-ins through the RQ workers."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from qtraq_live.errors import Conflict
from qtraq_live.inbound import payloads
from qtraq_live.inbound.keywords import Intent, intent_of
from qtraq_live.inbound.signatures import sign
from qtraq_live.queue_engine import QueueEngine
from tests.support_http import error_of
from tests.support_messaging import (SMS_SECRET, WA_APP_SECRET, WA_VERIFY, admin_client, issue,  # noqa: F401
                                     messaging_server, wa_sink)
from tests.support_notify import Sink, sink, wait_until  # noqa: F401

PATIENT = "+919812340002"
OTHER = "+919812340009"  # has a ticket but did not ask for notices
STRANGER = "+919800000077"


def post_sms(url: str, body: dict[str, str], *, form: bool = False, secret: str = SMS_SECRET,
             signature: str | None = None) -> httpx.Response:
    raw = (urlencode(body) if form else json.dumps(body)).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded" if form else "application/json",
               "X-Signature": signature if signature is not None else sign(secret, raw)}
    return httpx.post(f"{url}/api/v1/inbound/sms", content=raw, headers=headers, timeout=10)


def answers(s: Sink, to: str) -> list[dict[str, Any]]:
    """Messages to ``to`` other than the "Your ticket" notice sent when it was issued."""
    return [m for m in s.to(to) if not m["title"].startswith("Your ticket")]


def status_of(admin: httpx.Client, ticket_id: int) -> str:
    body = admin.get(f"/tickets/{ticket_id}").json()
    return str(body.get("ticket", body)["status"])


def waiting_labels(admin: httpx.Client) -> list[str]:
    return [t["label"] for t in admin.get("/queues/gp").json()["waiting"]]


# -- pure parts ----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "intent", "lang"), [
    ("1", Intent.YES, "en"), ("yes", Intent.YES, "en"), ("हाँ", Intent.YES, "hi"), ("हां!", Intent.YES, "hi"),
    ("LATE", Intent.LATE, "en"), ("देर से आऊँगा", Intent.LATE, "hi"), ("cancel.", Intent.CANCEL, "en"),
    ("रद्द", Intent.CANCEL, "hi"), ("STATUS", Intent.STATUS, "en"), ("?", Intent.STATUS, "en"),
    ("what is my number", Intent.HELP, None), ("", Intent.HELP, None)])
def test_keywords_in_english_and_hindi(text: str, intent: Intent, lang: str | None) -> None:
    assert intent_of(text) == (intent, lang)


def test_sender_numbers_are_read_as_e164() -> None:
    assert payloads.e164("+91 98123 40002") == PATIENT
    assert payloads.e164("919812340002") == PATIENT
    assert payloads.e164("09812340002") == PATIENT
    assert payloads.e164("9812340002") == PATIENT
    assert payloads.e164("0091-9812340002") == PATIENT
    assert payloads.e164("<script>") is None


async def test_move_back_goes_back_n_places_once(engine: QueueEngine) -> None:
    await engine.create_clinic("c1", "C", timezone="UTC")
    await engine.create_queue("c1", "gp", "GP", "A")
    tickets = [await engine.issue("gp") for _ in range(6)]
    moved = await engine.move_back(tickets[1]["id"], 3)
    assert moved["position"] == 5 and moved["status"] == "waiting"
    snap = await engine.queue_snapshot("gp")
    assert [t["label"] for t in snap["waiting"]] == ["A-001", "A-003", "A-004", "A-005", "A-002", "A-006"]
    with pytest.raises(Conflict, match="already moved back once"):
        await engine.move_back(tickets[1]["id"], 3)
    last = await engine.move_back(tickets[4]["id"], 3)  # fewer than 3 behind: to the end
    assert last["position"] == 6
    newest = await engine.issue("gp")
    with pytest.raises(Conflict, match="nobody waits behind"):
        await engine.move_back(newest["id"], 1)
    events = await engine.events_since("c1", 0)
    assert events is not None and [e["type"] for e in events].count("moved_back") == 2  # refusals write nothing


# -- SMS through a running server ----------------------------------------------------------


def test_sms_replies_act_on_the_senders_ticket_once_and_answer_by_sms(tmp_path: Path, sink: Sink) -> None:
    with messaging_server(tmp_path, sink, rate_limit=12) as srv, admin_client(srv.url) as admin:
        issue(admin, name="First Patient")
        mine = issue(admin, name="Asha", mobile=PATIENT, notify=True)["ticket"]
        issue(admin, name="Unconsented", mobile=OTHER, notify=False)
        for _ in range(4):
            issue(admin)
        assert waiting_labels(admin)[:3] == ["A-001", "A-002", "A-003"]

        # Signatures and body checks come first.
        assert error_of(post_sms(srv.url, {"from": PATIENT, "text": "CANCEL"}, signature="")) == (401, "bad_signature")
        assert error_of(post_sms(srv.url, {"from": PATIENT, "text": "CANCEL"}, secret="wrong")) == (401, "bad_signature")
        assert error_of(post_sms(srv.url, {"from": PATIENT, "text": "x", "to": "+1"}))[0] == 422
        raw = b"{not json"
        r = httpx.post(f"{srv.url}/api/v1/inbound/sms", content=raw,
                       headers={"X-Signature": sign(SMS_SECRET, raw), "Content-Type": "application/json"})
        assert error_of(r) == (400, "bad_json")
        assert status_of(admin, mine["id"]) == "waiting"

        # STATUS by JSON: the answer goes to the sender by SMS.
        r = post_sms(srv.url, {"from": PATIENT, "text": "status", "id": "gw-1"})
        assert r.status_code == 200 and r.json() == {"outcome": "status"}
        got = wait_until(lambda: answers(sink, PATIENT), "the STATUS answer")
        assert "A-002" in got[0]["message"] and "1 ahead" in got[0]["message"]

        # देर (Hindi LATE) by form post: three places back, answered in Hindi.
        r = post_sms(srv.url, {"from": "919812340002", "text": "देर", "id": "gw-2"}, form=True)
        assert r.json() == {"outcome": "late"}
        assert waiting_labels(admin)[:5] == ["A-001", "A-003", "A-004", "A-005", "A-002"]
        got = wait_until(lambda: len(answers(sink, PATIENT)) >= 2 and answers(sink, PATIENT), "the LATE answer")
        assert "स्थान पीछे" in got[1]["message"]

        # The gateway retries the same message: nothing changes, nothing more is sent.
        assert post_sms(srv.url, {"from": PATIENT, "text": "देर", "id": "gw-2"}, form=True).json() == \
            {"outcome": "duplicate"}
        # A second LATE is refused (once per ticket), its place kept.
        assert post_sms(srv.url, {"from": PATIENT, "text": "LATE", "id": "gw-3"}).json() == {"outcome": "late"}
        assert waiting_labels(admin)[:5] == ["A-001", "A-003", "A-004", "A-005", "A-002"]
        got = wait_until(lambda: len(answers(sink, PATIENT)) >= 3 and answers(sink, PATIENT), "the refusal")
        assert "cannot be moved back again" in got[2]["message"]

        # Unconsented and unknown numbers change nothing and get no answer.
        assert post_sms(srv.url, {"from": OTHER, "text": "CANCEL", "id": "gw-4"}).json() == {"outcome": "no_ticket"}
        assert post_sms(srv.url, {"from": STRANGER, "text": "CANCEL", "id": "gw-5"}).json() == {"outcome": "no_ticket"}
        assert "A-003" in waiting_labels(admin)

        # Anything else: the help text. A SMS without an id: its body dedupes a retry.
        body = {"from": PATIENT, "text": "zanzibar quokka"}
        assert post_sms(srv.url, body).json() == {"outcome": "help"}
        assert post_sms(srv.url, body).json() == {"outcome": "duplicate"}
        got = wait_until(lambda: len(answers(sink, PATIENT)) >= 4 and answers(sink, PATIENT), "the help text")
        assert "CANCEL to leave the queue" in got[3]["message"]

        # CANCEL: the patient leaves the queue; no "cancelled by the clinic" notice, one answer.
        assert post_sms(srv.url, {"from": PATIENT, "text": "Cancel", "id": "gw-6"}).json() == {"outcome": "cancel"}
        assert status_of(admin, mine["id"]) == "cancelled"
        got = wait_until(lambda: len(answers(sink, PATIENT)) >= 5 and answers(sink, PATIENT), "the CANCEL answer")
        assert "has left the queue" in got[4]["message"]
        # Now no current ticket: nothing more is answered.
        assert post_sms(srv.url, {"from": PATIENT, "text": "STATUS", "id": "gw-7"}).json() == {"outcome": "no_ticket"}

        # Flooding: over the limit per number, 429 with Retry-After and no more work.
        flood = [post_sms(srv.url, {"from": STRANGER, "text": "STATUS", "id": f"flood-{i}"}) for i in range(14)]
        limited = [a for a in flood if a.status_code == 429]
        assert limited and int(limited[0].headers["Retry-After"]) > 0
        assert error_of(limited[0]) == (429, "rate_limited")
        time.sleep(1.0)  # let any stray job run before counting what was sent
        assert len(answers(sink, PATIENT)) == 5 and not sink.to(OTHER) and not sink.to(STRANGER)
    log = srv.log_text()
    assert "inbound sms message" in log
    for private in ("9812340002", "zanzibar", "देर", "9812340009"):
        assert private not in log


# -- WhatsApp Cloud API webhook ------------------------------------------------------------


def wa_payload(sender: str, text: str, wamid: str, *, kind: str = "text") -> dict[str, Any]:
    """The webhook body as Meta documents it for an incoming message."""
    message: dict[str, Any] = {"from": sender, "id": wamid, "timestamp": str(int(time.time())), "type": kind}
    if kind == "text":
        message["text"] = {"body": text}
    elif kind == "button":
        message["button"] = {"payload": text, "text": text}
    return {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": "Asha"}, "wa_id": sender}],
            "messages": [message]}}]}]}


def post_wa(url: str, payload: dict[str, Any], secret: str = WA_APP_SECRET) -> httpx.Response:
    raw = json.dumps(payload).encode()
    return httpx.post(f"{url}/api/v1/inbound/whatsapp", content=raw, timeout=10,
                      headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(secret, raw)})


def test_whatsapp_webhook_handshake_signature_and_replies(tmp_path: Path, sink: Sink, wa_sink: Sink) -> None:
    with messaging_server(tmp_path, sink, wa_sink) as srv, admin_client(srv.url) as admin:
        hook = f"{srv.url}/api/v1/inbound/whatsapp"
        ok = httpx.get(hook, params={"hub.mode": "subscribe", "hub.verify_token": WA_VERIFY, "hub.challenge": "1158201444"})
        assert ok.status_code == 200 and ok.text == "1158201444"
        bad = httpx.get(hook, params={"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"})
        assert error_of(bad) == (403, "bad_verify_token")
        xss = httpx.get(hook, params={"hub.mode": "subscribe", "hub.verify_token": WA_VERIFY,
                                      "hub.challenge": "<script>alert(1)</script>"})
        assert error_of(xss)[0] == 403

        issue(admin)
        mine = issue(admin, mobile=PATIENT, notify=True)["ticket"]
        issue(admin)
        sender = PATIENT.lstrip("+")  # WhatsApp sends numbers without the +
        assert error_of(post_wa(srv.url, wa_payload(sender, "CANCEL", "wamid.A1"), secret="nope")) == \
            (401, "bad_signature")
        r = httpx.post(hook, content=b"{}", headers={"X-Hub-Signature-256": sign(WA_APP_SECRET, b"{}")})
        assert error_of(r) == (400, "bad_payload")

        # A quick-reply button "1": confirmed, answered on WhatsApp (not SMS).
        r = post_wa(srv.url, wa_payload(sender, "1", "wamid.HBgLOTE5ODEyMzQwMDAyFQIAEhggQ0", kind="button"))
        assert r.status_code == 200 and r.json() == {"outcomes": ["yes"]}
        got = wait_until(lambda: answers(wa_sink, PATIENT), "the WhatsApp answer")
        assert "A-002 is expected" in got[0]["message"] and "1 ahead" in got[0]["message"]
        # Meta retries the same message id: nothing twice.
        again = post_wa(srv.url, wa_payload(sender, "1", "wamid.HBgLOTE5ODEyMzQwMDAyFQIAEhggQ0", kind="button"))
        assert again.json() == {"outcomes": ["duplicate"]}
        # A delivery status callback carries no message.
        status_only = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages",
                       "value": {"messaging_product": "whatsapp", "statuses": [{"id": "wamid.X", "status": "read",
                                                                                 "recipient_id": sender}]}}]}]}
        assert post_wa(srv.url, status_only).json() == {"outcomes": []}
        # Racing: Meta delivers one message eight times at once, then the patient sends LATE
        # five times at once: one message acts, once; the ticket moves back one time only.
        issue(admin)
        issue(admin)
        with ThreadPoolExecutor(8) as pool:
            same = list(pool.map(lambda _: post_wa(srv.url, wa_payload(sender, "LATE", "wamid.RACE")).json(), range(8)))
            assert sorted(o for r in same for o in r["outcomes"]) == ["duplicate"] * 7 + ["late"]
            list(pool.map(lambda i: post_wa(srv.url, wa_payload(sender, "late", f"wamid.R{i}")), range(5)))
        assert waiting_labels(admin) == ["A-001", "A-003", "A-004", "A-005", "A-002"]
        told = wait_until(lambda: len(answers(wa_sink, PATIENT)) >= 7 and answers(wa_sink, PATIENT), "six answers")
        assert sum("moved back 3 places" in m["message"] for m in told) == 1
        assert sum("cannot be moved back again" in m["message"] for m in told) == 5

        # रद्द: the ticket is cancelled, the answer in Hindi on WhatsApp.
        assert post_wa(srv.url, wa_payload(sender, "रद्द", "wamid.B2")).json() == {"outcomes": ["cancel"]}
        assert status_of(admin, mine["id"]) == "cancelled"
        got = wait_until(lambda: len(answers(wa_sink, PATIENT)) >= 8 and answers(wa_sink, PATIENT), "the Hindi answer")
        assert "कतार छोड़ दी" in got[7]["message"]
        time.sleep(0.5)  # any stray job would have run by now: nothing more was sent
        assert len(answers(wa_sink, PATIENT)) == 8 and not answers(sink, PATIENT)
