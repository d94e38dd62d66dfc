"""WebSocket clients for hub tests: real ``websockets`` connections to a real server, and a
display client that rebuilds the screen from snapshot + updates exactly as docs/fanout.md says."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from conftest import TIMEOUT_FACTOR
from qtraq_live.engine.eta import queue_wait_s

Json = dict[str, Any]
WAIT_S = 10.0 * TIMEOUT_FACTOR


@contextlib.contextmanager
def uvicorn_thread(app: ASGIApp, **config: Any) -> Iterator[tuple[str, uvicorn.Server]]:
    """uvicorn serving ``app`` with ``config`` (its WebSocket protocol, pings…) in a thread of
    this process, on a free port: yields its ``ws://`` base URL and the server."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, **{"log_level": "warning", "ws_per_message_deflate": False, **config}))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(sockets=[sock]),), daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "test server did not start"
        time.sleep(0.01)
    try:
        yield f"ws://127.0.0.1:{sock.getsockname()[1]}", server
    finally:
        server.should_exit = True
        thread.join(WAIT_S)
        loop.close()
        sock.close()


def ws_url(http_url: str, path: str) -> str:
    return http_url.replace("http://", "ws://", 1) + path


async def open_ws(url: str, **kwargs: Any) -> ClientConnection:
    return await connect(url, **{"compression": None, "proxy": None, "open_timeout": WAIT_S, **kwargs})


async def recv(conn: ClientConnection, timeout: float = WAIT_S) -> Json:
    msg: Json = json.loads(await asyncio.wait_for(conn.recv(), timeout))
    return msg


async def recv_until(conn: ClientConnection, version: int, timeout: float = WAIT_S) -> list[Json]:
    """Messages until one carries ``version`` (or newer)."""
    out: list[Json] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not out or out[-1].get("version", 0) < version:
        out.append(await recv(conn, max(0.01, deadline - loop.time())))
    return out


async def close_code(url: str, **kwargs: Any) -> int:
    """The code the server closes a socket with before sending anything."""
    conn = await open_ws(url, **kwargs)
    try:
        await asyncio.wait_for(conn.recv(), WAIT_S)
    except ConnectionClosed as exc:
        assert exc.rcvd is not None
        return exc.rcvd.code
    finally:
        await conn.close()
    raise AssertionError("the socket stayed open")


class Screen:
    """A display's state rebuilt from its messages (the client side of the protocol)."""

    def __init__(self) -> None:
        self.version = 0
        self.queues: dict[str, Json] = {}
        self.recent: list[Json] = []
        self.seen: list[int] = []  # versions of updates, in arrival order
        self.snapshots = 0

    def apply(self, msg: Json) -> None:
        if msg["type"] == "snapshot":
            assert msg["version"] >= self.version
            self.snapshots += 1
            self.version = msg["version"]
            self.queues = {q["id"]: q for q in msg["queues"]}
            self.recent = list(msg["recent"])
        elif msg["type"] == "update":
            assert msg["version"] == self.version + 1, (self.version, msg["version"])
            self.version = msg["version"]
            self.seen.append(msg["version"])
            for header in msg["queues"]:
                old = self.queues.get(header["id"], {"now_serving": [], "waiting": []})
                self.queues[header["id"]] = {**header, "now_serving": old["now_serving"], "waiting": old["waiting"]}
            for entry in msg["tickets"]:
                for q in self.queues.values():
                    q["waiting"] = [e for e in q["waiting"] if e["id"] != entry["id"]]
                    q["now_serving"] = [e for e in q["now_serving"] if e["id"] != entry["id"]]
                q = self.queues[entry["queue"]]
                if entry["status"] == "waiting":
                    q["waiting"] = sorted([*q["waiting"], entry], key=lambda e: e["order"])
                elif entry["status"] in ("called", "serving"):
                    q["now_serving"] = sorted([*q["now_serving"], entry], key=lambda e: e["called_at"])
            if "call" in msg:
                self.recent = [msg["call"], *self.recent][:10]

    def labels(self) -> Json:
        """Per queue: who is being seen (as a sorted list: two calls in the same millisecond may
        be shown in either order), who waits in order, the average wait."""
        return {qid: (sorted(e["label"] for e in q["now_serving"]), [e["label"] for e in q["waiting"]],
                      q["avg_wait_s"]) for qid, q in self.queues.items()}


def engine_labels(state: Json) -> Json:
    """The same shape as :meth:`Screen.labels` from ``engine.clinic_state()`` (the raw state, which
    holds what the wait is worked out from)."""
    return {q["id"]: (sorted(t["label"] for t in q["now_serving"]), [t["label"] for t in q["waiting"]],
                      queue_wait_s(len(q["waiting"]), q))
            for q in state["queues"]}
