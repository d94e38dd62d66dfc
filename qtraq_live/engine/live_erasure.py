"""Erasure in the live state, for the privacy code beside the engine: a ticket's name blanked
in its live hash, and a clinic's event stream cut after the last event that carried one of a
set of tickets. Like ``live_reads``, this module is the engine's: only the engine and these
two modules name the live keys (``qt:c/q/t…``).
"""

from __future__ import annotations

import asyncio
import logging
import time

import redis.asyncio as aioredis

from ..queue_engine import parse_event
from . import redis_keys as keys

log = logging.getLogger(__name__)

ACK_WAIT_S = 5.0  # how long erasure waits for the persister/notifier to acknowledge the named events
SCAN_CHUNK = 1000

# Only a ticket that still exists: a blanked field on an expired key would leave a stray hash.
BLANK_NAME_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'name', '')
  return 1
end
return 0
"""


async def blank_names(conn: aioredis.Redis, ticket_ids: list[int]) -> int:
    """Blank the name in each live ticket hash that still exists; how many there were."""
    if not ticket_ids:
        return 0
    script = conn.register_script(BLANK_NAME_LUA)
    return sum([int(await script(keys=[keys.ticket(tid)])) for tid in ticket_ids])


async def ticket_clinics(conn: aioredis.Redis, ticket_ids: list[int]) -> set[str]:
    """The clinics of the tickets still live (for the streams to cut)."""
    found = set()
    for tid in ticket_ids:
        clinic = await conn.hget(keys.ticket(tid), "clinic")
        if clinic:
            found.add(clinic.decode() if isinstance(clinic, bytes) else str(clinic))
    return found


async def _last_named(conn: aioredis.Redis, stream: str, ids: set[int]) -> int:
    """The highest stream version whose event carries one of the tickets (0: none)."""
    last, start = 0, "-"
    while True:
        entries = await conn.xrange(stream, min=start, max="+", count=SCAN_CHUNK)
        for entry_id, fields in entries:
            event = parse_event(fields["e"])
            if any(int(t.get("id", 0)) in ids for t in event["tickets"] if isinstance(t, dict)):
                last = int(entry_id.split("-")[0])
        if len(entries) < SCAN_CHUNK:
            return last
        start = "(" + entries[-1][0]


async def _acknowledged(conn: aioredis.Redis, stream: str) -> int:
    """The highest version every consumer group of the stream is done with."""
    done = 2**62
    for group in await conn.xinfo_groups(stream):
        if group["pending"]:
            oldest = await conn.xpending(stream, group["name"])
            done = min(done, int(str(oldest["min"]).split("-")[0]) - 1)
        else:
            done = min(done, int(str(group["last-delivered-id"]).split("-")[0]))
    return done


async def cut_events(conn: aioredis.Redis, clinic: str, ticket_ids: set[int]) -> None:
    """Cut the clinic's event stream after the last event that carried one of the tickets, once
    its consumers acknowledged it (waiting briefly; a screen resuming from before gets a fresh
    snapshot). The client decodes responses."""
    stream = keys.events(clinic)
    last = await _last_named(conn, stream, ticket_ids)
    if not last:
        return
    deadline = time.monotonic() + ACK_WAIT_S
    while await _acknowledged(conn, stream) < last and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # the persister and notifier acknowledge within moments
    cut = min(last, await _acknowledged(conn, stream))
    trimmed = await conn.xtrim(stream, minid=f"{cut + 1}-0", approximate=False)
    if cut < last:
        log.warning("erasure: %d stream events still unacknowledged; the retention purge removes them", last - cut)
    log.info("erasure: %d stream events cut", trimmed)
