"""Issuing a ticket, shared by the reception desk and patient self check-in.

Contact details never enter Redis: the ticket id is reserved first, the contact row is
written to SQLite under that id, and only then does the engine issue the ticket. When the
issue fails the contact row is deleted again, so nothing is left half-written.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request

from .. import phones
from ..accounts import consent_records
from ..errors import Conflict, Invalid, NotFound
from ..languages import LANGS
from ..metrics import TICKETS_ISSUED
from ..queue_engine import QueueEngine, TicketSource
from ..record.store import Store
from ..validation import EMAIL, EMAIL_MAX, NAME_MAX, Field, Schema
from ..web.request import public_base
from .common import engine_of

CONTACT_FIELDS = {
    "name": Field("string", nullable=True, min_length=1, max_length=NAME_MAX,
                  description="shown masked if the clinic says so"),
    "mobile": phones.FIELD,
    "email": Field("string", nullable=True, max_length=EMAIL_MAX, pattern=EMAIL),
    "notify": Field("boolean", default=False, description="send notices as the turn nears"),
    "lang": Field("string", nullable=True, enum=LANGS, description="language of notices"),
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


async def issue_walk_in(engine: QueueEngine, store: Store, queue_id: str, *, name: str | None,
                        mobile: str | None, email: str | None, notify: bool, lang: str | None,
                        priority: int, actor: str, source: TicketSource) -> dict[str, Any]:
    """The walk-in issue every path without an appointment shares (the desk, self check-in,
    ABDM Scan & Share): the number read in the clinic's region, the contact row first, then the
    engine call, the row undone if it fails. Returns the ticket with its token."""
    queue = await engine.get_queue(queue_id)
    if queue is None:
        raise NotFound("unknown queue")
    if queue["archived"]:
        raise Conflict("queue: this queue is archived and takes no tickets", code="queue_archived")
    mobile = phones.optional_e164(mobile, await engine.queue_region(queue_id))
    if notify and not (mobile or email):
        raise Invalid("notify", "needs a mobile number or an email address")
    ticket_id = await engine.allocate_ticket_id()
    if mobile or email:
        await save_contact(store, ticket_id, mobile, email)
    try:
        return await engine.issue(queue_id, name=name, priority=priority, notify=notify, lang=lang,
                                  ticket_id=ticket_id, source=source, actor=actor)
    except BaseException:
        if mobile or email:
            await delete_contact(store, ticket_id)
        raise


async def issue_ticket(request: Request, queue_id: str, body: dict[str, Any], actor: str, via: str,
                       source: TicketSource) -> dict[str, Any]:
    """Issue a ticket from a checked body → ``{ticket, track_url}``, the body of the 201 (the
    only answer that ever carries the ticket's token)."""
    ticket = await issue_walk_in(engine_of(request), request.app.state.store, queue_id, name=body["name"],
                                 mobile=body["mobile"], email=body["email"], notify=body["notify"],
                                 lang=body["lang"], priority=body.get("priority", 0), actor=actor, source=source)
    if body["notify"]:  # the consent record (DPDP Rules): notice version, purpose, channel, time
        await consent_records.add(request.app.state.store,
                                  notice_version=request.app.state.settings["privacy.notice_version"],
                                  purposes=["notifications"], at_ms=int(time.time() * 1000), ticket_id=int(ticket["id"]),
                                  channel="self_check_in" if via == "self_checkin" else "reception")
    TICKETS_ISSUED.labels(via).inc()
    return {"ticket": ticket, "track_url": track_url(request, ticket["token"])}
