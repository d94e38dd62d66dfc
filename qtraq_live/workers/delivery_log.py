"""The delivery log in SQLite: every notice and every attempt, copied from ``qt:notice:log``.

Workers may run on hosts without the SQLite file, so they write outcomes to the Redis stream
(ledger.TRANSITION_LUA) and the primary copies them here in the consumer group ``notify-log``,
acknowledging after the commit. Rows carry no message and no recipient, only a masked hint.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import redis
import redis.asyncio as aioredis

from .. import redis_keys as keys
from ..metrics import count_notices
from ..queue_engine import iso
from ..store import Store
from .ledger import STATES

log = logging.getLogger(__name__)

GROUP = "notify-log"
CONSUMER = "primary"
BATCH = 500
BLOCK_MS = 1000
ATTEMPT_STATES = ("sent", "retrying", "failed")  # an outcome of a provider call (or its loss)

UPSERT = """
INSERT INTO notices (key, kind, channel, clinic_id, ticket_id, recipient_hint, status, reason,
                     response_class, attempts, created_at, updated_at, sent_at)
VALUES (:key, :kind, :channel, :clinic, :ticket, :hint, :state, :reason, :class, :attempt,
        :created, :at, CASE WHEN :state = 'sent' THEN :at END)
ON CONFLICT (key) DO UPDATE SET
    status = excluded.status, reason = excluded.reason,
    response_class = coalesce(nullif(excluded.response_class, ''), notices.response_class),
    attempts = excluded.attempts, updated_at = excluded.updated_at,
    sent_at = coalesce(excluded.sent_at, notices.sent_at)
"""
ATTEMPT = """
INSERT INTO notice_attempts (notice_id, attempt, outcome, reason, response_class, at)
SELECT id, :attempt, :state, :reason, :class, :at FROM notices WHERE key = :key
"""


def _row(fields: Mapping[str, str]) -> dict[str, Any]:
    row: dict[str, Any] = dict(fields)
    row["ticket"] = int(row["ticket"]) if row.get("ticket") else None
    row["clinic"] = row.get("clinic") or None
    for k in ("attempt", "at", "created"):
        row[k] = int(row.get(k) or 0)
    return row


async def copy(store: Store, entries: Sequence[tuple[str, Mapping[str, str]]]) -> None:
    """Write one batch of delivery-stream entries, in order, in one transaction."""
    async with store.transaction() as db:
        for _, fields in entries:
            row = _row(fields)
            await db.execute(UPSERT, row)
            if row["state"] in ATTEMPT_STATES and row["attempt"] > 0:
                await db.execute(ATTEMPT, row)


Entries = list[tuple[str, dict[str, str]]]


def entries_of(resp: Any) -> Entries:
    """The entries of a one-stream XREAD(GROUP) answer (decoded client)."""
    return list(resp[0][1]) if resp else []


async def ensure_group(client: aioredis.Redis, stream: str, group: str) -> None:
    """Create ``group`` reading ``stream`` from its start (no-op when it exists)."""
    try:
        await client.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def copy_loop(client: aioredis.Redis, store: Store, stop: asyncio.Event) -> None:
    await ensure_group(client, keys.NOTICE_LOG, GROUP)
    pending = "0"  # first what a crashed run read but never acknowledged
    while not stop.is_set():
        resp = await client.xreadgroup(GROUP, CONSUMER, {keys.NOTICE_LOG: pending}, count=BATCH,
                                       block=None if pending == "0" else BLOCK_MS)
        entries = entries_of(resp)
        if not entries:
            pending = ">"
            continue
        await copy(store, entries)
        ids = [entry_id for entry_id, _ in entries]
        await client.xack(keys.NOTICE_LOG, GROUP, *ids)
        count_notices(entries)  # here, once per entry: workers may run on hosts without /metrics
        await client.xdel(keys.NOTICE_LOG, *ids)


def view(row: Mapping[str, Any]) -> dict[str, Any]:
    """A notice as the admin API shows it."""
    return {
        "id": row["id"], "kind": row["kind"], "channel": row["channel"], "clinic": row["clinic_id"],
        "ticket": row["ticket_id"], "recipient": row["recipient_hint"], "status": row["status"],
        "reason": row["reason"] or None, "response_class": row["response_class"] or None,
        "attempts": row["attempts"], "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]), "sent_at": iso(row["sent_at"]),
    }


async def list_notices(store: Store, status: str | None, limit: int) -> list[dict[str, Any]]:
    assert status is None or status in STATES
    rows = await store.fetchall(
        "SELECT * FROM notices WHERE (:status IS NULL OR status = :status) ORDER BY id DESC LIMIT :limit",
        {"status": status, "limit": limit})
    return [view(r) for r in rows]


async def get_notice(store: Store, notice_id: int) -> dict[str, Any] | None:
    return await store.fetchone("SELECT * FROM notices WHERE id = ?", (notice_id,))
