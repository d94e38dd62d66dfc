"""Sending to sockets: inline from the fan-out while a socket keeps up, a bounded queue and a
short-lived task while it does not.

A socket has no task of its own for sending. The hub's reader steps each send itself
(:func:`run_eagerly`): on a socket that keeps up, uvicorn's send writes to the transport and
returns without ever suspending, so the message is on its way before the reader moves to the
next socket. Only a send that has to wait (the transport is paused: a slow client) becomes a
task, and the socket is *busy* until that task has also sent what was queued meanwhile. Design
and overflow rules: ``docs/fanout.md``.

Stepping a coroutine by hand leans on how asyncio's tasks drive coroutines (the future a
coroutine yields and its ``_asyncio_future_blocking`` flag), so it is the fast path
``hub_eager`` (``runtime/fastpaths.py``), on only with the Pythons it was written for; otherwise every
send that is not written directly (``ws_adapter.text_writer``) runs in a task of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, cast

from starlette.types import Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from .. import metrics
from ..runtime import fastpaths
from .ws_adapter import text_writer

log = logging.getLogger(__name__)

SEND_ERRORS = (WebSocketDisconnect, RuntimeError, OSError)
HUB_EAGER = fastpaths.enabled("hub_eager", ("python", (3, 11), (3, 14)))


def run_eagerly(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None] | None:
    """Run ``coro`` now, up to its first suspension; the rest, if any, in a task (returned).

    Python 3.12's eager task start, done by hand on 3.11: no task, no trip through the event
    loop for a coroutine that finishes without waiting. An exception raised before the first
    suspension propagates to the caller, as a plain call's would.
    """
    try:
        yielded = coro.send(None)
    except StopIteration:
        return None
    return asyncio.create_task(_finish(coro, yielded), name=name)


def launch(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None] | None:
    """:func:`run_eagerly` with ``hub_eager`` on; a task from the start otherwise."""
    if HUB_EAGER:
        return run_eagerly(coro, name)
    return asyncio.create_task(coro, name=name)


async def _finish(coro: Coroutine[Any, Any, None], yielded: Any) -> None:
    """Drive a coroutine that suspended outside a task, as a task would: wait for the future
    it yielded (without taking its result: the coroutine reads it), then resume it."""
    try:
        while True:
            if yielded is None:  # a bare yield (``asyncio.sleep(0)``): give the loop one turn
                await asyncio.sleep(0)
            elif asyncio.isfuture(yielded):
                yielded._asyncio_future_blocking = False
                await asyncio.wait((yielded,))
            else:
                yielded = coro.throw(RuntimeError(f"coroutine yielded {yielded!r}, not a future"))
                continue
            yielded = coro.send(None)
    except StopIteration:
        return
    except asyncio.CancelledError:  # cancelled while waiting: abandon the coroutine where it is
        coro.close()
        raise


class Subscriber:
    """One socket: what it may see, and what is still to be sent to it."""

    __slots__ = ("ws", "send", "clinic", "kind", "ticket_id", "key_hash", "allowed", "last", "active",
                 "resync", "replay", "queue", "busy", "write")

    def __init__(self, ws: WebSocket, send: Send, clinic: str, kind: str, ticket_id: int | None = None,
                 key_hash: str | None = None, allowed: frozenset[str] | None = None) -> None:
        self.ws = ws
        self.send = send  # the server's ASGI send: no wrapper between the hub and the socket
        self.write = text_writer(send)  # under the lean protocol: a message straight to the transport
        self.clinic = clinic
        self.kind = kind  # "display", "patient" or "reception"
        self.ticket_id = ticket_id
        self.key_hash = key_hash  # display: the hash of its key, re-checked while it stays open
        self.allowed = allowed  # reception: a doctor's queues (None: all)
        self.last: str | None = None  # patient: the view it was last sent, serialised
        self.active = False  # receives live messages once its first messages are queued
        self.resync = False  # send a fresh snapshot before anything newer
        self.replay = 0  # queued replay messages still unsent: they do not count against the limit
        self.queue: deque[tuple[int, str]] | None = None  # only while busy: most sockets never need one
        self.busy: asyncio.Task[None] | bool = False  # True, or the task, while a send is under way


Snapshot = Callable[[Subscriber], tuple[int, str] | None]  # (version, text) now, None: no mirror yet
Sent = Callable[[Subscriber, int], None]


class Outbox:
    """Every socket's sending, for one hub: ``push`` in order, a resync after an overflow."""

    def __init__(self, limit: int, snapshot: Snapshot, sent: Sent) -> None:
        self.limit = limit
        self.snapshot = snapshot
        self.sent = sent

    def push(self, sub: Subscriber, version: int, text: str) -> None:
        """Send now if the socket is idle; queue if busy; a full queue becomes a resync."""
        if sub.resync:
            return
        if not sub.busy:
            write = sub.write
            if write is not None and write(text):
                self.sent(sub, version)
                return
            if not HUB_EAGER:
                self._begin(sub, self._send(sub, (version, text)))
                return
            # the server's send stepped here, without a coroutine of ours around it: on a
            # socket that keeps up it writes and returns without suspending
            sending = cast(Coroutine[Any, Any, None], sub.send({"type": "websocket.send", "text": text}))
            try:
                yielded = sending.send(None)
            except StopIteration:
                self.sent(sub, version)
            except SEND_ERRORS:
                self._begin(sub, self._fail(sub))
            else:  # the transport is full: this send's rest, then what queues meanwhile, in a task
                self._begin(sub, self._send(sub, None, (_finish(sending, yielded), version)))
            return
        queue = sub.queue if sub.queue is not None else deque()
        if len(queue) - sub.replay >= self.limit:
            self.resync(sub)
            return
        queue.append((version, text))
        sub.queue = queue

    def resync(self, sub: Subscriber) -> None:
        """Drop what is queued; the socket's next message is a snapshot of the current state."""
        metrics.WS_RESYNCS.labels(sub.kind).inc()
        sub.queue = None
        sub.replay = 0
        sub.resync = True
        if not sub.busy:
            self._start(sub, None)

    def start(self, sub: Subscriber, first: list[tuple[int, str]]) -> None:
        """A new socket goes live: its first messages (snapshot or replay), then live ones."""
        sub.active = True
        if first:
            sub.queue = deque(first)
            sub.replay = len(first)
            self._start(sub, None)

    def _start(self, sub: Subscriber, message: tuple[int, str] | None) -> None:
        self._begin(sub, self._send(sub, message))

    @staticmethod
    def _begin(sub: Subscriber, coro: Coroutine[Any, Any, None]) -> None:
        """The socket is busy until ``coro`` ends: run it now, and as a task if it has to wait."""
        sub.busy = True
        task = launch(coro, "hub-send")
        if task is not None:
            sub.busy = task

    async def _send(self, sub: Subscriber, message: tuple[int, str] | None,
                    pending: tuple[Coroutine[Any, Any, None], int] | None = None) -> None:
        """Finish ``pending`` (a send under way, and its version), send ``message``, then
        whatever was queued or a resync's snapshot, until nothing is left; the socket is idle
        again when this returns. A failed send closes the socket."""
        try:
            if pending is not None:
                await pending[0]
                self.sent(sub, pending[1])
            while True:
                if message is not None:
                    await sub.send({"type": "websocket.send", "text": message[1]})
                    self.sent(sub, message[0])
                    message = None
                if sub.resync and (snap := self.snapshot(sub)) is not None:
                    sub.resync = False
                    queue = sub.queue
                    while queue and queue[0][0] <= snap[0]:
                        queue.popleft()
                    message = snap
                    continue
                if sub.queue and not sub.resync:
                    sub.replay = max(0, sub.replay - 1)
                    message = sub.queue.popleft()
                    continue
                return
        except SEND_ERRORS:
            await self._fail(sub)
        finally:
            sub.busy = False
            if not sub.queue:
                sub.queue = None

    @staticmethod
    async def _fail(sub: Subscriber) -> None:
        """A send failed: close the socket (1011); its endpoint then sees it go and leaves."""
        log.info("closing a %s socket of clinic %s after a failed send", sub.kind, sub.clinic)
        try:
            with contextlib.suppress(Exception):
                await sub.ws.close(code=1011)
        finally:
            sub.busy = False

    @staticmethod
    def stop(sub: Subscriber) -> None:
        """The socket is gone: abandon a send still waiting for it."""
        if isinstance(sub.busy, asyncio.Task):
            sub.busy.cancel()


def message(kind: str, version: int, body: str) -> str:
    """``{"type": kind, "version": version, ...body's fields}`` from a serialised object."""
    head = f'{{"type":"{kind}","version":{version}'
    return head + "," + body[1:] if body != "{}" else head + "}"

