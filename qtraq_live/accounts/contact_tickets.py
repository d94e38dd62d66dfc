"""Tickets issued to an account's verified contacts (walk-in at reception, self check-in): listed
in the account's export and erased from every copy with the account (issue #21 item 5).

Only **verified** contacts count: anyone can type a number into a registration form, and that
must not let them read or erase the tickets of the number's owner.

Copies of a walk-in's name: SQLite ``tickets.name`` and ``ticket_contacts``, the live ticket
hash, the ticket states inside the clinic's event stream, RQ/ledger notices, and Redis's
append-only file. Erasure blanks the live name first (so the cancel event written next carries
none), cancels live tickets, waits briefly for the stream's consumers to acknowledge the
events that carried the name and cuts the stream after them (a screen resuming from before gets
a fresh snapshot); the caller then checkpoints SQLite, vacuums it and rewrites the AOF.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from ..engine import live_erasure
from ..queue_engine import ACTIVE, QueueEngine, iso
from ..record.store import Store

Json = dict[str, Any]


async def ticket_ids(store: Store, account: Json) -> list[int]:
    """Ids of the tickets whose contact row holds one of the account's verified contacts."""
    mobile = account["mobile"] if account.get("mobile_verified") else None
    email = account["email"].lower() if account.get("email") and account.get("email_verified") else None
    if not mobile and not email:
        return []
    rows = await store.fetchall("SELECT ticket_id FROM ticket_contacts WHERE (mobile IS NOT NULL AND mobile = ?)"
                                " OR (email IS NOT NULL AND lower(email) = ?) ORDER BY ticket_id", (mobile, email))
    return [int(r["ticket_id"]) for r in rows]


async def export(store: Store, engine: QueueEngine, ids: list[int]) -> list[Json]:
    """What the record and the live state hold about those tickets."""
    out = []
    for tid in ids:
        row = await store.fetchone("SELECT id, clinic, queue, label, status, name, created_at, called_at, done_at"
                                   " FROM tickets WHERE id = ?", (tid,))
        live = await engine.ticket(tid)
        if row is None and live is None:
            continue
        src: Json = dict(row) if row else {}
        for k in ("created_at", "called_at", "done_at"):
            src[k] = iso(src.get(k)) if row else None
        if live:
            src.update({k: live.get(k) for k in ("id", "queue", "label", "status", "created_at", "called_at")})
            src["name"] = src.get("name") or live.get("name")
        contact = await store.fetchone("SELECT mobile, email FROM ticket_contacts WHERE ticket_id = ?", (tid,))
        out.append({**{k: src.get(k) for k in ("id", "queue", "label", "status", "name", "created_at", "called_at",
                                               "done_at")},
                    "mobile": contact["mobile"] if contact else None, "email": contact["email"] if contact else None})
    return out


async def erase_live(store: Store, redis: aioredis.Redis, engine: QueueEngine, ids: list[int]) -> None:
    """Blank the names in the live hashes, cancel what still waits, and cut each clinic's
    event stream after the last event that carried one of the names (see the module doc)."""
    if not ids:
        return
    await live_erasure.blank_names(redis, ids)
    for tid in ids:
        live = await engine.ticket(tid)
        if live is not None and live["status"] in ACTIVE:
            await engine.cancel(tid, actor="patient")  # their own act: no "cancelled" notice
    clinics = {r["clinic"] for r in await store.fetchall(
        f"SELECT DISTINCT clinic FROM tickets WHERE id IN ({','.join('?' * len(ids))})", ids)}
    clinics |= await live_erasure.ticket_clinics(redis, ids)
    for clinic in sorted(clinics):
        await live_erasure.cut_events(redis, clinic, set(ids))
