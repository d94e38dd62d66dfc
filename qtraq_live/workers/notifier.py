"""The notifier: a duty of the primary that turns events into notices and RQ jobs.

It reads every clinic's event stream and the request stream ``qt:notice:requests`` in the
consumer group ``notify``; a batch is acknowledged only after its notices are recorded and
enqueued (ledger.create), so a crash replays it and the dedupe keys add nothing twice. A
:class:`~qtraq_live.mirror.Mirror` per clinic knows every waiting ticket's place without
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

from .. import redis_conn
from .. import redis_keys as keys
from ..config import Settings
from ..mirror import Mirror
from ..queue_engine import QueueEngine, parse_event
from ..store import Store
from . import channels, delivery_log, ledger, overrides
from .delivery_log import Entries, ensure_group, entries_of
from .ledger import Notice
from .recipients import Recipient, ticket_recipients
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

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
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

    # -- clinics and mirrors -----------------------------------------------------------

    async def add_clinic(self, clinic: str) -> None:
        await ensure_group(self.redis, keys.events(clinic), GROUP)
        await self.rebuild_mirror(clinic)
        await self.drain(keys.events(clinic))

    async def rebuild_mirror(self, clinic: str) -> Mirror:
        mirror = Mirror(await self.ctx.engine.clinic_state(clinic), keep_events=1)
        self.mirrors[clinic] = mirror
        now = int(time.time() * 1000)
        for q in mirror.queues.values():
            if q["paused"] and q["id"] not in self.paused:
                self.paused[q["id"]] = (clinic, now, mirror.version)  # how long before: unknown
        return mirror

    async def refresh_clinics(self) -> None:
        for clinic in await self.ctx.engine.clinic_ids():
            if clinic not in self.mirrors:
                await self.add_clinic(clinic)

    # -- reading ---------------------------------------------------------------------

    async def drain(self, stream: str) -> None:
        """Handle what this consumer read before a crash but never acknowledged."""
        while True:
            entries = entries_of(await self.redis.xreadgroup(GROUP, CONSUMER, {stream: "0"}, count=BATCH))
            if not entries:
                return
            await self.handle(stream, entries)

    async def handle(self, stream: str, entries: Entries) -> None:
        ids = [entry_id for entry_id, _ in entries]
        if stream == keys.NOTICE_REQUESTS:
            await asyncio.to_thread(self.handle_requests, [fields for _, fields in entries])
            await self.redis.xack(stream, GROUP, *ids)
            await self.redis.xdel(stream, *ids)  # codes and addresses: not kept once handled
            return
        clinic = stream.split(":")[2]
        notices = await self.notices_for(clinic, await self.triggers_for(clinic, entries))
        if notices:  # most batches have none: no hop to a thread for nothing
            await asyncio.to_thread(self.create_all, notices)
        await self.redis.xack(stream, GROUP, *ids)

    async def events_loop(self, stop: asyncio.Event) -> None:
        await ensure_group(self.redis, keys.NOTICE_REQUESTS, GROUP)
        await self.drain(keys.NOTICE_REQUESTS)
        refreshed = 0.0
        while not stop.is_set():
            if time.monotonic() - refreshed > CLINIC_REFRESH_S:
                await self.refresh_clinics()
                refreshed = time.monotonic()
            streams: dict[Any, Any] = {keys.NOTICE_REQUESTS: ">", **{keys.events(c): ">" for c in self.mirrors}}
            answer = cast(list[tuple[str, Entries]],
                          await self.redis.xreadgroup(GROUP, CONSUMER, streams, count=BATCH, block=BLOCK_MS) or [])
            for stream, entries in answer:
                await self.handle(stream, entries)
            if 0 < sum(len(entries) for _, entries in answer) < BATCH:
                await asyncio.sleep(LINGER_S)

    # -- events -> triggers -> notices ---------------------------------------------------

    async def triggers_for(self, clinic: str, entries: Entries) -> list[Trigger]:
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
                recipients[tid] = await ticket_recipients(self.ctx.store, t, available)
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


async def run_notifier(ctx: Context, stop: asyncio.Event) -> None:
    """The duty: runs until ``stop`` is set. A bad channel URL raises ConfigError at once."""
    await Notifier(ctx).run(stop)
