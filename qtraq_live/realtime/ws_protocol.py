"""uvicorn's websockets Sans-I/O protocol, keeping less per idle socket.

A hub process holds thousands of sockets that stay idle for hours (waiting-room screens,
patients' phones), so what each one keeps is the hub's memory bill. uvicorn's
``WebSocketsSansIOProtocol`` keeps, per socket, an ``asyncio.Queue`` for received events
(with its deques and its ``Event``, though it is empty nearly always), the handshake's
request and response for the socket's whole life and an ``asyncio.Event`` for flow control
that only a paused transport needs, and its attributes outgrow CPython's shared-key instance
dict (a dict of its own each).
:class:`LeanWebSocketProtocol` changes only those; everything else (keepalive pings,
closing, flow control, rejections before accept) is uvicorn's own code. Figures:
``docs/fanout.md``.

It adds one thing: :meth:`LeanWebSocketProtocol.write_text`, the hub's way to put a message on
a socket that can take it at once, without an ASGI message, a coroutine and websockets'
``Frame`` per socket (for a big queue, the fan-out of one press is 2,000 of these in a row).

It relies on these internals of uvicorn 0.54–0.55 (0.55 changed none of them); ``realtime/ws_adapter.py``
selects it only with those uvicorns (and websockets 17), and uvicorn's own protocol
otherwise. Re-run ``tests/test_ws_protocol.py`` when widening that range:

* ``self.queue``, set in ``__init__``, used only as ``put_nowait(event)``, ``await get()``
  and ``empty()``, by one consumer at a time (the app's ``receive``);
* ``self.writable``, set in ``__init__``, used only as ``await wait()`` (``send``),
  ``clear()`` (``pause_writing``) and ``set()`` (``resume_writing``, ``connection_lost``);
* ``self.request`` and ``self.response``, set by ``handle_connect`` and read by ``send``
  only to answer ``websocket.accept``, which then calls ``start_keepalive()`` once;
* the names in ``__slots__``: the attributes uvicorn assigns (one it adds later lands in a
  ``__dict__`` again: the test checks there is none);
* ``self.close_sent``, ``self.disconnected``, ``self.handshake_complete`` and
  ``self.initial_response``, which ``send`` checks before it frames a message, and
  ``self.conn.state`` and ``self.conn.extensions`` (websockets' ``Protocol``);
* (websockets 17) ``ServerProtocol.parse`` keeps the request as a local of its generator for
  the connection's life, hence its headers are emptied in place.
"""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import OPEN

# The flow-control event of every socket whose transport is not paused: always set, so
# ``await writable.wait()`` returns at once, without suspending; nothing ever clears it.
WRITABLE = asyncio.Event()
WRITABLE.set()


def text_frame(data: bytes) -> bytes:
    """One unmasked final text frame of UTF-8 ``data`` (RFC 6455 §5.2), as a server sends it."""
    n = len(data)
    if n < 126:
        return bytes((0x81, n)) + data
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + data
    return struct.pack("!BBQ", 0x81, 127, n) + data


class Inbox:
    """What ``asyncio.Queue`` does for uvicorn's received events, holding nothing while empty
    (its deque exists only while events wait, its future only while the app waits)."""

    __slots__ = ("items", "waiter")

    def __init__(self) -> None:
        self.items: deque[Any] | None = None
        self.waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        if self.items is None:
            self.items = deque()
        self.items.append(item)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def get(self) -> Any:
        while not self.items:
            if self.waiter is not None:
                raise RuntimeError("receive() is already being awaited")  # ASGI: one receiver
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        item = self.items.popleft()
        if not self.items:
            self.items = None
        return item

    def empty(self) -> bool:
        return not self.items


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's protocol with a lazy receive queue, a flow-control event only while paused,
    and no handshake kept after the accept (``ws="qtraq_live.realtime.ws_protocol:LeanWebSocketProtocol"``)."""

    # uvicorn's attributes, as slots (uvicorn's base class keeps a __dict__ for any others)
    __slots__ = ("config", "app", "loop", "logger", "root_path", "asgi_version", "app_state", "connections",
                 "tasks", "default_headers", "transport", "server", "client", "scheme", "queue",
                 "handshake_initiated", "handshake_complete", "close_sent", "disconnected", "close_timer",
                 "close_timeout", "initial_response", "conn", "read_paused", "writable", "ping_interval",
                 "ping_timeout", "ping_timer", "pong_timer", "pending_ping_payload", "ping_sent_at",
                 "last_ping_rtt", "frames", "curr_msg_data_type", "request", "response", "scope")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = WRITABLE

    def write_text(self, text: str) -> bool:
        """Frame ``text`` (FIN, text opcode, unmasked: RFC 6455 §5.2) and write it now, if the
        socket is open, its transport not paused and no extension (compression) is in use;
        False, having done nothing, otherwise: the caller then goes through ``send``, which
        waits, raises or refuses as the ASGI spec says."""
        if (self.writable is not WRITABLE or self.close_sent or self.disconnected or not self.handshake_complete
                or self.initial_response is not None or self.conn.state is not OPEN or self.conn.extensions):
            return False
        self.transport.write(text_frame(text.encode()))
        return True

    def pause_writing(self) -> None:
        if self.writable is WRITABLE:
            self.writable = asyncio.Event()

    def resume_writing(self) -> None:
        self.writable.set()  # wakes a send waiting on this pause's own event
        self.writable = WRITABLE

    def start_keepalive(self) -> None:
        # called once, right after the accept's response was written: the handshake is done.
        # websockets' parser keeps the request in its generator's frame: empty its headers
        self.request.headers.clear()
        self.request = self.response = None  # type: ignore[assignment]
        super().start_keepalive()
