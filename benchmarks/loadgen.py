"""Load generator for benchmarks/fanout.py: many real WebSocket clients in one process.

Each client is an ``asyncio.Protocol`` (no per-socket task, no compression offered), so one
process holds thousands of sockets and stamps every frame the moment its bytes are read (``time.monotonic_ns``: CLOCK_MONOTONIC is one
clock for every process on a Linux box, so the coordinator's press times compare directly).

Run by the coordinator as ``python loadgen.py SPEC.json OUT.json``; SPEC is
``{"sockets": [{"url", "proto": "ws" | "socketio", "headers"?: {name: value}}], "concurrency": N}``
(``headers``: extra handshake headers, such as a reception console's session cookie). Commands on stdin,
one per line, each answered by one JSON line on stdout:

- ``connect N``: open sockets until N of them were tried -> ``{"connected": open, "failed": k}``
- ``count``: ``{"received": m}``, versioned messages since the last ``mark``
- ``mark``: reset that count -> ``{"received": 0}``
- ``stop``: write OUT (``{"receipts": [[[version, t_ns], ...] per socket], "closed": [...],
  "errors": {...}}``), close every socket -> ``{"done": true}``

A socket counts as connected once it has its first message (our snapshot) or, for
socket.io, the namespace CONNECT answer.
"""

from __future__ import annotations

import asyncio
import gc
import json
import re
import resource
import sys
import time
from collections import Counter
from typing import Any

from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.headers import build_host
from websockets.http11 import Request
from websockets.uri import parse_uri
from websockets.utils import accept_key, generate_key

CONNECT_TIMEOUT_S = 60.0
# Source addresses for loopback connections: one address has ~28,000 ephemeral ports towards one
# server port (net.ipv4.ip_local_port_range), fewer than 36,000 sockets need. 127.0.0.1 is left
# to the coordinator's presses.
SOURCES = [f"127.0.0.{i}" for i in range(2, 10)]


# ``{"type": "…", "version": 12`` or ``{"type": "…", "queue": "…", "version": 12``: the heads of
# qtraq-live's and the baselines' messages
VERSION_FIRST = re.compile(rb'\{"type": ?"[a-z_]+",(?: ?"queue": ?"[^"]*",)? ?"version": ?(\d+)[,}]')


class Client(asyncio.Protocol):
    """One WebSocket; ``receipts`` holds ``(version, t_ns)`` for every versioned message.

    websockets builds the handshake request and the (masked) frames we send; incoming frames
    are read here, because the library's general parser costs ~36 µs a frame and the load
    generator must not be what a 2,000-socket burst waits on (see docs/benchmarks.md).
    """

    def __init__(self, url: str, proto: str, stats: Stats, extra: dict[str, str] | None = None) -> None:
        self.uri = parse_uri(url)
        self.extra = extra or {}
        self.key = generate_key()
        self.socketio = proto == "socketio"
        self.stats = stats
        self.receipts: list[tuple[int, int]] = []
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.open = False
        self.closed = False
        self.buffer = b""
        self.fragments: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        assert self.transport is not None
        headers = Headers({"Host": build_host(self.uri.host, self.uri.port, self.uri.secure),
                           "Upgrade": "websocket", "Connection": "Upgrade",
                           "Sec-WebSocket-Key": self.key, "Sec-WebSocket-Version": "13", **self.extra})
        self.transport.write(Request(self.uri.resource_name, headers).serialize())

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        buf = self.buffer + data if self.buffer else data
        pos = 0 if self.open else self.handshake(buf)
        while pos >= 0 and len(buf) - pos >= 2:
            b0, length, head = buf[pos], buf[pos + 1] & 0x7F, 2
            if length >= 126:
                head = 4 if length == 126 else 10
                if len(buf) - pos < head:
                    break
                length = int.from_bytes(buf[pos + 2:pos + head], "big")
            end = pos + head + length
            if end > len(buf):
                break
            self.on_frame(b0 & 0x80, b0 & 0x0F, buf[pos + head:end], now)
            pos = end
        self.buffer = buf[pos:] if pos >= 0 else buf

    def handshake(self, buf: bytes) -> int:
        """Check the 101 answer; the offset of the first frame, or -1 while it is incomplete."""
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return -1
        status, *lines = buf[:end].decode("latin-1").split("\r\n")
        fields = {name.strip().lower(): value.strip() for name, _, value in (l.partition(":") for l in lines)}
        if status.split()[1:2] != ["101"] or fields.get("sec-websocket-accept") != accept_key(self.key):
            self.fail(f"handshake {status}")
            return len(buf)
        self.open = True
        return end + 4

    def on_frame(self, fin: int, opcode: int, payload: bytes, now: int) -> None:
        if opcode == Opcode.PING:
            self.send(Frame(Opcode.PONG, payload))
        elif opcode == Opcode.CLOSE:
            self.fail("closed " + str(int.from_bytes(payload[:2], "big")))
            self.send(Frame(Opcode.CLOSE, payload[:2]))
        elif opcode in (Opcode.TEXT, Opcode.CONT):
            self.fragments.append(payload)
            if fin:
                payload, self.fragments = b"".join(self.fragments), []
                self.on_payload(payload, now)

    def send(self, frame: Frame) -> None:
        assert self.transport is not None
        self.transport.write(frame.serialize(mask=True))

    def on_payload(self, payload: bytes, now: int) -> None:
        """A text message: its version, read from the message's head where every server puts
        it (no JSON parse: a load generator that slows with the message's size would add its
        own delay to a server that sends more per message); JSON only for anything else."""
        version: Any = None
        head = None if self.socketio else VERSION_FIRST.match(payload)
        if head is not None:
            version = int(head[1])
        else:
            text = payload.decode()
            if self.socketio:
                text = self.socketio_payload(text)
                if not text:
                    return
            message = json.loads(text)
            version = message.get("version") if isinstance(message, dict) else None
        if isinstance(version, int):
            self.receipts.append((version, now))
            self.stats.received += 1
        if not self.ready.done():
            self.ready.set_result(None)

    def socketio_payload(self, text: str) -> str:
        """Engine.IO/socket.io v4 framing: answer the handshake and pings, unwrap events."""
        if text.startswith("0"):  # engine.io OPEN: connect to the default namespace
            self.send(Frame(Opcode.TEXT, b"40"))
        elif text.startswith("40") and not self.ready.done():
            self.ready.set_result(None)
        elif text == "2":  # engine.io PING
            self.send(Frame(Opcode.TEXT, b"3"))
        elif text.startswith("42"):
            _name, payload = json.loads(text[2:])
            return json.dumps(payload)
        return ""

    def fail(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(reason))
        elif not self.closed:
            self.stats.errors[reason] += 1
        self.closed = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail("connection lost")


class Stats:
    def __init__(self) -> None:
        self.received = 0
        self.errors: Counter[str] = Counter()


async def open_client(spec: dict[str, str], stats: Stats, gate: asyncio.Semaphore, index: int) -> Client | None:
    uri = parse_uri(spec["url"])
    loop = asyncio.get_running_loop()
    source = (SOURCES[index % len(SOURCES)], 0) if uri.host.startswith("127.") else None
    async with gate:
        try:
            _transport, client = await asyncio.wait_for(loop.create_connection(
                lambda: Client(spec["url"], spec["proto"], stats, spec.get("headers")),  # type: ignore[arg-type]
                uri.host, uri.port, local_addr=source), CONNECT_TIMEOUT_S)
            await asyncio.wait_for(client.ready, CONNECT_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError) as exc:
            stats.errors[f"connect: {type(exc).__name__} {exc}"[:120]] += 1
            return None
        return client


def answer(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


async def main(spec_path: str, out_path: str) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    spec = json.loads(open(spec_path).read())
    sockets: list[dict[str, str]] = spec["sockets"]
    gate = asyncio.Semaphore(int(spec.get("concurrency", 100)))
    stats = Stats()
    clients: list[Client | None] = []
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().split():
        command = line[0]
        if command == "connect":
            batch = sockets[len(clients):int(line[1])]
            clients += await asyncio.gather(*(open_client(s, stats, gate, len(clients) + i)
                                              for i, s in enumerate(batch)))
            answer({"connected": sum(c is not None for c in clients),
                    "failed": sum(c is None for c in clients)})
        elif command == "count":
            answer({"received": stats.received})
        elif command == "mark":  # the measured window starts: no collector pause may stamp a frame late
            gc.collect()
            gc.freeze()
            gc.disable()
            stats.received = 0
            answer({"received": 0})
        elif command == "stop":
            break
    gc.enable()
    result = {
        "receipts": [c.receipts if c else [] for c in clients],
        "closed": [i for i, c in enumerate(clients) if c is None or c.closed],
        "errors": dict(stats.errors),
    }
    with open(out_path, "w") as out:
        json.dump(result, out)
    for client in clients:
        if client and client.transport:
            client.transport.abort()
    answer({"done": True})


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        asyncio.run(main(sys.argv[1], sys.argv[2]))
    else:
        uvloop.run(main(sys.argv[1], sys.argv[2]))
