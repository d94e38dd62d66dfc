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
from qtraq_live.redis_conn import UnixConnection, WaitingPool, async_client

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
