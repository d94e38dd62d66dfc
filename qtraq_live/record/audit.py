"""The staff audit log: who did what, when, from where (ids only, never personal data).

A request appends its entry to the Redis stream ``qt:audit`` (one XADD: durable with the AOF,
and no SQLite lock on the request path — a "next" press must not wait for the persister's
transaction). The primary's duties process copies entries into the ``audit_log`` table in
the consumer group ``audit``, acknowledging and deleting them only after the commit, so an
entry is neither lost nor kept in Redis longer than needed.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Any, Protocol

import redis.asyncio as aioredis

from ..engine import redis_keys as keys
from ..queue_engine import Record
from ..runtime.stream_consumer import Batch, StreamConsumer
from .store import Store

log = logging.getLogger(__name__)

GROUP = "audit"
BATCH = 500
BLOCK_MS = 1000
LINGER_S = 0.1  # after a batch, let the next gather (as the persister and the notifier do)
STREAM_MAXLEN = 1_000_000  # a safety cap only: the copier deletes what it has written


class Context(Protocol):
    redis: aioredis.Redis
    store: Store


def entry(actor: str, action: str, target: str = "", ip: str = "") -> Record:
    """One entry. Callers pass ids ("user:3", "ticket:42"), never names or contacts. Handed to
    the engine, it is appended with the change it records (see :class:`Record`)."""
    at = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    return Record(keys.AUDIT, {"at": at, "actor": actor, "action": action, "target": target, "ip": ip},
                  STREAM_MAXLEN)


async def append(client: aioredis.Redis, e: Record) -> None:
    """Append one entry on its own (for actions that are not an engine change)."""
    await client.xadd(e.stream, dict(e.fields), maxlen=e.maxlen, approximate=True)


async def _write(store: Store, batch: Batch) -> None:
    """One batch in one transaction; the consumer acknowledges and deletes it after the commit."""
    async with store.transaction() as db:
        await db.executemany("INSERT INTO audit_log (at, actor, action, target, ip) VALUES (?, ?, ?, ?, ?)",
                             [(f["at"], f["actor"], f["action"], f["target"], f["ip"])
                              for entries in batch.values() for _, f in entries])


def consumer(client: aioredis.Redis, store: Store) -> StreamConsumer:
    """The copier: group ``audit`` on ``qt:audit``; entries are deleted once recorded (IP addresses
    are not kept in Redis longer than needed)."""
    async def handle(batch: Batch) -> None:
        await _write(store, batch)

    async def streams() -> list[str]:
        return [keys.AUDIT]

    return StreamConsumer(client, GROUP, "primary", handle, streams, delete=lambda _: True, batch=BATCH,
                          block_ms=BLOCK_MS, linger_s=LINGER_S, refresh_s=float("inf"), name="audit copier",
                          logger=log)


async def copy(client: aioredis.Redis, store: Store) -> int:
    """Copy what is waiting (first entries read before a crash, then new ones) into SQLite."""
    return await consumer(client, store).drain()


async def copy_loop(ctx: Context, stop: asyncio.Event) -> None:
    """The duty: copy as entries arrive until ``stop``; what a crash left is copied first."""
    await consumer(ctx.redis, ctx.store).run(stop)


async def entries(store: Store, *, start: str | None = None, end: str | None = None, actor: str | None = None,
                  action: str | None = None, before: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Recorded entries, newest first: ``start <= at < end`` (ISO 8601 UTC text, which sorts as
    time does), ``actor`` exactly, ``action`` exactly or, ending in ``.``, as a prefix
    (``ticket.``); ``before`` an entry id (the next page starts below the last id shown)."""
    prefix = action is not None and action.endswith(".")
    rows = await store.fetchall(
        "SELECT id, at, actor, action, target, ip FROM audit_log"
        " WHERE (:start IS NULL OR at >= :start) AND (:end IS NULL OR at < :end)"
        " AND (:actor IS NULL OR actor = :actor)"
        " AND (:action IS NULL OR (CASE WHEN :prefix THEN substr(action, 1, length(:action)) = :action"
        " ELSE action = :action END))"
        " AND (:before IS NULL OR id < :before)"
        " ORDER BY id DESC LIMIT :limit",
        {"start": start, "end": end, "actor": actor, "action": action, "prefix": prefix, "before": before,
         "limit": limit})
    return [dict(r) for r in rows]

