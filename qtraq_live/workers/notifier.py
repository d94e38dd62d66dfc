"""The notifier: a duty of the primary that turns events into notices and RQ jobs.

It reads every clinic's event stream and the request stream ``qt:notice:requests`` in the
consumer group ``notify``; a batch is acknowledged only after its notices are recorded and
enqueued (ledger.create), so a crash replays it and the dedupe keys add nothing twice. A
:class:`~qtraq_live.realtime.mirror.Mirror` per clinic knows every waiting ticket's place without
asking Redis. Alongside it runs the upkeep (abandoned RQ jobs, long pauses) and the copy of
the delivery stream into SQLite.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, cast

import redis
import redis.asyncio as aioredis
from rq.registry import StartedJobRegistry
from rq.timeouts import TimerDeathPenalty

from ..config import Settings
from ..engine import redis_keys as keys
from ..queue_engine import QueueEngine, parse_event
from ..realtime.mirror import Mirror
from ..record.store import Store
from ..runtime import redis_conn
from ..runtime.stream_consumer import Batch, StreamConsumer
from . import channels, delivery_log, ledger, overrides, webpush
from .ledger import Notice
from .recipients import AppointmentHook, Recipient, ticket_recipients
from .render import KINDS, QUEUES
from .triggers import Trigger, ahead_triggers, finished, pause_triggers, status_triggers

log = logging.getLogger(__name__)

GROUP = "notify"
CONSUMER = "notifier"
BATCH = 200
BLOCK_MS = 500
LINGER_S = 0.1  # after a short batch, let the next gather: per-batch work dominates under load
STALE_EVENT_MS = 10 * 60 * 1000  # events older than this (a first start, a long outage) send nothing
CLINIC_REFRESH_S = 2.0
UPKEEP_S = 2.0


class Context(Protocol):
    settings: Settings
    redis: aioredis.Redis
    engine: QueueEngine
    store: Store


def sweep_abandoned(conn: redis.Redis) -> None:
    """Retry (or fail) jobs whose worker died; RQ's own workers look only every 10 min."""
    for name in QUEUES:
        StartedJobRegistry(name, connection=conn, death_penalty_class=TimerDeathPenalty).cleanup()


def public_base(settings: Settings) -> str:
    return (settings["server.public_url"] or f"http://{settings['server.host']}:{settings['server.port']}").rstrip("/")


class Notifier:
    """State of one notifier run: a mirror per clinic, who was told their place, open pauses."""

    def __init__(self, ctx: Context, appointments: AppointmentHook | None = None) -> None:
        self.ctx = ctx
        self.appointments = appointments  # who hears about an appointment's ticket (accounts area)
        self.settings = ctx.settings
        self.redis = ctx.redis
        self.base_channels = channels.configured(ctx.settings)
        if self.base_channels and not ctx.settings["server.public_url"]:
            log.warning("server.public_url is not set: tracking links in notices use %s", public_base(ctx.settings))
        self.rq = redis_conn.sync_client(ctx.settings, decode=False)
        self.mirrors: dict[str, Mirror] = {}
        self.told_ahead: set[int] = set()
        self.paused: dict[str, tuple[str, int, int]] = {}  # queue -> (clinic, since ms, version)
        self.pause_told: set[tuple[str, int]] = set()
        self.consumer = StreamConsumer(self.redis, GROUP, CONSUMER, self.handle, self.streams,
                                       delete=lambda stream: stream == keys.NOTICE_REQUESTS, batch=BATCH,
                                       block_ms=BLOCK_MS, linger_s=LINGER_S, refresh_s=CLINIC_REFRESH_S,
                                       name="notifier", logger=log)

    # -- clinics and mirrors -----------------------------------------------------------

    async def add_clinic(self, clinic: str) -> None:
        """Follow a clinic: its mirror first, then its stream (pending entries included)."""
        await self.rebuild_mirror(clinic)
        self.consumer.refresh_now()

    async def rebuild_mirror(self, clinic: str) -> Mirror:
        mirror = Mirror(await self.ctx.engine.clinic_state(clinic), keep_events=1)
        self.mirrors[clinic] = mirror
        now = int(time.time() * 1000)
        for q in mirror.queues.values():
            if q["paused"] and q["id"] not in self.paused:
                self.paused[q["id"]] = (clinic, now, mirror.version)  # how long before: unknown
        return mirror

    async def streams(self) -> list[str]:
        """What the consumer reads: the requests, and the stream of every clinic (a new clinic's
        mirror is made before its stream is read)."""
        for clinic in await self.ctx.engine.clinic_ids():
            if clinic not in self.mirrors:
                await self.rebuild_mirror(clinic)
        return [keys.NOTICE_REQUESTS, *(keys.events(c) for c in self.mirrors)]

    # -- reading ---------------------------------------------------------------------

    async def handle(self, batch: Batch) -> None:
        """One batch; the consumer acknowledges it (and deletes the requests) afterwards."""
        for stream, entries in batch.items():
            if stream == keys.NOTICE_REQUESTS:  # codes and addresses: deleted once handled
                requests = [fields for _, fields in entries]
                fallbacks = await self.fallback_notices(requests)
                if fallbacks:
                    await asyncio.to_thread(self.create_all, fallbacks)
                await asyncio.to_thread(self.handle_requests, requests)
                continue
            clinic = keys.clinic_of_events(stream)
            if clinic is None or clinic not in self.mirrors:
                continue
            notices = await self.notices_for(clinic, await self.triggers_for(clinic, entries))
            if notices:  # most batches have none: no hop to a thread for nothing
                await asyncio.to_thread(self.create_all, notices)

    async def events_loop(self, stop: asyncio.Event) -> None:
        await self.consumer.run(stop)

    # -- events -> triggers -> notices ---------------------------------------------------

    async def triggers_for(self, clinic: str, entries: Sequence[tuple[str, Mapping[str, str]]]) -> list[Trigger]:
        out: list[Trigger] = []
        fresh_after = int(time.time() * 1000) - STALE_EVENT_MS
        for _, fields in entries:
            ev = parse_event(fields["e"])
            mirror = self.mirrors[clinic]
            outcome = mirror.apply(ev)
            if outcome == "gap":
                log.warning("clinic %s: events were trimmed before the notifier read them; mirror rebuilt", clinic)
                mirror = await self.rebuild_mirror(clinic)
            applied = outcome == "applied"
            self.track_pause(clinic, ev)
            if int(ev["at"]) >= fresh_after:
                out += status_triggers(ev, mirror) + ahead_triggers(ev, mirror, self.told_ahead, applied)
            self.told_ahead.difference_update(finished(ev))
        return out

    def track_pause(self, clinic: str, ev: Mapping[str, Any]) -> None:
        for q in ev["queues"]:
            if ev["type"] == "paused":
                self.paused[q["id"]] = (clinic, int(ev["at"]), int(ev["v"]))
            elif ev["type"] == "resumed":
                self.paused.pop(q["id"], None)

    async def available(self, clinic: str) -> dict[str, str]:
        override = cast(dict[str, str], await self.redis.hgetall(keys.notify_channels(clinic)))
        return channels.effective(self.base_channels, override)

    async def notices_for(self, clinic: str, triggers: Sequence[Trigger]) -> list[Notice]:
        if not triggers:
            return []
        mirror, available = self.mirrors[clinic], await self.available(clinic)
        recipients: dict[int, list[Recipient]] = {}  # per batch only: contacts are not kept in memory
        out: list[Notice] = []
        for tr in triggers:
            t, tid = tr.ticket, int(tr.ticket["id"])
            if tid not in recipients:
                recipients[tid] = await self.recipients_of(t, available)
            context = {"clinic": mirror.clinic["name"], "queue": mirror.queues[t["queue"]]["name"],
                       "label": t["label"], **tr.context}
            if tr.kind in ("issued", "feedback_request"):  # the ticket page also takes the rating
                token = await self.ctx.engine.ticket_token(tid)
                context["track_url"] = f"{public_base(self.settings)}/t/{token}"
            for r in recipients[tid]:
                lang = t.get("lang") or r.lang or mirror.clinic.get("lang") or self.settings["notify.default_lang"]
                out.append(Notice(key=f"{tr.dedupe}:{r.channel}", kind=tr.kind, channel=r.channel, to=r.to,
                                  lang=lang, context=context, queue=KINDS[tr.kind], subject=r.subject,
                                  clinic=clinic, ticket=tid, check=tr.check))
        return out

    async def recipients_of(self, ticket: Mapping[str, Any], available: Mapping[str, str]) -> list[Recipient]:
        """Web Push alone while the ticket has a subscription (free, so first); else its contacts."""
        tid = int(ticket["id"])
        if self.settings["notify.web_push"] and await self.redis.exists(keys.push_subscription(tid)):
            return [Recipient(webpush.WEB_PUSH, webpush.recipient(tid), None, f"ticket:{tid}")]
        return await ticket_recipients(self.ctx.store, ticket, available, self.appointments)

    async def fallback_notices(self, requests: Sequence[Mapping[str, str]]) -> list[Notice]:
        """A push notice whose subscription was gone: the same notice by the ticket's other
        channels, under the same key with their channel names."""
        out: list[Notice] = []
        for fields in requests:
            try:
                req = json.loads(fields["r"])
                if req.get("op") != "fallback":
                    continue
                ticket = await self.ctx.engine.ticket(int(req["ticket"]))
                if ticket is None:
                    continue
                base = str(req["key"]).rpartition(":")[0]
                for r in await ticket_recipients(self.ctx.store, ticket, await self.available(req["clinic"]),
                                                 self.appointments):
                    out.append(Notice(key=f"{base}:{r.channel}", kind=req["kind"], channel=r.channel, to=r.to,
                                      lang=req["lang"], context=req["context"], queue=KINDS[req["kind"]],
                                      subject=r.subject, clinic=req["clinic"], ticket=int(req["ticket"]),
                                      check=req["check"]))
            except (KeyError, TypeError, ValueError):
                log.error("push fallback request skipped: malformed", exc_info=True)
        return out

    def create_all(self, notices: Sequence[Notice]) -> None:
        for notice in notices:
            if ledger.create(self.rq, notice, self.settings):
                log.info("notice %s queued", notice.key)

    # -- requests: account notices and retries -------------------------------------------

    def handle_requests(self, requests: Sequence[Mapping[str, str]]) -> None:
        for fields in requests:
            try:
                self.handle_request(json.loads(fields["r"]))
            except (KeyError, TypeError, ValueError):  # a malformed request must not block the rest
                log.error("notice request skipped: malformed", exc_info=True)

    def handle_request(self, req: dict[str, Any]) -> None:
        if req["op"] == "fallback":
            return  # made into notices by fallback_notices, which needs the event loop
        if req["op"] == "retry":
            if ledger.requeue(self.rq, req["key"], self.settings):
                log.info("notice %s queued again by an admin", req["key"])
            return
        raw = cast(dict[bytes, bytes], self.rq.hgetall(keys.notify_channels(req["clinic"])) if req["clinic"] else {})
        override = {k.decode(): v.decode() for k, v in raw.items()}
        if req["channel"] not in channels.effective(self.base_channels, override):
            log.info("account notice %s skipped: channel %s is not configured", req["kind"], req["channel"])
            return
        self.create_all([Notice(key=f"a:{req['dedupe_key']}:{req['channel']}", kind=req["kind"],
                                channel=req["channel"], to=req["to"], lang=req["lang"],
                                context=req["context"], queue=KINDS[req["kind"]],
                                subject=req["subject"], clinic=req["clinic"])])

    # -- upkeep ------------------------------------------------------------------------

    async def pause_notices(self) -> None:
        due = int(time.time() * 1000) - self.settings["notify.pause_notice_min"] * 60_000
        for queue, (clinic, since, version) in list(self.paused.items()):
            if since > due or (queue, version) in self.pause_told or clinic not in self.mirrors:
                continue
            self.pause_told.add((queue, version))
            notices = await self.notices_for(clinic, pause_triggers(self.mirrors[clinic], queue, version))
            await asyncio.to_thread(self.create_all, notices)

    async def upkeep_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.to_thread(sweep_abandoned, self.rq)
            await self.pause_notices()
            try:
                await asyncio.wait_for(stop.wait(), UPKEEP_S)
            except TimeoutError:
                pass

    async def run(self, stop: asyncio.Event) -> None:
        await overrides.mirror_all(self.ctx.store, self.redis)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.events_loop(stop))
                tg.create_task(self.upkeep_loop(stop))
                tg.create_task(delivery_log.copy_loop(self.redis, self.ctx.store, stop))
        finally:
            self.rq.close()


async def run_notifier(ctx: Context, stop: asyncio.Event, appointments: AppointmentHook | None = None) -> None:
    """The duty: runs until ``stop`` is set. A bad channel URL raises ConfigError at once."""
    await Notifier(ctx, appointments).run(stop)
