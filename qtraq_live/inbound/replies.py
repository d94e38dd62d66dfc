"""One patient message handled: rate limit, once per gateway message id, act, answer.

The steps, in order:
1. rate limit per sender number (``[inbound] rate_limit`` per 10 minutes): over it,
   :class:`~qtraq_live.errors.RateLimited` and nothing else happens;
2. the message id is claimed (``SET NX``): a gateway's retry of a handled message is a
   ``duplicate`` and changes nothing;
3. the sender's current tickets (senders.py); none: nothing changes and nothing is sent;
4. the keyword's action on each ticket (``LATE`` through the engine's ``move_back``, ``CANCEL``
   through ``cancel``, both as actor ``patient``), and one answer per ticket (one help text for
   anything else), asked of the notifier on the channel the message came by.

If a step after the claim fails (Redis or SQLite unreachable) the claim is released, so the
gateway's retry does the work. Logs carry the channel, a digest of the message id and the
intent: never the number or the text.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis

from ..config import Settings
from ..engine import live_reads
from ..engine import redis_keys as keys
from ..errors import Conflict
from ..queue_engine import QueueEngine, TicketStatus
from ..record.store import Store
from ..web import ratelimit
from ..workers.notices import enqueue_account_notice
from .keywords import Intent, intent_of
from .payloads import Message
from .senders import Held, current_tickets

log = logging.getLogger(__name__)

SEEN_S = 7 * 86400  # gateways retry for up to a few days (Meta: 7)
RATE_WINDOW_S = 600
PATIENT = "patient"  # the engine actor: the notifier sends no "cancelled" notice for it
Json = dict[str, Any]


def _eta_min(ticket: Mapping[str, Any]) -> int:
    return max(1, round(int(ticket["eta_s"]) / 60)) if ticket.get("eta_s") is not None else 0


async def _context(engine: QueueEngine, redis: aioredis.Redis, ticket: Mapping[str, Any], places: int) -> Json:
    queue = await engine.get_queue(ticket["queue"])
    clinic = await live_reads.clinic_field(redis, ticket["clinic"], "name")
    return {"clinic": clinic or "", "queue": queue["name"] if queue else "", "label": ticket["label"],
            "ahead": ticket.get("ahead") or 0, "eta_min": _eta_min(ticket),
            "counter": (ticket.get("counter") or "") if ticket["status"] != TicketStatus.WAITING else "",
            "places": places}


async def _act(engine: QueueEngine, intent: Intent, held: Held, places: int) -> tuple[str, Json]:
    """Do what the patient asked for one ticket: ``(answer kind, the ticket afterwards)``."""
    ticket = held.ticket
    waiting = ticket["status"] == TicketStatus.WAITING
    try:
        if intent == Intent.LATE and waiting:
            return "reply_late", await engine.move_back(ticket["id"], places, actor=PATIENT)
        if intent == Intent.CANCEL:
            return "reply_cancelled", await engine.cancel(ticket["id"], actor=PATIENT)
    except Conflict:  # moved back before, nobody behind, or it changed meanwhile
        fresh = await engine.ticket(ticket["id"]) or ticket
        if fresh["status"] in (TicketStatus.CALLED, TicketStatus.SERVING):
            return "called", fresh
        return ("reply_late_refused" if intent == Intent.LATE else "reply_status"), fresh
    if ticket["status"] in (TicketStatus.CALLED, TicketStatus.SERVING):
        return "called", ticket  # whatever they asked, the answer is the call again
    if ticket["status"] == TicketStatus.SKIPPED:
        return "skipped", ticket  # called and missed: reception puts them back
    if intent == Intent.YES and waiting:
        return "reply_confirmed", ticket
    return "reply_status", ticket


async def handle(settings: Settings, redis: aioredis.Redis, engine: QueueEngine, store: Store,
                 msg: Message) -> str:
    """Handle one message; returns what happened (``duplicate``, ``no_ticket``, the intent …)."""
    tag = keys.secret_hash(msg.id)[:12]
    if msg.sender is None:
        log.info("inbound %s message %s: sender number unreadable; ignored", msg.channel, tag)
        return "unknown_sender"
    await ratelimit.hit(redis, f"inbound-{msg.channel}", msg.sender, settings["inbound.rate_limit"], RATE_WINDOW_S)
    seen = keys.inbound_seen(msg.channel, msg.id)
    if not await redis.set(seen, "1", nx=True, ex=SEEN_S):
        log.info("inbound %s message %s: already handled", msg.channel, tag)
        return "duplicate"
    try:
        outcome = await _answer(settings, redis, engine, store, msg, tag)
    except BaseException:
        await redis.delete(seen)  # not handled: the gateway's retry will do it
        raise
    return outcome


async def _answer(settings: Settings, redis: aioredis.Redis, engine: QueueEngine, store: Store,
                  msg: Message, tag: str) -> str:
    assert msg.sender is not None
    intent, word_lang = intent_of(msg.text)
    held = await current_tickets(store, engine, redis, msg.sender)
    if not held:
        log.info("inbound %s message %s: no current ticket with consent for this number; nothing done",
                 msg.channel, tag)
        return "no_ticket"
    places = settings["inbound.late_places"]
    for h in held if intent != Intent.HELP else held[:1]:
        kind, ticket = ("reply_help", h.ticket) if intent == Intent.HELP else await _act(engine, intent, h, places)
        clinic_lang = await live_reads.clinic_field(redis, ticket["clinic"], "lang")
        # A keyword in another language than English gets its answer in that language.
        lang = (word_lang if word_lang not in (None, "en") else None) or h.lang or ticket.get("lang") \
            or clinic_lang or settings["notify.default_lang"]
        await enqueue_account_notice(
            redis, kind=kind, to=msg.sender, channel=msg.channel, lang=lang,
            context=await _context(engine, redis, ticket, places),
            dedupe_key=f"in:{msg.channel}:{keys.secret_hash(msg.id)[:40]}:t{ticket['id']}",
            subject=h.subject, clinic=ticket["clinic"])
    log.info("inbound %s message %s: %s on %d ticket(s)", msg.channel, tag, intent.value, len(held))
    return intent.value
