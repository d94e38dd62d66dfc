"""``LeanWebSocketProtocol`` against uvicorn's own protocol: real uvicorn servers in a thread,
real ``websockets`` clients (raw sockets where a client must misbehave or stay cheap).

Every behaviour test runs on both protocols with the same assertions: the lean one must do what
uvicorn does. Re-run after any uvicorn or websockets upgrade (``qtraq_live/realtime/ws_protocol.py``).
"""

from __future__ import annotations

import asyncio
import gc
import socket
import struct
import threading
import time
import tracemalloc
from collections.abc import Coroutine, Iterator
from typing import Any, cast

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import ConnectionClosed, InvalidStatus

from qtraq_live.config import Settings
from qtraq_live.realtime import ws_adapter
from qtraq_live.realtime.hub_send import run_eagerly
from qtraq_live.realtime.ws_adapter import text_writer
from qtraq_live.realtime.ws_protocol import WRITABLE, Inbox, LeanWebSocketProtocol
from qtraq_live.runtime.server import WS_IMPL
from qtraq_live.web.app import create_app
from tests.support_hub import WAIT_S, close_code, open_ws, uvicorn_thread

Json = dict[str, Any]
PROTOCOLS = [pytest.param(WebSocketsSansIOProtocol, id="uvicorn"), pytest.param(LeanWebSocketProtocol, id="lean")]
FLOOD = 64  # messages of 4 KiB: well past the transport's 64 KiB high-water mark
IDLE = 300  # sockets in the memory check


class Recorder:
    """The test app: what it received, and a flag raised when a send had to wait."""

    def __init__(self) -> None:
        self.events: list[Json] = []
        self.paused = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        await receive()  # websocket.connect
        path = scope["path"]
        if path == "/deny":
            await send({"type": "websocket.close"})
            return
        if path == "/teapot":
            await send({"type": "websocket.http.response.start", "status": 418, "headers": []})
            await send({"type": "websocket.http.response.body", "body": b"short and stout"})
            return
        await send({"type": "websocket.accept"})
        if path.startswith("/close/"):
            await send({"type": "websocket.close", "code": int(path.rsplit("/", 1)[1]), "reason": "bye"})
        elif path == "/flood":
            await receive()  # "go"
            await self.flood(send)
            await receive()  # "check": once the client has read everything
            inline = run_eagerly(cast(Coroutine[Any, Any, None], send({"type": "websocket.send", "text": "check"})),
                                 "check") is None
            self.events.append({"inline": inline})
        while (event := await receive())["type"] != "websocket.disconnect":
            await send({"type": "websocket.send", **({"text": "echo:" + event["text"]} if "text" in event
                                                     else {"bytes": event["bytes"]})})
        self.events.append(dict(event))

    async def flood(self, send: Send) -> None:
        """Send in order, as the hub does: stepped inline, a task only when the send waits."""
        for i in range(FLOOD):
            sending = send({"type": "websocket.send", "text": f"{i:04d}" + "x" * 4096})
            task = run_eagerly(cast(Coroutine[Any, Any, None], sending), "flood")
            if task is not None:
                self.paused.set()
                await task
        await send({"type": "websocket.send", "text": "done"})


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(params=PROTOCOLS)
def server(request: pytest.FixtureRequest, recorder: Recorder) -> Iterator[tuple[str, Any]]:
    """The recorder app on one protocol, pinging every 0.2 s (a dead peer goes in 0.4 s)."""
    with uvicorn_thread(recorder, ws=request.param, ws_ping_interval=0.2, ws_ping_timeout=0.2) as served:
        yield served


def protocol_of(server: Any, client: tuple[str, int]) -> Any:
    """The server's protocol object for the connection from ``client``."""
    found = [p for p in server.server_state.connections if p.client == client]
    assert len(found) == 1
    return found[0]


async def wait_for(condition: Any) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def raw_client(base: str, path: str = "/echo") -> socket.socket:
    """A handshake done by hand on a plain socket: a peer that then neither reads nor answers."""
    host, port = base.removeprefix("ws://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=WAIT_S)
    conn.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                 "Origin: http://screen.example\r\nUser-Agent: a waiting-room screen\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += conn.recv(4096)
    assert head.startswith(b"HTTP/1.1 101 "), head
    return conn


def frames_until_eof(conn: socket.socket) -> list[tuple[int, bytes]]:
    """(opcode, payload) of every (short, unmasked) server frame until the server hangs up."""
    data = b""
    while chunk := conn.recv(4096):
        data += chunk
    out = []
    while data:
        opcode, length = data[0] & 0x0F, data[1]
        assert length < 126
        out.append((opcode, data[2:2 + length]))
        data = data[2 + length:]
    return out


async def test_messages_both_ways(server: tuple[str, Any]) -> None:
    base, _ = server
    async with await open_ws(base + "/echo") as ws:
        for text in ("one", "two", "é" * 1000):
            await ws.send(text)
            assert await asyncio.wait_for(ws.recv(), WAIT_S) == "echo:" + text
        await ws.send(b"\x00\xff")
        assert await asyncio.wait_for(ws.recv(), WAIT_S) == b"\x00\xff"


async def test_server_close_code(server: tuple[str, Any], recorder: Recorder) -> None:
    base, _ = server
    async with await open_ws(base + "/close/4401") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), WAIT_S)
    assert closed.value.rcvd is not None and (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "bye")
    await wait_for(lambda: recorder.events)
    assert recorder.events == [{"type": "websocket.disconnect", "code": 4401, "reason": "bye"}]


async def test_client_close(server: tuple[str, Any], recorder: Recorder) -> None:
    base, _ = server
    async with await open_ws(base + "/echo") as ws:
        await ws.send("hi")
        assert await asyncio.wait_for(ws.recv(), WAIT_S) == "echo:hi"
        await ws.close(4000, "done")
    await wait_for(lambda: recorder.events)
    assert recorder.events == [{"type": "websocket.disconnect", "code": 4000, "reason": "done"}]


async def test_keepalive_closes_a_dead_peer_and_keeps_a_live_one(server: tuple[str, Any],
                                                                  recorder: Recorder) -> None:
    base, uv = server
    async with await open_ws(base + "/echo") as live:
        dead = raw_client(base)
        with dead:
            frames = await asyncio.to_thread(frames_until_eof, dead)
        assert frames[0][0] == 0x9  # a ping, never answered
        assert frames[-1][0] == 0x8 and struct.unpack("!H", frames[-1][1][:2])[0] == 1011
        await wait_for(lambda: recorder.events)
        assert recorder.events[0]["type"] == "websocket.disconnect"
        live_side = protocol_of(uv, live.local_address)
        await wait_for(lambda: live_side.last_ping_rtt > 0)  # pinged, and the pong was taken
        await live.send("still here")
        assert await asyncio.wait_for(live.recv(), WAIT_S) == "echo:still here"


async def test_slow_reader_pauses_then_resumes_without_loss(server: tuple[str, Any], recorder: Recorder) -> None:
    base, uv = server
    host, port = base.removeprefix("ws://").split(":")
    tiny = socket.socket()
    tiny.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a phone on a bad link
    tiny.connect((host, int(port)))
    async with await open_ws(base + "/flood", sock=tiny, max_queue=1) as slow:
        proto = protocol_of(uv, tiny.getsockname())
        # else Linux lets megabytes pile up on loopback before the transport has to buffer
        proto.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        slow.transport.pause_reading()
        await slow.send("go")
        assert await asyncio.to_thread(recorder.paused.wait, WAIT_S), "the transport never paused"
        assert not proto.writable.is_set()
        if isinstance(proto, LeanWebSocketProtocol):
            assert not proto.write_text("x")  # paused: the hub must queue instead
        slow.transport.resume_reading()
        for i in range(FLOOD):
            assert (await asyncio.wait_for(slow.recv(), WAIT_S))[:4] == f"{i:04d}"
        assert await asyncio.wait_for(slow.recv(), WAIT_S) == "done"
        assert proto.writable.is_set()
        await slow.send("check")
        assert await asyncio.wait_for(slow.recv(), WAIT_S) == "check"
        await wait_for(lambda: recorder.events)
        assert recorder.events == [{"inline": True}]  # resumed: a send completes without waiting again


@pytest.mark.parametrize(("path", "status", "body"), [("/deny", 403, b""), ("/teapot", 418, b"short and stout")])
async def test_http_rejection_before_accept(server: tuple[str, Any], path: str, status: int, body: bytes) -> None:
    base, _ = server
    with pytest.raises(InvalidStatus) as rejected:
        await open_ws(base + path)
    assert (rejected.value.response.status_code, rejected.value.response.body) == (status, body)


async def test_hub_close_codes_on_the_served_protocol(settings: Settings) -> None:
    """The hub's own rejections (accept, then close with the code) on ``serve``'s protocol."""
    with uvicorn_thread(create_app(settings), ws=WS_IMPL, lifespan="on") as (base, uv):
        assert uv.config.ws_protocol_class is (LeanWebSocketProtocol if ws_adapter.WS_LEAN else WebSocketsSansIOProtocol)
        assert await close_code(base + "/ws/display/c1?key=not-a-valid-key-0000000000") == 4401
        assert await close_code(base + "/ws/t/" + "x" * 32) == 4404
        assert await close_code(base + "/ws/t/" + "x" * 32, origin="http://evil.example") == 4403


# around each length limit of the frame header (7 bits, 16 bits, 64 bits), in bytes of UTF-8
DIRECT = ["", "a", "x" * 125, "é" * 63, "y" * 65535, "z" * 65536, "é" * 40_000]


@pytest.mark.parametrize("deflate", [False, True])
async def test_write_text_frames_any_length_and_refuses_what_send_must_handle(deflate: bool) -> None:
    """The hub's direct write: what a client reads equals the text, at every header length; it
    refuses (writes nothing) before the accept, after the close, and when compression is on."""
    written: list[bool] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        write = send.__self__.write_text  # the lean protocol's own, whatever ws_adapter chose
        await receive()
        written.append(write("too early"))
        await send({"type": "websocket.accept"})
        for text in DIRECT:
            if not write(text):
                written.append(False)
                await send({"type": "websocket.send", "text": text})
            else:
                written.append(True)
        await receive()  # the client's close
        written.append(write("too late"))

    with uvicorn_thread(app, ws=LeanWebSocketProtocol, ws_per_message_deflate=deflate) as (base, _):
        async with await open_ws(base + "/", compression="deflate" if deflate else None) as ws:
            for text in DIRECT:
                assert await asyncio.wait_for(ws.recv(), WAIT_S) == text
        await wait_for(lambda: len(written) == len(DIRECT) + 2)
    assert written == [False, *([not deflate] * len(DIRECT)), False]
    assert text_writer(WebSocketsSansIOProtocol.send) is None  # not a lean protocol's: none


async def test_inbox_is_empty_handed_and_has_one_receiver() -> None:
    inbox = Inbox()
    first = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        await inbox.get()
    inbox.put_nowait({"type": "websocket.connect"})
    inbox.put_nowait({"type": "websocket.receive", "text": "x"})
    assert await first == {"type": "websocket.connect"} and not inbox.empty()
    assert await inbox.get() == {"type": "websocket.receive", "text": "x"}
    assert inbox.empty() and (inbox.items, inbox.waiter) == (None, None)


def heap_per_idle_socket(protocol: type[Any]) -> tuple[float, list[Any]]:
    """Bytes of Python heap each accepted, idle socket costs the server (``IDLE`` of them,
    served in this process, their clients plain sockets), and the server's protocol objects."""
    with uvicorn_thread(Recorder(), ws=protocol) as (base, uv):
        warm = [raw_client(base) for _ in range(10)]  # first-use allocations out of the way
        gc.collect()
        before = tracemalloc.take_snapshot()
        clients = [raw_client(base) for _ in range(IDLE)]
        deadline = time.monotonic() + WAIT_S
        while len(uv.server_state.connections) < IDLE + len(warm) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # every app task is waiting in receive()
        gc.collect()
        grown = sum(d.size_diff for d in tracemalloc.take_snapshot().compare_to(before, "filename"))
        protocols = list(uv.server_state.connections)
        for c in warm + clients:
            c.close()
    return grown / IDLE, protocols


def test_an_idle_socket_costs_less_than_with_uvicorns_protocol() -> None:
    tracemalloc.start()
    try:
        stock, _ = heap_per_idle_socket(WebSocketsSansIOProtocol)
        lean, protocols = heap_per_idle_socket(LeanWebSocketProtocol)
    finally:
        tracemalloc.stop()
    assert lean < 12 * 1024, lean  # about 9 KiB on uvicorn 0.54–0.55 / websockets 17 / Python 3.11
    assert lean < stock - 4 * 1024, (lean, stock)  # about 18.5 KiB with uvicorn's
    # every attribute uvicorn set is a slot (a new one would bring back a per-socket dict)
    assert all(vars(p) == {} and p.writable is WRITABLE and p.request is None for p in protocols)
