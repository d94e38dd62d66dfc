"""WebSocket fan-out: one stream reader per process, one bounded queue and writer per socket.

The reader XREADs the event streams of the clinics that have local subscribers, applies each
event to that clinic's :class:`~qtraq_live.mirror.Mirror` and queues the resulting messages;
it never awaits a socket. A socket whose queue overflows is resynced with one fresh snapshot.
Nothing here is authoritative: keys, sessions and tokens are read from Redis on connect and the
mirrors are rebuilt from Redis, so any number of ``--role hub`` processes can serve sockets.
Design and message shapes: ``docs/fanout.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
import redis.exceptions
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from . import auth, metrics, redis_conn
from . import redis_keys as keys
from .config import Settings
from .errors import Forbidden, NotFound, QtraqError, Unauthorized, Unavailable
from .mirror import Json, Mirror, call_of, watchers_touched
from .queue_engine import QueueEngine, parse_event, public_ticket

log = logging.getLogger(__name__)

READ_BLOCK_MS = 5000
READ_COUNT = 500
RETRY_S = 1.0  # pause after a Redis error in the reader
WAKE_TTL_S = 3600
REPLAY_MAX = 2000  # a longer absence is answered with a snapshot
CATCH_UP_S = 10.0  # longest a connecting socket waits for the mirror to reach its version
KEY_CHECK_S = 2.0  # how soon a screen whose display key was revoked is closed
REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)

SOCKETS = metrics.WS_CONNECTIONS
RESYNCS = metrics.WS_RESYNCS


def dumps(msg: Json) -> str:
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False)


@dataclass(eq=False)
class Subscriber:
    """One socket: what it may see, and its bounded queue of ``(version, text)``."""

    ws: WebSocket
    clinic: str
    kind: str  # "display", "patient" or "reception"
    ticket_id: int | None = None
    key_hash: str | None = None  # display: the hash of its key, re-checked while it stays open
    allowed: frozenset[str] | None = None  # reception: a doctor's queues (None: all)
    last: Json | None = None  # patient: the view it was last sent
    active: bool = False  # receives live messages once its first messages are queued
    resync: bool = False  # send a fresh snapshot before anything newer
    replay: int = 0  # queued replay messages still unsent: they do not count against the limit
    queue: deque[tuple[int, str]] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class Hub:
    """Per-process fan-out. ``start()``/``stop()`` run in the app's lifespan."""

    def __init__(self, engine: QueueEngine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.limit: int = settings["hub.send_queue"]
        self.mirrors: dict[str, Mirror] = {}
        self.subs: dict[str, set[Subscriber]] = {}
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
                with contextlib.suppress(Exception):
                    await sub.ws.close(code=1001)
        with contextlib.suppress(*REDIS_ERRORS):
            await self.engine.redis.delete(self._wake_key)
        if self._stream_redis is not None:
            await self._stream_redis.aclose()

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
            except REDIS_ERRORS:
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
                    # let the writers flush between events: a burst read in one batch must not
                    # overflow the queue of a socket that is keeping up
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
                screens = [s for s in subs if s.key_hash is not None]
                if not screens:
                    continue
                try:
                    live = await self.engine.redis.smembers(keys.display_keys_of(clinic))
                except REDIS_ERRORS:
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
        with contextlib.suppress(*REDIS_ERRORS):
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
        subs = [s for s in self.subs.get(clinic, ()) if s.active]
        if ev.get("clinic_state"):  # a setting such as mask_names changed: render everything again
            for sub in subs:
                self._mark_resync(sub)
            return
        counts = m.counts()
        called = call_of(ev)
        if called is not None:
            self._calls[clinic] = (m.version, int(ev["at"]))
        call = None if called is None else dumps(
            {"type": "call", "version": m.version, "label": called["label"], "counter": called["counter"],
             "queue": called["queue"]})
        display: str | None = None  # serialised once for every screen of the clinic
        reception: dict[frozenset[str] | None, str | None] = {}  # once per queue filter
        for sub in subs:
            if sub.kind == "display":
                display = display or dumps(m.display_update(ev, counts))
                self._push(sub, m.version, display)
                if call:
                    self._push(sub, m.version, call)
            elif sub.kind == "reception":
                if sub.allowed not in reception:
                    upd = m.reception_update(ev, counts, sub.allowed)
                    reception[sub.allowed] = None if upd is None else dumps(upd)
                text = reception[sub.allowed]
                if text is not None:
                    self._push(sub, m.version, text)
        self._dispatch_patients(m, ev, [s for s in subs if s.kind == "patient"], called, call)

    def _dispatch_patients(self, m: Mirror, ev: Json, subs: list[Subscriber], called: Json | None,
                           call: str | None) -> None:
        """A patient gets its own flat view, only when it changed, and the call of its ticket."""
        touched = set(watchers_touched(ev, [s.ticket_id for s in subs if s.ticket_id is not None], m))
        for sub in subs:
            if sub.ticket_id not in touched:
                continue
            view = m.patient_view(sub.ticket_id)
            if view is not None and view != sub.last:
                sub.last = view
                self._push(sub, m.version, dumps({"type": "update", "version": m.version, **view}))
            if call and called is not None and int(called["id"]) == sub.ticket_id:
                self._push(sub, m.version, call)

    def _push(self, sub: Subscriber, version: int, text: str) -> None:
        """Queue without waiting; a full queue is dropped and replaced by a resync."""
        if sub.resync:
            return
        if len(sub.queue) - sub.replay >= self.limit:
            self._mark_resync(sub)
            return
        sub.queue.append((version, text))
        sub.wake.set()

    @staticmethod
    def _mark_resync(sub: Subscriber) -> None:
        RESYNCS.labels(sub.kind).inc()
        sub.queue.clear()
        sub.replay = 0
        sub.resync = True
        sub.wake.set()

    # -- mirrors -----------------------------------------------------------------------

    async def _mirror(self, clinic: str) -> Mirror:
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
        if self.subs.get(clinic):
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
                await self._mirror(clinic)
            except QtraqError:
                log.warning("clinic %s: mirror rebuild failed; closing its sockets", clinic, exc_info=True)
                for sub in list(self.subs.get(clinic, ())):
                    with contextlib.suppress(Exception):
                        await sub.ws.close(code=Unavailable.close_code)
                return
            for sub in self.subs.get(clinic, ()):
                self._mark_resync(sub)

        self._spawn(rebuild(), f"hub-rebuild-{clinic}")

    async def _caught_up(self, clinic: str, version: int) -> Mirror:
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

    async def _events_to_now(self, clinic: str, m: Mirror, since: int) -> tuple[Mirror, list[Json] | None]:
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
        m = await self._caught_up(clinic, since if not fetched else int(fetched[-1]["v"]))
        tail = m.events_after(int(fetched[-1]["v"])) if fetched else m.events_after(since)
        if tail is None:
            return m, None
        return m, [ev for ev in fetched if int(ev["v"]) <= m.version] + tail

    # -- sockets -----------------------------------------------------------------------

    async def display(self, ws: WebSocket) -> None:
        async def check() -> Subscriber:
            clinic = ws.path_params["clinic"]
            key = ws.query_params.get("key", "")
            found = await _redis(self.engine.redis.get(keys.display_key(key))) if key else None
            if found is None or not hmac.compare_digest(found.encode(), clinic.encode()):
                raise Unauthorized("missing or invalid display key")
            return Subscriber(ws, clinic, "display", key_hash=keys.secret_hash(key))

        await self._serve(ws, check, self._first_messages)

    async def reception(self, ws: WebSocket) -> None:
        async def check() -> Subscriber:
            user = await _redis(auth.session_from_cookie(self.engine.redis, ws.cookies.get(auth.SESSION_COOKIE)))
            if user is None:
                raise Unauthorized("staff session required")
            allowed = frozenset(user["queues"]) if user["role"] == "doctor" else None
            return Subscriber(ws, ws.path_params["clinic"], "reception", allowed=allowed)

        await self._serve(ws, check, self._first_messages)

    async def patient(self, ws: WebSocket) -> None:
        ticket: Json = {}

        async def check() -> Subscriber:
            found = await self.engine.ticket_by_token(ws.path_params["token"])
            if found is None:
                raise NotFound("unknown ticket token")
            ticket.update(found)
            return Subscriber(ws, found["clinic"], "patient", ticket_id=int(found["id"]))

        async def first(sub: Subscriber, m: Mirror, since: int | None) -> list[tuple[int, str]]:
            return await self._patient_first(sub, m, since, ticket)

        await self._serve(ws, check, first)

    async def _serve(self, ws: WebSocket, check: Callable[[], Awaitable[Subscriber]],
                     first: Callable[[Subscriber, Mirror, int | None], Awaitable[list[tuple[int, str]]]]) -> None:
        """Accept, authenticate, queue the first messages, then run the writer until either
        side ends. Errors close with the code of the error tree (4401, 4403, 4404…)."""
        await ws.accept()
        sub: Subscriber | None = None
        try:
            try:
                if not origin_allowed(ws, self.settings["security.allowed_origins"]):
                    raise Forbidden("origin not allowed", code="origin_not_allowed")
                sub = await check()
                self.subs.setdefault(sub.clinic, set()).add(sub)  # pins the clinic's mirror
                first_messages = await first(sub, await self._mirror(sub.clinic), _since(ws))
            except QtraqError as exc:
                with contextlib.suppress(RuntimeError, OSError):  # the client may be gone already
                    await ws.close(code=exc.close_code)
                return
            sub.queue.extend(first_messages)
            sub.replay = len(first_messages)
            sub.active = True
            sub.wake.set()
            SOCKETS.labels(sub.kind).inc()
            writer = asyncio.create_task(self._write(sub))
            reader = asyncio.create_task(_drain(ws))
            try:
                done, _ = await asyncio.wait({writer, reader}, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if not task.cancelled() and task.exception() is not None:
                        log.error("a %s socket of clinic %s failed", sub.kind, sub.clinic, exc_info=task.exception())
            finally:
                SOCKETS.labels(sub.kind).dec()
                for task in (writer, reader):
                    task.cancel()
                await asyncio.gather(writer, reader, return_exceptions=True)
        finally:
            self._leave(sub)

    async def _first_messages(self, sub: Subscriber, m: Mirror, since: int | None) -> list[tuple[int, str]]:
        """Display/reception: a snapshot, or the replay after ``since`` rendered as live."""
        if since is not None:
            m, events = await self._events_to_now(sub.clinic, m, since)
            history = m.history(events) if events and len(events) <= REPLAY_MAX else ([] if events == [] else None)
            if history is not None:
                out = []
                for ev, counts in history:
                    upd = (m.display_update(ev, counts) if sub.kind == "display"
                           else m.reception_update(ev, counts, sub.allowed))
                    if upd is not None:
                        out.append((upd["version"], dumps(upd)))
                return out
        snap = m.display_snapshot() if sub.kind == "display" else m.reception_snapshot(sub.allowed)
        return [(m.version, dumps(snap))]

    async def _patient_first(self, sub: Subscriber, m: Mirror, since: int | None,
                             ticket: Json) -> list[tuple[int, str]]:
        """A patient's view at the mirror's version; a resume gets one update (its screen is
        a state, not a log) when anything it can see changed after ``since``."""
        for _ in range(3):
            m = await self._caught_up(sub.clinic, int(ticket["version"]))
            if sub.ticket_id in m.tickets or m.base_version <= int(ticket["version"]):
                break
            # the mirror started after our read and does not know this ticket: read it again
            found = await self.engine.ticket_by_token(sub.ws.path_params["token"])
            if found is None:
                raise NotFound("unknown ticket token")
            ticket.update(found)
        events = None
        if since is not None:
            m, events = await self._events_to_now(sub.clinic, m, since)
        # no await from here on: the view and the version belong together
        view = m.patient_view(sub.ticket_id) if sub.ticket_id is not None else None
        if view is None:  # not in the mirror: unchanged since our read of it
            view = public_ticket(ticket, ticket["queue_name"], ticket["clinic_name"], 0)
            del view["version"]
        sub.last = view
        if events is not None:
            if not any(watchers_touched(ev, [sub.ticket_id], m) for ev in events):
                return []
            return [(m.version, dumps({"type": "update", "version": m.version, **view}))]
        return [(m.version, dumps({"type": "snapshot", "version": m.version, **view}))]

    def _snapshot(self, sub: Subscriber, m: Mirror) -> Json:
        if sub.kind == "display":
            return m.display_snapshot()
        if sub.kind == "reception":
            return m.reception_snapshot(sub.allowed)
        view = (m.patient_view(sub.ticket_id) if sub.ticket_id is not None else None) or sub.last or {}
        sub.last = view
        return {"type": "snapshot", "version": m.version, **view}

    async def _write(self, sub: Subscriber) -> None:
        """The socket's only sender: its queue in order, or one snapshot after an overflow."""
        try:
            while True:
                if sub.resync and (m := self.mirrors.get(sub.clinic)) is not None:
                    sub.resync = False
                    text = dumps(self._snapshot(sub, m))
                    while sub.queue and sub.queue[0][0] <= m.version:
                        sub.queue.popleft()
                    sub.replay = 0
                    await sub.ws.send_text(text)
                    self._sent(sub, m.version)
                elif sub.queue and not sub.resync:
                    sub.replay = max(0, sub.replay - 1)
                    version, text = sub.queue.popleft()
                    await sub.ws.send_text(text)
                    self._sent(sub, version)
                else:
                    sub.wake.clear()
                    await sub.wake.wait()
        except (WebSocketDisconnect, RuntimeError, OSError):
            log.info("closing a %s socket of clinic %s after a failed send", sub.kind, sub.clinic)
            with contextlib.suppress(Exception):
                await sub.ws.close(code=1011)

    def _sent(self, sub: Subscriber, version: int) -> None:
        """Count a message; the first one of a call's version times press-to-send (a later
        version sent first means no socket got that call: nothing to time)."""
        metrics.WS_SENT[sub.kind].inc()
        call = self._calls.get(sub.clinic)
        if call is not None and version >= call[0]:
            del self._calls[sub.clinic]
            if version == call[0]:
                metrics.observe_press_to_send(call[1])

    def _leave(self, sub: Subscriber | None) -> None:
        if sub is None:
            return
        subs = self.subs.get(sub.clinic)
        if subs is None:
            return
        subs.discard(sub)
        if not subs:
            del self.subs[sub.clinic]
            if self.mirrors.pop(sub.clinic, None) is not None:
                self._clinics_changed()


def origin_allowed(ws: WebSocket, allowed: list[str]) -> bool:
    """No ``Origin`` (not a browser) is fine; otherwise a listed origin, or the same host
    when none are listed."""
    origin = ws.headers.get("origin")
    if origin is None:
        return True
    if allowed:
        return origin in allowed
    return urlsplit(origin).netloc.lower() == ws.headers.get("host", "").lower()


def _since(ws: WebSocket) -> int | None:
    raw = ws.query_params.get("since")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return -1  # not a version: answered with a snapshot


async def _redis(awaitable: Awaitable[Any]) -> Any:
    try:
        return await awaitable
    except REDIS_ERRORS as exc:
        metrics.REDIS_ERRORS.inc()
        raise Unavailable(f"live state unreachable: {exc.__class__.__name__}") from exc


async def _close(sub: Subscriber, code: int) -> None:
    with contextlib.suppress(Exception):
        await sub.ws.close(code=code)


async def _drain(ws: WebSocket) -> None:
    """Read (and ignore) what the client sends until it goes away."""
    while (await ws.receive())["type"] != "websocket.disconnect":
        pass


async def display_endpoint(ws: WebSocket) -> None:
    await ws.app.state.hub.display(ws)


async def patient_endpoint(ws: WebSocket) -> None:
    await ws.app.state.hub.patient(ws)


async def reception_endpoint(ws: WebSocket) -> None:
    await ws.app.state.hub.reception(ws)


routes = [
    WebSocketRoute("/ws/display/{clinic}", display_endpoint),
    WebSocketRoute("/ws/t/{token}", patient_endpoint),
    WebSocketRoute("/ws/reception/{clinic}", reception_endpoint),
]
