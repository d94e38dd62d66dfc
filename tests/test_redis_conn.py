"""The web layer's Redis pool: a burst beyond it waits its turn (and times out as configured),
while the common case, an idle connection, is handed out directly; commands are packed in C,
into the bytes redis-py would send."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.connection import UnixDomainSocketConnection

from qtraq_live.config import Settings
from qtraq_live.runtime.redis_conn import UnixConnection, WaitingPool, async_client

MakePool = Callable[[int, float], WaitingPool]


@pytest.fixture
async def make_pool(redis_url: str) -> AsyncIterator[MakePool]:
    """Pools of ``size`` connections waiting up to ``wait_s`` on the test Redis, closed after."""
    pools: list[WaitingPool] = []

    def make(size: int, wait_s: float) -> WaitingPool:
        pools.append(WaitingPool.from_url(redis_url, decode_responses=True, max_connections=size, timeout=wait_s))
        return pools[-1]

    yield make
    for pool in pools:
        await pool.disconnect()


async def test_the_app_client_uses_the_waiting_pool(settings: Settings) -> None:
    client = async_client(settings)
    try:
        assert isinstance(client.connection_pool, WaitingPool)
        assert await client.ping()
    finally:
        await client.aclose()


async def test_an_idle_connection_is_reused(make_pool: MakePool) -> None:
    pool = make_pool(2, 1)
    client = aioredis.Redis(connection_pool=pool)
    await client.set("k", "v")
    first = await pool.get_connection()
    await pool.release(first)
    assert await pool.get_connection() is first  # not a new connection per command
    await pool.release(first)
    assert await client.get("k") == "v"


async def test_a_task_beyond_the_pool_waits_for_a_released_connection(make_pool: MakePool) -> None:
    pool = make_pool(2, 5)
    held = [await pool.get_connection(), await pool.get_connection()]
    waiter = asyncio.create_task(pool.get_connection())
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await pool.release(held[0])  # handed to the waiter, not left idle
    assert await asyncio.wait_for(waiter, 1) is held[0]
    for connection in held:
        await pool.release(connection)


async def test_a_burst_larger_than_the_pool_is_served_in_turn(make_pool: MakePool) -> None:
    pool = make_pool(3, 5)
    client = aioredis.Redis(connection_pool=pool)
    await asyncio.gather(*(client.incr("n") for _ in range(200)))
    assert await client.get("n") == "200"
    assert len(pool._in_use_connections) == 0 and len(pool._available_connections) <= 3


async def test_a_wait_beyond_the_timeout_fails_as_before(make_pool: MakePool) -> None:
    pool = make_pool(1, 0.2)
    held = await pool.get_connection()
    with pytest.raises(redis.exceptions.ConnectionError, match="No connection available"):
        await pool.get_connection()
    await pool.release(held)
    assert await pool.get_connection() is held  # the failed wait left the pool usable
    await pool.release(held)


@pytest.mark.parametrize("args", [
    ("EVALSHA", "a" * 40, 1, "qt:k", b'{"queue": "gp"}', 1764000000000, 1.5, "Ünal", "x" * 10_000),
    ("CONFIG GET", "maxmemory"),  # a two-word command name: two arguments on the wire
    ("SET", "k", bytearray(b"v")),  # not taken by hiredis: redis-py packs it
    ("SET", "k", memoryview(b"v")),
])
def test_commands_are_packed_into_the_bytes_redis_py_sends(args: tuple[Any, ...]) -> None:
    ours = UnixConnection(path="/nowhere").pack_command(*args)
    theirs = UnixDomainSocketConnection(path="/nowhere").pack_command(*args)
    assert b"".join(ours) == b"".join(theirs)


def test_what_redis_py_refuses_to_pack_is_refused() -> None:
    with pytest.raises(redis.exceptions.DataError):
        UnixConnection(path="/nowhere").pack_command("SET", "k", None)


async def test_a_write_the_transport_takes_starts_no_task(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """redis-py's own connection bounds each write with asyncio.wait_for (a task and a timer
    on Python 3.11); ours writes straight to the transport, replies unchanged."""
    waits: list[object] = []
    wait_for = asyncio.wait_for

    def counted(awaitable: Any, timeout: float | None) -> Any:
        waits.append(awaitable)
        return wait_for(awaitable, timeout)

    monkeypatch.setattr(asyncio, "wait_for", counted)
    path = redis_url.removeprefix("unix://")
    for cls, expected in ((UnixDomainSocketConnection, 21), (UnixConnection, 0)):
        client = aioredis.Redis(connection_pool=aioredis.ConnectionPool(
            connection_class=cls, path=path, decode_responses=True, socket_timeout=5))
        await client.ping()
        waits.clear()
        for i in range(20):
            assert await client.set(f"conn:{i}", i) is True
        async with client.pipeline(transaction=True) as pipe:
            pipe.get("conn:3").incr("conn:4")
            assert await pipe.execute() == ["3", 5]
        assert len(waits) == expected, cls
        await client.aclose()


async def test_a_write_redis_does_not_read_still_times_out(redis_url: str) -> None:
    """When the transport cannot take a command at once (Redis busy, the socket buffer full),
    the write waits for the buffer to drain, bounded by socket_timeout as in redis-py."""
    path = redis_url.removeprefix("unix://")
    blocker = aioredis.Redis(unix_socket_path=path, socket_timeout=10)
    conn = UnixConnection(path=path, socket_timeout=0.5)
    await conn.connect()
    sleeping = asyncio.create_task(blocker.execute_command("DEBUG", "SLEEP", "2"))
    await asyncio.sleep(0.2)  # Redis is inside DEBUG SLEEP: it reads no socket
    with pytest.raises(redis.exceptions.TimeoutError):  # the socket timeout, not Redis waking up
        await conn.send_packed_command(conn.pack_command("SET", "conn:big", b"x" * (32 << 20)))
    assert not conn.is_connected  # a half-written command is not left on the socket
    await sleeping
    await blocker.aclose()
