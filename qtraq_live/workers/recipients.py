"""Who receives a ticket's notices, on which channel.

Walk-in tickets: the contact row the issuing endpoint wrote (``ticket_contacts``): a mobile
gets SMS when an SMS URL is configured, else WhatsApp; an email gets email. Tickets checked
in from an appointment (``appointment_id`` set): the hook the caller passes in
(:data:`AppointmentHook`; the duties process passes the accounts area's
``accounts.notices.recipients_for_ticket``), which returns the same :class:`Recipient` tuples
and leaves out accounts without notification consent. Passed in, not imported: the accounts
area builds on this package, not the other way round.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

from ..record.store import Store

log = logging.getLogger(__name__)



class Recipient(NamedTuple):
    channel: str  # email | sms | whatsapp
    to: str  # E.164 phone or email address
    lang: str | None  # preferred language, if the recipient has one
    subject: str  # consent subject: "ticket:12" or "account:7"


def mobile_channel(available: Mapping[str, str]) -> str | None:
    return "sms" if "sms" in available else "whatsapp" if "whatsapp" in available else None


async def walkin_recipients(store: Store, ticket_id: int, available: Mapping[str, str]) -> list[Recipient]:
    row = await store.fetchone("SELECT mobile, email FROM ticket_contacts WHERE ticket_id = ?", (ticket_id,))
    if row is None:
        return []
    subject = f"ticket:{ticket_id}"
    out: list[Recipient] = []
    mobile_via = mobile_channel(available)
    if row["mobile"] and mobile_via:
        out.append(Recipient(mobile_via, row["mobile"], None, subject))
    if row["email"] and "email" in available:
        out.append(Recipient("email", row["email"], None, subject))
    return out


AppointmentHook = Callable[[Store, int], Awaitable[list[Recipient]]]


async def ticket_recipients(store: Store, ticket: Mapping[str, Any], available: Mapping[str, str],
                            appointments: AppointmentHook | None = None) -> list[Recipient]:
    """Recipients on the channels this clinic has (``available``: channel -> URL template)."""
    if not ticket.get("appointment_id"):
        return await walkin_recipients(store, int(ticket["id"]), available)
    if appointments is None:
        log.warning("ticket %s: no appointment hook; appointment tickets get no notices", ticket["id"])
        return []
    found = await appointments(store, int(ticket["id"]))
    return [r for r in found if r.channel in available]
