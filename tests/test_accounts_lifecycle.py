"""The whole patient journey through real HTTP, a real notifier, a real RQ worker process, a
real SMTP server and an HTTP sink standing in for the SMS gateway: register → verify with the
codes that arrive → add a patient → book → check in → ticket → followed live → called →
the notice reaches the account's verified contacts."""

from __future__ import annotations

import re
import time
from typing import Any

import redis.asyncio as aioredis

from qtraq_live.engine import redis_keys as keys
from qtraq_live.runtime.duties import Context
from qtraq_live.workers.notifier import GROUP as NOTIFY_GROUP
from tests.support_accounts import add_patient, live_portal, off_loop, register, verify  # noqa: F401
from tests.support_hub import open_ws, recv, ws_url
from tests.support_http import LiveServer
from tests.support_notify import (SmtpServer, Sink, Workers, await_until, notifier, notify_env,  # noqa: F401
                                  sink, smtp, workers)

CODE = re.compile(r"\b(\d{6})\b")


def _emails_to(smtp: SmtpServer, to: str) -> list[str]:
    return [m.as_string() for m in smtp.messages if m["To"] == to]


def _texts_to(sink: Sink, to: str) -> list[str]:
    return [f"{r.get('title', '')} {r.get('message', '')}" for r in sink.to(to)]


async def _arrives(source: Any, what: str, pattern: str) -> str:
    def found() -> str | None:
        return next((text for text in source() if pattern in text), None)

    text: str = await await_until(found, what, timeout=30)
    return text


async def _notifier_caught_up(aredis: aioredis.Redis, clinic: str) -> None:
    """Wait until the notifier has read and acknowledged every event of the clinic so far."""
    version = int(await aredis.get(keys.version(clinic)) or 0)

    async def done() -> bool:
        groups = {g["name"]: g for g in await aredis.xinfo_groups(keys.events(clinic))}
        g = groups.get(NOTIFY_GROUP)
        return g is not None and g["pending"] == 0 and int(g["last-delivered-id"].split("-")[0]) >= version

    await await_until(done, "the notifier to handle every event")


async def test_register_verify_book_check_in_and_be_called(live_portal: LiveServer, notifier: Context,
                                                            workers: Workers, smtp: SmtpServer, sink: Sink,
                                                            aredis: aioredis.Redis) -> None:
    workers.start(1)
    p = await off_loop(register, live_portal, name="Tara Joshi", consent={"notifications": True, "analytics": True,
                                                                          "marketing": False})
    await _arrives(lambda: _emails_to(smtp, p.email), "the welcome email", "Welcome")
    email_code = CODE.search(await _arrives(lambda: _emails_to(smtp, p.email), "the email code", "verification code"))
    sms_code = CODE.search(await _arrives(lambda: _texts_to(sink, p.mobile), "the SMS code", "verification code"))
    assert email_code and sms_code
    assert (await off_loop(verify, p, "email", email_code.group(1))).status_code == 200
    me = (await off_loop(verify, p, "mobile", sms_code.group(1))).json()
    assert me["email_verified"] and me["mobile_verified"]

    patient = await off_loop(add_patient, p, name="Tara Joshi", age=29, blood_group="A+")
    today = time.strftime("%Y-%m-%d", time.gmtime())
    appt = (await off_loop(p.post, "/me/appointments", {"patient": patient["id"], "queue": "gp", "date": today})).json()
    assert appt["status"] == "booked"
    await _arrives(lambda: _texts_to(sink, p.mobile), "the booking confirmation", "appointment booked")

    desk = await off_loop(live_portal.staff, "reception")
    ticket = (await off_loop(desk.post, f"/appointments/{appt['id']}/check-in")).json()["ticket"]
    mine = (await off_loop(p.get, "/me/appointments")).json()["appointments"][0]
    assert mine["status"] == "checked_in" and mine["ticket"]["label"] == ticket["label"]
    async with await open_ws(ws_url(live_portal.url, f"/ws/t/{mine['ticket']['token']}")) as ws:
        snapshot = await recv(ws)
        assert (snapshot["type"], snapshot["label"], snapshot["status"]) == ("snapshot", ticket["label"], "waiting")
        called = (await off_loop(desk.post, "/queues/gp/next", json={"counter": "3"})).json()["called"]
        assert called["id"] == ticket["id"]
        update = await recv(ws)
        assert (update["type"], update["status"]) == ("update", "called") and "name" not in update
    await _arrives(lambda: _texts_to(sink, p.mobile), "the call by SMS", ticket["label"] + ": please come in")
    await _arrives(lambda: _emails_to(smtp, p.email), "the call by email", "please come in")

    async def exported() -> bool:
        data = (await off_loop(p.get, "/me/export")).json()
        return {(n["kind"], n["status"]) for n in data["notices"]} >= {("verify_code", "sent"), ("called", "sent")}

    await await_until(exported, "the delivery log in the export")


async def test_unverified_contacts_and_withdrawn_consent_get_no_queue_notices(
        live_portal: LiveServer, notifier: Context, workers: Workers, smtp: SmtpServer, sink: Sink,
        aredis: aioredis.Redis) -> None:
    workers.start(1)
    p = await off_loop(register, live_portal, name="Uma Sen", consent={"notifications": True})
    code = CODE.search(await _arrives(lambda: _texts_to(sink, p.mobile), "the SMS code", "verification code"))
    assert code and (await off_loop(verify, p, "mobile", code.group(1))).is_success
    patient = await off_loop(add_patient, p, name="Uma Sen", age=50)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    desk = await off_loop(live_portal.staff, "reception")

    async def visit(queue: str, patient_id: int = patient["id"]) -> str:
        """Book, check in and be called at ``queue``; the ticket's label."""
        appt = (await off_loop(p.post, "/me/appointments", {"patient": patient_id, "queue": queue,
                                                              "date": today})).json()
        label: str = (await off_loop(desk.post, f"/appointments/{appt['id']}/check-in")).json()["ticket"]["label"]
        await off_loop(desk.post, f"/queues/{queue}/next", json={})
        return label

    label = await visit("gp")
    await _arrives(lambda: _texts_to(sink, p.mobile), "the call by SMS", label + ": please come in")
    assert not [m for m in _emails_to(smtp, p.email) if "please come in" in m]  # the email is not verified

    await off_loop(p.client.put, "/me/consent", json={"notifications": False, "analytics": False, "marketing": False})
    withdrawn = await visit("eye")
    await _notifier_caught_up(aredis, "c1")  # it has decided on the call while consent was off
    await off_loop(p.client.put, "/me/consent", json={"notifications": True, "analytics": False, "marketing": False})
    relative = await off_loop(add_patient, p, name="Ila Sen", relation="parent", age=75, consent_confirmed=True)
    again = await visit("gp", relative["id"])  # consent back: this call is told, after the one above
    await _arrives(lambda: _texts_to(sink, p.mobile), "the call after consent came back", again + ": please come in")
    assert not [t for t in _texts_to(sink, p.mobile) if withdrawn in t]
