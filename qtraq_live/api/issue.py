"""Issuing a ticket, shared by the reception desk and patient self check-in.

Contact details never enter Redis: the ticket id is reserved first, the contact row is
written to SQLite under that id, and only then does the engine issue the ticket. When the
issue fails the contact row is deleted again, so nothing is left half-written.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request

from ..accounts import consent_records
from ..errors import Invalid, NotFound
from ..metrics import TICKETS_ISSUED
from ..store import Store
from ..validation import E164, EMAIL, Field, Schema
from ..web.request import public_base
from .common import engine_of

CONTACT_FIELDS = {
    "name": Field("string", nullable=True, min_length=1, max_length=80,
                  description="shown masked if the clinic says so"),
    "mobile": Field("string", nullable=True, pattern=E164, description="E.164, e.g. +919812345678"),
    "email": Field("string", nullable=True, max_length=254, pattern=EMAIL),
    "notify": Field("boolean", default=False, description="send notices as the turn nears"),
    "lang": Field("string", nullable=True, enum=("en", "hi"), description="language of notices"),
}
STAFF_ISSUE = Schema({**CONTACT_FIELDS, "priority": Field("integer", enum=(0, 1), default=0,
                                                          description="0 normal, 1 urgent")})
PUBLIC_JOIN = Schema(CONTACT_FIELDS)


async def save_contact(store: Store, ticket_id: int, mobile: str | None, email: str | None) -> None:
    await store.execute("INSERT INTO ticket_contacts (ticket_id, mobile, email, created_at) VALUES (?, ?, ?, ?)",
                        (ticket_id, mobile, email, int(time.time() * 1000)))


async def delete_contact(store: Store, ticket_id: int) -> None:
    await store.execute("DELETE FROM ticket_contacts WHERE ticket_id = ?", (ticket_id,))


def track_url(request: Request, token: str) -> str:
    """The patient's tracking page: ``server.public_url`` when set, else the bound address."""
    return f"{public_base(request)}/t/{token}"


async def issue_ticket(request: Request, queue_id: str, body: dict[str, Any], actor: str, via: str) -> dict[str, Any]:
    """Issue a ticket from a checked body → ``{ticket, track_url}``, the body of the 201 (the
    only answer that ever carries the ticket's token)."""
    mobile, email = body["mobile"], body["email"]
    if body["notify"] and not (mobile or email):
        raise Invalid("notify", "needs a mobile number or an email address")
    engine = engine_of(request)
    if await engine.get_queue(queue_id) is None:
        raise NotFound("unknown queue")
    ticket_id = await engine.allocate_ticket_id()
    store = request.app.state.store
    if mobile or email:
        await save_contact(store, ticket_id, mobile, email)
    try:
        ticket = await engine.issue(queue_id, name=body["name"], priority=body.get("priority", 0),
                                    notify=body["notify"], lang=body["lang"], ticket_id=ticket_id, actor=actor)
    except BaseException:
        if mobile or email:
            await delete_contact(store, ticket_id)
        raise
    if body["notify"]:  # the consent record (DPDP Rules): notice version, purpose, channel, time
        await consent_records.add(store, notice_version=request.app.state.settings["privacy.notice_version"],
                                  purposes=["notifications"], at_ms=int(time.time() * 1000), ticket_id=ticket_id,
                                  channel="self_check_in" if via == "self_checkin" else "reception")
    TICKETS_ISSUED.labels(via).inc()
    return {"ticket": ticket, "track_url": track_url(request, ticket["token"])}
