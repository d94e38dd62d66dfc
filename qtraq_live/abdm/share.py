"""One share → a ticket in the live queue and an on-share reply on its way.

The ticket is issued by the same call as a walk-in's (``api.issue.issue_walk_in``: the engine's
``issue``, source ``abdm``), so a shared profile *is* a live ticket: the TV, reception and the
patient's watch page see it like any other. A share is handled once per inbound REQUEST-ID
(a redelivery adds nothing), and once per (hipId, counter, ABHA address) for
:data:`protocol.DEDUPE_S`: a repeat share within that time gets the same ticket back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from ..api.issue import issue_walk_in
from ..config import Settings
from ..engine import redis_keys as keys
from ..errors import QtraqError
from ..metrics import ABDM_SHARES
from ..queue_engine import QueueEngine, TicketSource
from ..record.store import Store
from . import jobs, records
from .protocol import DEDUPE_S, Share, ShareError, on_share_error, on_share_success

log = logging.getLogger(__name__)

PENDING = "pending"
WAIT_FOR_TWIN_S = 5.0  # a simultaneous identical share waits this long for the first one's ticket
ACTOR = "abdm"


@dataclass
class Bridge:
    """What handling a share needs, made once per process by the routes."""

    settings: Settings
    redis: aioredis.Redis
    engine: QueueEngine
    store: Store
    rq_conn: redis.Redis  # sync, for RQ


async def accept(bridge: Bridge, share: Share, request_id: str) -> str:
    """Handle one checked share; returns its outcome (the metric's label)."""
    if await bridge.redis.exists(keys.abdm_reply(request_id)):
        ABDM_SHARES.labels("duplicate").inc()
        log.info("abdm: share %s delivered again: ignored", request_id)
        return "duplicate"
    try:
        ticket, outcome = await _ticket_for(bridge, share, request_id)
        body = on_share_success(request_id, share.abha_address, share.context, ticket["label"],
                                await _expiry_s(bridge.redis, share))
    except ShareError as exc:
        outcome, body = "refused", on_share_error(request_id, exc.code, exc.message)
        log.info("abdm: share %s refused: %s", request_id, exc.code)
    queued = await asyncio.to_thread(jobs.enqueue, bridge.rq_conn, bridge.settings, request_id, body)
    if not queued:  # a redelivery raced this one to the reply: it answers
        outcome = "duplicate"
    ABDM_SHARES.labels(outcome).inc()
    return outcome


async def _expiry_s(redis_: aioredis.Redis, share: Share) -> int:
    left = await redis_.ttl(keys.abdm_share(share.dedupe_digest()))
    return int(left) if left and left > 0 else DEDUPE_S


def queue_for(settings: Settings, share: Share) -> str:
    """The queue of the counter the patient scanned; :class:`ShareError` when this bridge does
    not serve that facility or counter."""
    if share.hip_id != settings["abdm.hip_id"]:
        raise ShareError("UNKNOWN_HIP", "this bridge does not serve that facility")
    queue = settings["abdm.counters"].get(share.context)
    if not queue:
        raise ShareError("UNKNOWN_COUNTER", f"no queue serves counter {share.context}")
    return str(queue)


async def _ticket_for(bridge: Bridge, share: Share, request_id: str) -> tuple[dict[str, Any], str]:
    """A new ticket, or the one this ABHA address got at this counter within the last 30 minutes."""
    queue_id = queue_for(bridge.settings, share)
    slot = keys.abdm_share(share.dedupe_digest())
    if not await bridge.redis.set(slot, PENDING, nx=True, ex=DEDUPE_S):
        return await _repeat(bridge, slot), "repeat"
    try:
        queue = await bridge.engine.get_queue(queue_id)
        if queue is None:
            raise ShareError("UNKNOWN_COUNTER", f"counter {share.context} names no queue here")
        if queue["paused"]:
            raise ShareError("QUEUE_PAUSED", "this counter's queue is paused; please ask at the desk")
        notify = bool(bridge.settings["abdm.send_link"] and share.phone)
        ticket = await issue_walk_in(bridge.engine, bridge.store, queue_id, name=share.name,
                                     mobile=share.phone if notify else None, email=None, notify=notify,
                                     lang=None, priority=0, actor=ACTOR, source=TicketSource.ABDM)
    except ShareError:
        await bridge.redis.delete(slot)
        raise
    except QtraqError as exc:
        await bridge.redis.delete(slot)
        log.warning("abdm: share %s: no ticket: %s", request_id, exc.code)
        raise ShareError("UNAVAILABLE", "no token could be issued; please ask at the desk") from None
    await bridge.redis.set(slot, str(ticket["id"]), xx=True, keepttl=True)
    now_ms = int(time.time() * 1000)
    async with bridge.store.transaction() as db:
        await records.save(db, share, request_id=request_id, clinic=ticket["clinic"], queue=queue_id,
                           ticket_id=ticket["id"], label=ticket["label"], notify=notify, now_ms=now_ms,
                           keep_days=bridge.settings["abdm.profile_days"])
    log.info("abdm: share %s: ticket %s issued at queue %s", request_id, ticket["id"], queue_id)
    return ticket, "issued"


async def _repeat(bridge: Bridge, slot: str) -> dict[str, Any]:
    """The ticket of an earlier share of the same (hipId, counter, ABHA address)."""
    deadline = time.monotonic() + WAIT_FOR_TWIN_S
    while True:
        held = await bridge.redis.get(slot)
        if held and held != PENDING:
            ticket = await bridge.engine.ticket(int(held))
            if ticket is not None:
                return ticket
            raise ShareError("UNAVAILABLE", "the earlier token is no longer known; please share again")
        if held is None or time.monotonic() > deadline:
            raise ShareError("UNAVAILABLE", "an identical share is still being handled; please try again")
        await asyncio.sleep(0.05)
