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

import redis.asyncio as aioredis

from ..engine import redis_keys as keys
from ..metrics import count_notices
from ..queue_engine import iso
from ..record.store import Store
from ..runtime.stream_consumer import Batch, StreamConsumer
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


def consumer(client: aioredis.Redis, store: Store) -> StreamConsumer:
    """The copier: group ``notify-log`` on ``qt:notice:log``; entries are deleted once recorded."""
    async def handle(batch: Batch) -> None:
        for entries in batch.values():
            await copy(store, entries)
            count_notices(entries)  # here, once per entry: workers may run on hosts without /metrics

    async def streams() -> list[str]:
        return [keys.NOTICE_LOG]

    return StreamConsumer(client, GROUP, CONSUMER, handle, streams, delete=lambda _: True, batch=BATCH,
                          block_ms=BLOCK_MS, refresh_s=float("inf"), name="delivery log copier", logger=log)


async def copy_loop(client: aioredis.Redis, store: Store, stop: asyncio.Event) -> None:
    await consumer(client, store).run(stop)


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
