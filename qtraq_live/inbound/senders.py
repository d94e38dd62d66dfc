"""The tickets a reply may act on: the sender's current tickets that have that number and
consent to notices.

Candidates come from SQLite (walk-in contacts, accounts, imported appointments); each is then
kept only when it is still in the queue, has notices on, and the notifier's own recipient
rules (``workers.recipients``: consent, verified numbers) would message that number about
it, and its consent subject has not been withdrawn. An unknown or unconsented number finds
nothing, so it can change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from ..engine import redis_keys as keys
from ..queue_engine import ACTIVE, QueueEngine
from ..record.store import Store
from ..workers.channels import CHANNELS
from ..workers.recipients import ticket_recipients

MAX_CANDIDATES = 20  # the newest; a number holds a handful of tickets on a given day
CANDIDATES = """
SELECT ticket_id FROM ticket_contacts WHERE mobile = :m
UNION SELECT a.ticket_id FROM appointments a JOIN accounts ac ON ac.id = a.account_id
      WHERE ac.mobile = :m AND a.ticket_id IS NOT NULL
UNION SELECT a.ticket_id FROM appointments a JOIN appointment_contacts c ON c.appointment_id = a.id
      WHERE c.mobile = :m AND a.ticket_id IS NOT NULL
ORDER BY 1 DESC LIMIT :n
"""
_EVERY_CHANNEL = {c: "-" for c in CHANNELS}  # ask the recipient rules about every channel


@dataclass(frozen=True)
class Held:
    """One of the sender's current tickets and what its notices go by."""

    ticket: dict[str, Any]  # the engine's TicketDict
    subject: str  # consent subject ("ticket:12", "account:7")
    lang: str | None  # the recipient's own language, if any


async def current_tickets(store: Store, engine: QueueEngine, redis: aioredis.Redis, sender: str) -> list[Held]:
    rows = await store.fetchall(CANDIDATES, {"m": sender, "n": MAX_CANDIDATES})
    out: list[Held] = []
    for row in rows:
        ticket = await engine.ticket(int(row["ticket_id"]))
        if ticket is None or ticket["status"] not in ACTIVE or not ticket["notify"]:
            continue
        mine = [r for r in await ticket_recipients(store, ticket, _EVERY_CHANNEL) if r.to == sender]
        if not mine or await redis.sismember(keys.NOTIFY_OPTOUT, mine[0].subject):
            continue
        out.append(Held(ticket, mine[0].subject, mine[0].lang))
    return sorted(out, key=lambda h: int(h.ticket["id"]))
