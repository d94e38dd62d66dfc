"""WebSocket fan-out: one stream reader per process, which renders and sends every message.

The reader XREADs the event streams of the clinics that have local subscribers, applies each
event to that clinic's :class:`~qtraq_live.realtime.mirror.Mirror` and hands the resulting messages to
:class:`~qtraq_live.realtime.hub_send.Outbox`, which sends them inline to sockets that keep up and
queues them (bounded; an overflow becomes one fresh snapshot) for those that do not. Sockets
are opened, authenticated and served in :mod:`qtraq_live.realtime.hub_sockets`.
Nothing here is authoritative: keys, sessions and tokens are read from Redis on connect and the
mirrors are rebuilt from Redis, so any number of ``--role hub`` processes can serve sockets.
Design and message shapes: ``docs/fanout.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Coroutine
from typing import Any

import redis.asyncio as aioredis

from . import metrics
from .config import Settings
from .engine import redis_keys as keys
from .errors import QtraqError, Unauthorized, Unavailable
from .queue_engine import QueueEngine, parse_event
from .realtime.hub_index import ClinicSubscribers
from .realtime.hub_send import Outbox, Subscriber, message
from .realtime.mirror import Json, Mirror, call_of, dumps, touched_queues
from .runtime import redis_conn

log = logging.getLogger(__name__)

READ_BLOCK_MS = 5000
READ_COUNT = 500
RETRY_S = 1.0  # pause after a Redis error in the reader
WAKE_TTL_S = 3600
CATCH_UP_S = 10.0  # longest a connecting socket waits for the mirror to reach its version
KEY_CHECK_S = 2.0  # how soon a screen whose display key was revoked is closed
REPLAY_MAX = 2000  # a longer absence is answered with a snapshot


class Hub:
    """Per-process fan-out. ``start()``/``stop()`` run in the app's lifespan."""

    def __init__(self, engine: QueueEngine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.limit: int = settings["hub.send_queue"]
        self._serving_clear_ms: int = settings["display.serving_clear_min"] * 60_000
        self.outbox = Outbox(self.limit, self._snapshot, self._sent)
        self.mirrors: dict[str, Mirror] = {}
        self.subs: dict[str, ClinicSubscribers] = {}  # clinic -> its sockets, by queue and ticket
        self._loading: dict[str, asyncio.Task[Mirror]] = {}
        self._changed = asyncio.Event()  # the set of clinics to read changed
        self._tick = asyncio.Event()  # set (and replaced) whenever mirrors advance
        self._reader: asyncio.Task[None] | None = None
        self._key_watch: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._stream_redis: aioredis.Redis | None = None
        self._wake_key = keys.hub_wake(uuid.uuid4().hex)
        self._wake_seen = "0-0"
        self._calls: dict[str, tuple[int, int]] = {}  # clinic -> (version, event ms) of a call not yet sent
        self._sent_count = dict.fromkeys(metrics.WS_KINDS, 0)  # messages not yet in metrics.WS_SENT

    async def start(self) -> None:
        # its own client: a blocking read holds a connection, and outlasts the default timeout
        self._stream_redis = aioredis.from_url(redis_conn.redis_url(self.settings), decode_responses=True,
                                               socket_timeout=READ_BLOCK_MS / 1000 + 10)
        self._reader = asyncio.create_task(self._read_loop(), name="hub-reader")
        self._key_watch = asyncio.create_task(self._watch_display_keys(), name="hub-display-keys")

    async def stop(self) -> None:
        tasks = [t for t in (self._reader, self._key_watch, *self._loading.values(), *self._background)
                 if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for subs in list(self.subs.values()):
            for sub in list(subs):
                self.outbox.stop(sub)
                await _close(sub, 1001)
        with contextlib.suppress(*redis_conn.UNREACHABLE):
            await self.engine.redis.delete(self._wake_key)
        if self._stream_redis is not None:
            await self._stream_redis.aclose()

    # -- subscribers -------------------------------------------------------------------

    def join(self, sub: Subscriber) -> None:
        """Count ``sub`` as a subscriber of its clinic (which pins the clinic's mirror)."""
        subs = self.subs.get(sub.clinic)
        if subs is None:
            subs = self.subs[sub.clinic] = ClinicSubscribers()
        subs.add(sub)

    def place(self, sub: Subscriber, queue: str) -> None:
        """A patient socket's ticket is in ``queue`` (as of the mirror's version): from now
        on the changes of that queue reach it."""
        subs = self.subs.get(sub.clinic)
        if subs is not None and sub.ticket_id is not None:
            subs.place(sub.ticket_id, queue)

    def leave(self, sub: Subscriber) -> None:
        self.outbox.stop(sub)
        subs = self.subs.get(sub.clinic)
        if subs is None:
            return
        subs.remove(sub)
        if not subs:
            del self.subs[sub.clinic]
            if self.mirrors.pop(sub.clinic, None) is not None:
                self._clinics_changed()

    # -- the reader --------------------------------------------------------------------

    async def _read_loop(self) -> None:
        while True:
            self._changed.clear()
            streams = {keys.events(c): f"{m.version}-0" for c, m in self.mirrors.items()}
            if not streams:
                await self._changed.wait()
                continue
            streams[self._wake_key] = self._wake_seen
            assert self._stream_redis is not None
            try:
                batches = await self._stream_redis.xread(streams, count=READ_COUNT, block=READ_BLOCK_MS)
            except redis_conn.UNREACHABLE:
                metrics.REDIS_ERRORS.inc()
                log.warning("event stream read failed; closing this process's sockets and retrying", exc_info=True)
                self._close_all(Unavailable.close_code)
                await asyncio.sleep(RETRY_S)
                continue
            for stream, entries in batches or []:
                if stream == self._wake_key:
                    self._wake_seen = entries[-1][0]
                    continue
                clinic = stream.split(":")[2]
                for _, fields in entries:
                    try:
                        self._dispatch(clinic, fields["e"])
                    except Exception:  # one bad event must not stop every screen of the process
                        log.exception("clinic %s: fan-out of an event failed; resyncing", clinic)
                        self._rebuild(clinic)
                        break
                    # let the sends of slow sockets progress between events: a burst read in one
                    # batch must not overflow the queue of a socket that is merely a little behind
                    await asyncio.sleep(0)
            self._advance()

    def _close_all(self, code: int) -> None:
        """Redis is gone: close every socket (1013, try again later), so screens and phones show
        "reconnecting" instead of a frozen picture, and resume with ``since=`` once it is back."""
        for subs in self.subs.values():
            for sub in subs:
                self._spawn(_close(sub, code), "hub-close")

    async def _watch_display_keys(self) -> None:
        """Close the screens whose display key was revoked (new connections are refused at once)."""
        while True:
            await asyncio.sleep(KEY_CHECK_S)
            for clinic, subs in list(self.subs.items()):
                screens = subs.displays()
                if not screens:
                    continue
                try:
                    live = await self.engine.redis.smembers(keys.display_keys_of(clinic))
                except redis_conn.UNREACHABLE:
                    continue  # the reader closes everything while Redis is away
                for sub in screens:
                    if sub.key_hash not in live:
                        log.info("closing a screen of clinic %s: its display key was revoked", clinic)
                        self._spawn(_close(sub, Unauthorized.close_code), "hub-close")

    def _clinics_changed(self) -> None:
        """Read a new set of streams: wake the blocking XREAD through our own wake stream
        (cancelling a blocking command mid-flight would leave its connection in doubt)."""
        self._changed.set()
        self._spawn(self._wake(), "hub-wake")

    async def _wake(self) -> None:
        with contextlib.suppress(*redis_conn.UNREACHABLE):
            async with self.engine.redis.pipeline(transaction=False) as pipe:
                pipe.xadd(self._wake_key, {"w": "1"}, maxlen=1)
                pipe.expire(self._wake_key, WAKE_TTL_S)
                await pipe.execute()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _advance(self) -> None:
        self._tick.set()
        self._tick = asyncio.Event()
        for kind, n in self._sent_count.items():
            if n:
                metrics.WS_SENT[kind].inc(n)
                self._sent_count[kind] = 0

    def _dispatch(self, clinic: str, raw: str) -> None:
        m = self.mirrors.get(clinic)
        if m is None:
            return
        ev = parse_event(raw)
        outcome = m.apply(ev)
        if outcome == "gap":
            log.warning("clinic %s: event stream skipped versions; rebuilding its mirror", clinic)
            self._rebuild(clinic)
        if outcome != "applied":
            return
        index = self.subs.get(clinic)
        if index is None:
            return
        if ev.get("clinic_state"):  # a setting such as mask_names changed: render everything again
            for sub in index:
                if sub.active:
                    self.outbox.resync(sub)
            return
        # only what the change touched: its queues, the sockets that show them, their counts
        index.follow(ev["tickets"])
        queues = touched_queues(ev)
        counts = {q: len(m.waiting.get(q, ())) for q in queues}
        called = call_of(ev)
        if called is not None:
            self._calls[clinic] = (m.version, int(ev["at"]))
        call = None if called is None else dumps(
            {"type": "call", "version": m.version, "label": called["label"], "counter": called["counter"],
             "queue": called["queue"]})
        screens = index.screens_for(queues)
        if screens:
            self._dispatch_screens(m, ev, counts, screens, called, call)
        patients = index.patients_for(queues, [int(t["id"]) for t in ev["tickets"]])
        if patients:
            self._dispatch_patients(m, patients, called, call)

    def _dispatch_screens(self, m: Mirror, ev: Json, counts: dict[str, int], subs: list[Subscriber],
                          called: Json | None, call: str | None) -> None:
        """Displays and reception consoles: each update serialised once per kind and queue
        filter (every unfiltered display gets the same string); a display chimes for a call
        in a queue it shows."""
        rendered: dict[tuple[str, frozenset[str] | None], str | None] = {}
        push = self.outbox.push
        cleared = self.display_cleared_before()
        for sub in subs:
            if not sub.active:
                continue
            shown = (sub.kind, sub.allowed)
            if shown not in rendered:
                upd = (m.display_update(ev, counts, sub.allowed, cleared) if sub.kind == "display"
                       else m.reception_update(ev, counts, sub.allowed))
                rendered[shown] = None if upd is None else dumps(upd)
            text = rendered[shown]
            if text is None:
                continue
            push(sub, m.version, text)
            if call and sub.kind == "display" and (sub.allowed is None or called and called["queue"] in sub.allowed):
                push(sub, m.version, call)

    def _dispatch_patients(self, m: Mirror, subs: list[Subscriber], called: Json | None, call: str | None) -> None:
        """A patient gets its own flat view, only when it changed, and the call of its ticket.
        Each view is made right before its socket is sent to: the first phones need not wait
        for the last view (a big OPD makes 2,000 of them per press)."""
        make = m.patient_body_maker()
        called_id = int(called["id"]) if called is not None else None
        version = m.version
        head = message("update", version, "{}")[:-1] + ","  # each update: this head, then its view's fields
        push = self.outbox.push
        for sub in subs:
            tid = sub.ticket_id
            if not sub.active or tid is None:
                continue
            body = make(tid)
            if body is None:
                continue
            if body != sub.last:
                sub.last = body
                push(sub, version, head + body[1:])  # a view is never empty
            if call and tid == called_id:
                push(sub, version, call)

    def display_cleared_before(self) -> int:
        """Epoch ms before which a counter's call has left the TVs (``display.serving_clear_min``;
        0: never): a display frame carries no name of such a ticket, the screen no longer shows it."""
        return int(time.time() * 1000) - self._serving_clear_ms if self._serving_clear_ms else 0

    # -- what the outbox asks ----------------------------------------------------------

    def _snapshot(self, sub: Subscriber) -> tuple[int, str] | None:
        """A resync's snapshot of the socket's clinic as it is now (None: no mirror yet)."""
        m = self.mirrors.get(sub.clinic)
        if m is None:
            return None
        if sub.kind == "display":
            return m.version, dumps(m.display_snapshot(sub.allowed, self.display_cleared_before()))
        if sub.kind == "reception":
            return m.version, dumps(m.reception_snapshot(sub.allowed))
        view = m.patient_view(sub.ticket_id) if sub.ticket_id is not None else None
        sub.last = dumps(view) if view is not None else sub.last or "{}"
        return m.version, message("snapshot", m.version, sub.last)

    def _sent(self, sub: Subscriber, version: int) -> None:
        """Count a message (counted into the metric after each read: an increment costs more
        than an inline send's other bookkeeping); the first one of a call's version times press-to-send (a later
        version sent first means no socket got that call: nothing to time)."""
        self._sent_count[sub.kind] += 1
        call = self._calls.get(sub.clinic)
        if call is not None and version >= call[0]:
            del self._calls[sub.clinic]
            if version == call[0]:
                metrics.observe_press_to_send(call[1])

    # -- mirrors -----------------------------------------------------------------------

    async def mirror(self, clinic: str) -> Mirror:
        """The clinic's mirror, loading it (once, however many sockets ask) if needed."""
        m = self.mirrors.get(clinic)
        if m is not None:
            return m
        task = self._loading.get(clinic)
        if task is None:
            task = asyncio.create_task(self._load(clinic))
            self._loading[clinic] = task
        return await asyncio.shield(task)

    async def _load(self, clinic: str) -> Mirror:
        try:
            m = Mirror(await self.engine.clinic_state(clinic))
        finally:
            self._loading.pop(clinic, None)
        subs = self.subs.get(clinic)
        if subs:
            subs.refile(m.tickets)  # after a rebuild: tickets moved in the versions skipped
            self.mirrors[clinic] = m
            self._clinics_changed()
            self._advance()
        return m

    def _rebuild(self, clinic: str) -> None:
        """Lost our place in the stream: load a fresh mirror and resync every socket."""
        self.mirrors.pop(clinic, None)
        self._clinics_changed()

        async def rebuild() -> None:
            try:
                await self.mirror(clinic)
            except QtraqError:
                log.warning("clinic %s: mirror rebuild failed; closing its sockets", clinic, exc_info=True)
                for sub in list(self.subs.get(clinic, ())):
                    await _close(sub, Unavailable.close_code)
                return
            for sub in list(self.subs.get(clinic, ())):
                self.outbox.resync(sub)

        self._spawn(rebuild(), f"hub-rebuild-{clinic}")

    async def caught_up(self, clinic: str, version: int) -> Mirror:
        """The clinic's mirror once it has applied ``version``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CATCH_UP_S
        while True:
            m = self.mirrors.get(clinic)
            if m is not None and m.version >= version:
                return m
            tick = self._tick
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise Unavailable(f"clinic {clinic}: live state is behind")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tick.wait(), remaining)

    async def events_to_now(self, clinic: str, m: Mirror, since: int) -> tuple[Mirror, list[Json] | None]:
        """Events after ``since`` up to the mirror's version (None: not kept any more).
        Returns the mirror to use: it may have advanced while Redis was asked."""
        if since < 0:
            return m, None
        if since <= m.version:
            from_ring = m.events_after(since)
            if from_ring is not None:
                return m, from_ring
        fetched = await self.engine.events_since(clinic, since, limit=REPLAY_MAX + 1)
        if fetched is None:
            return m, None
        m = await self.caught_up(clinic, since if not fetched else int(fetched[-1]["v"]))
        tail = m.events_after(int(fetched[-1]["v"])) if fetched else m.events_after(since)
        if tail is None:
            return m, None
        return m, [ev for ev in fetched if int(ev["v"]) <= m.version] + tail


async def _close(sub: Subscriber, code: int) -> None:
    with contextlib.suppress(Exception):
        await sub.ws.close(code=code)

