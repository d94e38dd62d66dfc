"""The hub's WebSocket endpoints: check a socket, send its first messages, then wait for it to go.

A socket is served by one task, uvicorn's own for the connection, reached through
:class:`HubSockets` rather than the HTTP middleware and router. That task accepts, authenticates,
hands the first messages (a snapshot, or the replay after ``since``) to the hub's outbox, and
then only receives, until the client goes away. Live messages are sent by the hub's reader
(:mod:`qtraq_live.realtime.hub_send`), not by this task. Close codes: ``docs/fanout.md``.
"""

from __future__ import annotations

import contextlib
import hmac
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.convertors import Convertor
from starlette.datastructures import Headers
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from .. import metrics
from ..engine import redis_keys as keys
from ..errors import Forbidden, Invalid, NotFound, QtraqError, Unauthorized, Unavailable
from ..hub import REPLAY_MAX, Hub
from ..queue_engine import SLUG, public_ticket
from ..runtime.redis_conn import UNREACHABLE
from ..web import auth
from ..web.middleware import assign_request_id
from .hub_send import Subscriber, message
from .mirror import Json, Mirror, dumps, watchers_touched

SOCKETS = metrics.WS_CONNECTIONS
QUEUE_FILTER_MAX = 100  # queues one screen may name in ``?queues=``

First = list[tuple[int, str]]  # (version, text) of the messages a socket starts with
Opened = tuple[Subscriber, Callable[[Mirror, int | None], Awaitable[First]]]
Opener = Callable[["Hub", WebSocket, Send], Awaitable[Opened]]  # authenticates, or raises


class HubSockets:
    """ASGI middleware, first in the stack: the hub's sockets go straight to :func:`serve`.

    The HTTP middleware (metrics, headers, body limit) and Starlette's exception and routing
    layers do nothing for these sockets, yet each would keep a suspended frame per socket for
    its whole life, and wrap every send. What they do for a socket is done here: the request
    id, and the path parameters of an explicit table. Other WebSockets pass through.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        open_ = route(scope) if scope["type"] == "websocket" else None
        if open_ is None:
            await self.app(scope, receive, send)
            return
        assign_request_id(scope)
        await serve(scope, receive, send, open_)


def route(scope: Scope) -> Opener | None:
    """The opener of a hub path, its path parameters set in the scope; None: not the hub's."""
    for regex, convertors, open_ in ENDPOINTS:
        found = regex.match(scope["path"])
        if found is not None:
            scope["path_params"] = {k: convertors[k].convert(v) for k, v in found.groupdict().items()}
            return open_
    return None


async def serve(scope: Scope, receive: Receive, send: Send, open_: Opener) -> None:
    """Accept, open, then receive (and ignore) until the client or the hub ends the socket.
    ``receive`` and ``send`` are the server's own: no wrapper per message. This frame lives as
    long as the socket, so it keeps only what the wait needs."""
    ws = WebSocket(scope, receive, send)
    hub: Hub = ws.app.state.hub
    await ws.accept()
    sub = await _start(hub, ws, send, open_)
    if sub is None:
        return
    # the request's headers were read (origin, cookie, request id): an idle socket need not
    # keep them (the server's protocol holds this scope for the socket's life)
    scope["headers"] = []
    SOCKETS.labels(sub.kind).inc()
    try:
        while (await receive())["type"] != "websocket.disconnect":
            pass
    finally:
        SOCKETS.labels(sub.kind).dec()
        hub.leave(sub)


async def _start(hub: Hub, ws: WebSocket, send: Send, open_: Opener) -> Subscriber | None:
    """Authenticate and queue the first messages; None when the socket was closed with the
    code of the error tree (4401, 4403, 4404…) instead. A separate frame from the receive loop,
    so what authentication read is not kept for the socket's lifetime."""
    sub: Subscriber | None = None
    try:
        if not origin_allowed(ws, hub.settings["security.allowed_origins"]):
            raise Forbidden("origin not allowed", code="origin_not_allowed")
        sub, first = await open_(hub, ws, send)
        hub.join(sub)  # pins the clinic's mirror
        messages = await first(await hub.mirror(sub.clinic), _since(ws))
    except QtraqError as exc:
        if sub is not None:
            hub.leave(sub)
        with contextlib.suppress(RuntimeError, OSError):  # the client may be gone already
            await ws.close(code=exc.close_code)
        return None
    except BaseException:
        if sub is not None:
            hub.leave(sub)
        raise
    # no await since the first messages were computed: live messages follow them exactly
    hub.outbox.start(sub, messages)
    return sub


async def open_display(hub: Hub, ws: WebSocket, send: Send) -> Opened:
    clinic = ws.path_params["clinic"]
    key = ws.query_params.get("key", "")
    found = await _redis(hub.engine.redis.get(keys.display_key(key))) if key else None
    if found is None or not hmac.compare_digest(found.encode(), clinic.encode()):
        raise Unauthorized("missing or invalid display key")
    sub = Subscriber(ws, send, clinic, "display", key_hash=keys.secret_hash(key),
                     allowed=queue_filter(ws.query_params.get("queues")))
    return sub, lambda m, since: _first_messages(hub, sub, m, since)


def queue_filter(raw: str | None) -> frozenset[str] | None:
    """A screen's ``?queues=a,b``: the queues it shows (None: absent or empty, every queue).
    The same parameter as the page's; each must look like a queue id (else close 1008)."""
    if raw is None:
        return None
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if not names:
        return None
    if len(names) > QUEUE_FILTER_MAX or not all(SLUG.match(n) for n in names):
        raise Invalid("queues", f"must be up to {QUEUE_FILTER_MAX} queue ids separated by commas")
    return frozenset(names)


async def open_reception(hub: Hub, ws: WebSocket, send: Send) -> Opened:
    user = await _redis(auth.session_from_cookie(hub.engine.redis, ws.cookies.get(auth.SESSION_COOKIE)))
    if user is None:
        raise Unauthorized("staff session required")
    sub = Subscriber(ws, send, ws.path_params["clinic"], "reception",
                     allowed=console_queues(user, queue_filter(ws.query_params.get("queues"))))
    return sub, lambda m, since: _first_messages(hub, sub, m, since)


def console_queues(user: Json, asked: frozenset[str] | None) -> frozenset[str] | None:
    """What a console shows: the queues of its ``?queues=`` (the one queue a desk works on),
    else every queue; a doctor's console only those of them named for the doctor."""
    if user["role"] != "doctor":
        return asked
    mine = frozenset(user["queues"])
    return mine if asked is None else asked & mine


async def open_patient(hub: Hub, ws: WebSocket, send: Send) -> Opened:
    ticket = await hub.engine.ticket_by_token(ws.path_params["token"])
    if ticket is None:
        raise NotFound("unknown ticket token")
    tid = int(ticket["id"])
    sub = Subscriber(ws, send, ticket["clinic"], "patient", ticket_id=tid)
    return sub, lambda m, since: _patient_first(hub, sub, tid, m, since, ticket)


async def _first_messages(hub: Hub, sub: Subscriber, m: Mirror, since: int | None) -> First:
    """Display/reception: a snapshot, or the replay after ``since`` rendered as live."""
    if since is not None:
        m, events = await hub.events_to_now(sub.clinic, m, since)
        history = m.history(events) if events and len(events) <= REPLAY_MAX else ([] if events == [] else None)
        if history is not None:
            out = []
            cleared = hub.display_cleared_before()
            for ev, counts in history:
                upd = (m.display_update(ev, counts, sub.allowed, cleared) if sub.kind == "display"
                       else m.reception_update(ev, counts, sub.allowed))
                if upd is not None:
                    out.append((upd["version"], dumps(upd)))
            return out
    snap = (m.display_snapshot(sub.allowed, hub.display_cleared_before()) if sub.kind == "display"
            else m.reception_snapshot(sub.allowed))
    return [(m.version, dumps(snap))]


async def _patient_first(hub: Hub, sub: Subscriber, tid: int, m: Mirror, since: int | None,
                         ticket: Json) -> First:
    """A patient's view at the mirror's version; a resume gets one update (its screen is
    a state, not a log) when anything it can see changed after ``since``."""
    for _ in range(3):
        m = await hub.caught_up(sub.clinic, int(ticket["version"]))
        if tid in m.tickets or m.base_version <= int(ticket["version"]):
            break
        # the mirror started after our read and does not know this ticket: read it again
        found = await hub.engine.ticket_by_token(sub.ws.path_params["token"])
        if found is None:
            raise NotFound("unknown ticket token")
        ticket = found
    events = None
    if since is not None:
        m, events = await hub.events_to_now(sub.clinic, m, since)
    # no await from here on: the view, its queue and the version belong together
    view = m.patient_view(tid)
    hub.place(sub, m.tickets[tid]["queue"] if tid in m.tickets else ticket["queue"])
    if view is None:  # not in the mirror: unchanged since our read of it
        view = public_ticket(ticket, ticket["queue_name"], ticket["clinic_name"], 0)
        del view["version"]
    sub.last = dumps(view)
    if events is not None:
        if not any(watchers_touched(ev, [tid], m) for ev in events):
            return []
        return [(m.version, message("update", m.version, sub.last))]
    return [(m.version, message("snapshot", m.version, sub.last))]


def origin_allowed(ws: WebSocket, allowed: list[str]) -> bool:
    """No ``Origin`` (not a browser) is fine; otherwise a listed origin, or the same host
    when none are listed."""
    headers = Headers(scope=ws.scope)  # not ``ws.headers``: that copy would live as long as the socket
    origin = headers.get("origin")
    if origin is None:
        return True
    if allowed:
        return origin in allowed
    return urlsplit(origin).netloc.lower() == headers.get("host", "").lower()


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
    except UNREACHABLE as exc:
        metrics.REDIS_ERRORS.inc()
        raise Unavailable(f"live state unreachable: {exc.__class__.__name__}") from exc



def _endpoint(path: str, opener: Opener) -> tuple[re.Pattern[str], dict[str, Convertor[Any]], Opener]:
    regex, _, convertors = compile_path(path)
    return regex, convertors, opener


ENDPOINTS = [  # the hub's routing table
    _endpoint("/ws/display/{clinic}", open_display),
    _endpoint("/ws/t/{token}", open_patient),
    _endpoint("/ws/reception/{clinic}", open_reception),
]
