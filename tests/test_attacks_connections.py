"""Connection exhaustion (issue #21 item 9), against running servers: many WebSockets from one
address with one self check-in token, slow headers and slow bodies held open, and the shipped
nginx config's own limits. docs/security.md maps each to its test here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis
from websockets.exceptions import ConnectionClosed

from qtraq_live.engine import redis_keys as keys
from qtraq_live.queue_engine import QueueEngine
from qtraq_live.web.socket_limits import AddressCap, address_field
from support_serve import ServeProcess, children_of, serve_process  # noqa: F401
from tests.support_http import StartServer, start_server  # noqa: F401
from tests.support_hub import open_ws, recv, ws_url
from tests.support_notify import await_until, wait_until

CAP = 20
DEPLOY = Path(__file__).resolve().parent.parent / "docs" / "deploy"


async def test_one_address_cannot_hold_thousands_of_sockets_and_the_slots_come_back(
        start_server: StartServer, sync_redis: redis.Redis) -> None:
    live = start_server(security__sockets_per_address=CAP)
    await asyncio.to_thread(live.clinic, "c1", ("gp",), self_checkin=True)
    joined = await asyncio.to_thread(live.client().post, "/public/queues/gp/join", json={})
    url = ws_url(live.url, f"/ws/t/{joined.json()['ticket']['token']}")
    held = [await open_ws(url) for _ in range(CAP)]
    for ws in held:
        assert (await recv(ws))["type"] == "snapshot"
    refused = [await open_ws(url) for _ in range(5)]
    for ws in refused:
        with pytest.raises(ConnectionClosed) as closed:
            await recv(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    cap: AddressCap = live.app.state.socket_cap
    assert sum(cap.open.values()) == CAP
    assert sync_redis.hget(cap.key, address_field("127.0.0.1")) == str(CAP)  # what the other processes see
    for ws in held + refused:
        await ws.close()
    await await_until(lambda: not cap.open, "every slot to come back")  # nothing kept per closed socket
    await await_until(lambda: sync_redis.hkeys(cap.key) == ["~"], "every slot to come back in Redis")
    again = await open_ws(url)
    assert (await recv(again))["type"] == "snapshot"
    await again.close()


LEASE_S = 10  # long enough to still hold right after a kill, short enough to wait out


async def _refused(url: str) -> bool:
    """Whether the server turns a new socket away with 1013 (else it is served a snapshot)."""
    ws = await open_ws(url)
    try:
        await recv(ws)
        return False
    except ConnectionClosed as closed:
        assert closed.rcvd is not None and closed.rcvd.code == 1013
        return True
    finally:
        await ws.close()


async def test_the_cap_holds_across_processes_and_a_killed_process_stops_counting(
        tmp_path: Path, redis_url: str, engine: QueueEngine, sync_redis: redis.Redis) -> None:
    env = {"QTRAQ_REDIS_URL": redis_url, "QTRAQ_SOCKETS_PER_ADDRESS": str(CAP), "QTRAQ_SOCKET_LEASE_S": str(LEASE_S)}
    key = secrets.token_urlsafe(24)
    path = f"/ws/display/c1?key={key}"
    held: list[Any] = []
    with ServeProcess(tmp_path / "primary", env=env) as primary, \
            ServeProcess(tmp_path / "hub", env=env, args=["--role", "hub"]) as hub:
        await engine.create_clinic("c1", "City Clinic")
        await engine.create_queue("c1", "gp", "General", "A")
        sync_redis.set(keys.display_key(key), "c1")  # what the primary's access layer writes
        sync_redis.sadd(keys.display_keys_of("c1"), keys.secret_hash(key))
        try:
            for url, n in ((ws_url(primary.url, path), CAP - 8), (ws_url(hub.url, path), 8)):
                for _ in range(n):
                    held.append(await open_ws(url))
                    assert (await recv(held[-1]))["type"] == "snapshot"
            # the address holds the cap in total: neither process takes one more
            assert await _refused(ws_url(hub.url, path)) and await _refused(ws_url(primary.url, path))
            _crash(hub)  # its 8 sockets die without giving their slots back
            assert await _refused(ws_url(primary.url, path))  # they count until its lease runs out
            assert sync_redis.scard(keys.SOCKET_PROCESSES) == 2
            await _await_served(ws_url(primary.url, path))
            assert sync_redis.scard(keys.SOCKET_PROCESSES) == 1  # the dead one left the set of processes
        finally:
            for ws in held:
                with contextlib.suppress(Exception):
                    await ws.close()


def _crash(srv: ServeProcess) -> None:
    """SIGKILL a ``serve`` and its HTTP processes at once, as the OOM killer would (a killed
    supervisor alone makes the kernel SIGTERM its children: a clean stop that gives slots back)."""
    assert srv.proc is not None
    os.kill(srv.proc.pid, signal.SIGSTOP)  # no restart of the HTTP process in between
    for pid in children_of(srv.proc.pid):
        os.kill(pid, signal.SIGKILL)
    srv.kill()


async def _await_served(url: str, timeout: float = LEASE_S * 4) -> None:
    """Try a socket every half second until one is served (the killed process's lease ran out)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while await _refused(url):
        assert asyncio.get_running_loop().time() < deadline, "a killed process's sockets never stopped counting"
        await asyncio.sleep(0.5)


async def test_a_lapsed_lease_is_taken_again_with_every_count_and_a_stopped_process_counts_no_more(
        aredis: aioredis.Redis) -> None:
    address = "203.0.113.5"
    here, there = AddressCap(3, 30), AddressCap(3, 30)  # two processes' caps on one Redis
    await here.start(aredis)
    await there.start(aredis)
    try:
        assert await here.take(address) and await here.take(address)
        await aredis.delete(here.key)  # Redis restarted without it, or the process stalled past its lease
        assert await here.take(address)
        assert await aredis.hget(here.key, address_field(address)) == "3"  # all three, not only the last
        assert not await there.take(address)  # the other process sees them
        await here.stop()
        assert await there.take(address)  # a process that stopped holds nothing
    finally:
        await here.stop()
        await there.stop()


def _slow_header(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and never the rest
    s.settimeout(0.05)
    return s


def _closed(s: socket.socket) -> bool:
    try:
        return s.recv(1024) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def test_slow_headers_and_slow_bodies_are_cut_off(tmp_path: Path, serve_process: Any) -> None:
    srv: ServeProcess = serve_process(tmp_path / "data", env={"QTRAQ_HEADER_TIMEOUT_S": "1",
                                                              "QTRAQ_BODY_TIMEOUT_S": "1"})
    slow = [_slow_header(srv.port) for _ in range(100)]
    silent = socket.create_connection(("127.0.0.1", srv.port))  # says nothing at all
    silent.settimeout(0.05)
    try:
        wait_until(lambda: all(_closed(s) for s in [*slow, silent]), "the server to close the slow connections")
        assert httpx.get(f"{srv.url}/healthz").status_code == 200  # real clients were served meanwhile
        with socket.create_connection(("127.0.0.1", srv.port)) as body:
            body.sendall(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 200\r\n\r\n{\"username\": ")
            body.settimeout(30)
            answer = b""
            while chunk := body.recv(4096):  # until the server closes or the JSON error has come
                answer += chunk
                if answer.endswith(b"}}"):
                    break
        assert answer.startswith(b"HTTP/1.1 408") and b"request_timeout" in answer
    finally:
        for s in [*slow, silent]:
            with contextlib.suppress(OSError):
                s.close()


@pytest.mark.parametrize("conf", ["nginx.conf", "nginx-hubs.conf"])
def test_the_shipped_nginx_config_limits_connections_and_requests(conf: str) -> None:
    text = (DEPLOY / conf).read_text()
    assert re.search(r"^limit_conn_zone \$binary_remote_addr zone=qtraq_conn:\d+m;", text, re.M)
    assert re.search(r"^limit_req_zone \$binary_remote_addr zone=qtraq_req:\d+m rate=\d+r/s;", text, re.M)
    assert re.search(r"location /ws/ \{[^}]*limit_conn qtraq_conn \d+;", text)
    assert re.search(r"limit_req zone=qtraq_req burst=\d+", text)
    assert re.search(r"client_header_timeout \d+s;", text) and re.search(r"client_body_timeout \d+s;", text)
    assert re.search(r"location = /metrics \{\s*return 404;", text)  # item 15: never through the proxy
