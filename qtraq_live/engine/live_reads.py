"""Reads of the live queue state for the processes beside the engine (the persister, the RQ
notice jobs): only the engine (``queue_engine`` and its Lua) and this module, which the engine
owns, name the live keys (``qt:c/q/t…``). Nothing here writes.

The persister's reads are async and batched in one round trip; the notice jobs run in RQ's
synchronous workers and get sync variants on a plain ``redis.Redis``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis
import redis.asyncio as aioredis

from . import redis_keys as keys


def _text(v: bytes | str | None) -> str | None:
    return None if v is None else v.decode() if isinstance(v, bytes) else str(v)


# -- definitions (async) -----------------------------------------------------------------------

async def clinic_field(conn: aioredis.Redis, clinic: str, name: str) -> str | None:
    """One field of a clinic's live hash (its name, language, timezone ...), None when absent."""
    return _text(await conn.hget(keys.clinic(clinic), name))


async def clinic_exists(conn: aioredis.Redis, clinic: str) -> bool:
    return bool(await conn.exists(keys.clinic(clinic)))


# -- the persister (async) ----------------------------------------------------------------------

@dataclass
class Extras:
    """What a batch of events needs from the live state besides the events: issued tickets'
    tokens, clinics' arrival stamps, and per queue when each counter last pressed "next" and
    its whole hash (the persister keeps what no column holds)."""

    tokens: dict[int, str] = field(default_factory=dict)
    arrival: dict[str, int] = field(default_factory=dict)
    seen: dict[str, dict[str, str]] = field(default_factory=dict)
    queues: dict[str, dict[str, str]] = field(default_factory=dict)


async def persister_extras(conn: aioredis.Redis, tickets: list[int], clinics: list[str],
                           queues: list[str]) -> Extras:
    """One round trip for a batch (the client decodes responses)."""
    out = Extras()
    if not (tickets or clinics or queues):
        return out
    async with conn.pipeline(transaction=False) as pipe:
        for tid in tickets:
            pipe.hget(keys.ticket(tid), "token")
        for c in clinics:
            pipe.get(keys.arrival(c))
        for q in queues:
            pipe.hgetall(keys.counters_seen(q))
            pipe.hgetall(keys.queue(q))
        replies = await pipe.execute()
    out.tokens = {tid: tok for tid, tok in zip(tickets, replies) if tok}
    rest = replies[len(tickets):]
    out.arrival = {c: int(v) for c, v in zip(clinics, rest) if v}
    rest = rest[len(clinics):]
    for i, q in enumerate(queues):
        out.seen[q] = rest[2 * i]
        if rest[2 * i + 1]:
            out.queues[q] = rest[2 * i + 1]
    return out


def ticket_keys(ticket_id: int, token: str | None) -> list[str]:
    """The live keys a ticket holds (its hash, its token's key): the persister has the engine's
    script (``lua/persisted.lua``) expire them once the ticket is final."""
    return [keys.ticket(ticket_id)] + ([keys.token(token)] if token else [])


# -- notice jobs (sync) ---------------------------------------------------------------------------

def ticket_status(conn: redis.Redis, ticket_id: int | str) -> tuple[str, str, bool] | None:
    """(status, queue, notices on) of a live ticket, or None when it is gone."""
    status, queue, notify = (_text(v) for v in conn.hmget(keys.ticket(ticket_id), "status", "queue", "notify"))
    if status is None:
        return None
    return status, queue or "", notify == "1"


def waiting_rank(conn: redis.Redis, queue: str, ticket_id: int | str) -> int | None:
    """How many wait ahead of the ticket in its queue, or None when it is not waiting."""
    rank = conn.zrank(keys.waiting(queue), str(ticket_id))
    return None if rank is None else int(rank)


def queue_paused(conn: redis.Redis, queue: str) -> bool:
    return _text(conn.hget(keys.queue(queue), "paused")) == "1"


def ticket_token(conn: redis.Redis, ticket_id: int | str) -> str | None:
    """The ticket's tracking token while it is live."""
    return _text(conn.hget(keys.ticket(ticket_id), "token"))
