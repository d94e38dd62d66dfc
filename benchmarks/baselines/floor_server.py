"""Baseline (a), the floor: a bare ``websockets`` server, no Redis, no state.

A socket at ``/ws/{room}`` joins that room (``/ws/{room},{room}…``: each of them, as a screen
showing several queues) and gets a snapshot (version 0), as a real server's first message. ``POST /press`` with ``{"queue", "seq"}`` on the
second (HTTP) port sends one ``{"type": "update", "queue", "version": seq}`` frame to every
socket of the room with ``websockets.broadcast`` (serialised once, never awaits a slow
client). Nothing a real server does is here, so no server can beat it on this machine.
Prints ``{"port": WS_PORT, "press_port": HTTP_PORT}`` on stdout once listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections import defaultdict

from websockets.asyncio.server import ServerConnection, broadcast, serve

SNAPSHOT = json.dumps({"type": "snapshot", "version": 0})
ROOMS: defaultdict[str, set[ServerConnection]] = defaultdict(set)


async def handler(ws: ServerConnection) -> None:
    rooms = (ws.request.path.removeprefix("/ws/") if ws.request else "").split(",")
    for room in rooms:
        ROOMS[room].add(ws)
    try:
        await ws.send(SNAPSHOT)
        await ws.wait_closed()
    finally:
        for room in rooms:
            ROOMS[room].discard(ws)


def press(body: bytes) -> None:
    data = json.loads(body)
    message = json.dumps({"type": "update", "queue": data["queue"], "version": data["seq"]})
    broadcast(ROOMS.get(data["queue"], ()), message)


async def http_press(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Just enough HTTP/1.1 (keep-alive, Content-Length) for the load generator's presses."""
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            press(await reader.readexactly(length))
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                         b"content-length: 11\r\n\r\n{\"ok\":true}")
            await writer.drain()
    writer.close()


async def main() -> None:
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(handler, "127.0.0.1", 0, compression=None, backlog=4096) as ws_server:
        http_server = await asyncio.start_server(http_press, "127.0.0.1", 0)
        ports = {"port": ws_server.sockets[0].getsockname()[1],
                 "press_port": http_server.sockets[0].getsockname()[1]}
        sys.stdout.write(json.dumps(ports) + "\n")
        sys.stdout.flush()
        await stop
        http_server.close()


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        asyncio.run(main())
    else:
        uvloop.run(main())
