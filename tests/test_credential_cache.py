"""auth.CredentialCache against the real Redis: what it keeps, for how long, and what drops it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import redis.asyncio as aioredis

from qtraq_live.engine import redis_keys as keys
from qtraq_live.web.auth import CredentialCache, end_session

TOKEN, OTHER = keys.api_token("t" * 43), keys.api_token("o" * 43)


async def seed(r: aioredis.Redis) -> None:
    await r.hset(keys.user(7), mapping={"id": "7", "username": "desk", "role": "reception", "queues": "[]",
                                        "disabled": "0"})
    await r.set(TOKEN, "7")


@contextlib.asynccontextmanager
async def watching(r: aioredis.Redis, ttl_s: float = 30.0) -> AsyncIterator[CredentialCache]:
    """A cache whose subscription is confirmed (as in a serving process)."""
    cache = CredentialCache(r, ttl_s)
    task = asyncio.create_task(cache.watch())
    try:
        await until(lambda: cache.live)
        yield cache
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(condition: object, seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_found_credential_is_reused_until_its_ttl(aredis: aioredis.Redis) -> None:
    await seed(aredis)
    async with watching(aredis, ttl_s=0.5) as cache:
        assert (await cache.lookup(TOKEN, "token"))[1]["username"] == "desk"
        await aredis.delete(TOKEN)  # gone without an announcement (a flushed Redis, say)
        assert (await cache.lookup(TOKEN, "token"))[1]["username"] == "desk"  # from the cache
        await asyncio.sleep(0.6)
        assert await cache.lookup(TOKEN, "token") == ({}, {})


async def test_an_announcement_drops_every_process_s_credentials(aredis: aioredis.Redis) -> None:
    await seed(aredis)
    sid = "s" * 43
    await aredis.hset(keys.session(sid), mapping={"kind": "staff", "uid": "7", "csrf": "c"})
    async with watching(aredis) as one, watching(aredis) as two:
        for cache in (one, two):
            assert (await cache.lookup(keys.session(sid), "session"))[1]["id"] == "7"
            assert (await cache.lookup(TOKEN, "token"))[1]["id"] == "7"
        await end_session(aredis, sid)  # deletes the session and announces it
        for cache in (one, two):
            await until(lambda c=cache: not c._entries)
            assert await cache.lookup(keys.session(sid), "session") == ({}, {})
            assert (await cache.lookup(TOKEN, "token"))[1]["id"] == "7"  # found again, from Redis


async def test_nothing_is_kept_while_not_subscribed(aredis: aioredis.Redis) -> None:
    await seed(aredis)
    cache = CredentialCache(aredis, 30)  # watch() never started: invalidations could not reach it
    assert (await cache.lookup(TOKEN, "token"))[1]["id"] == "7"
    await aredis.delete(TOKEN)
    assert await cache.lookup(TOKEN, "token") == ({}, {})


async def test_a_lost_subscription_stops_the_cache_until_it_is_back(aredis: aioredis.Redis) -> None:
    await seed(aredis)
    async with watching(aredis) as cache:
        await cache.lookup(TOKEN, "token")
        assert await aredis.client_kill_filter(_type="pubsub") >= 1
        await until(lambda: not cache.live)
        assert not cache._entries
        await aredis.delete(TOKEN)
        assert await cache.lookup(TOKEN, "token") == ({}, {})  # asked Redis, not a stale copy
        await until(lambda: cache.live)  # resubscribed after RETRY_S


async def test_only_found_staff_credentials_are_kept(aredis: aioredis.Redis) -> None:
    await seed(aredis)
    account_sid = "a" * 43  # an account session whose uid happens to be a staff user's id
    await aredis.hset(keys.session(account_sid), mapping={"kind": "account", "uid": "7", "csrf": "c"})
    async with watching(aredis) as cache:
        assert await cache.lookup(OTHER, "token") == ({}, {})
        await aredis.set(OTHER, "7")
        assert (await cache.lookup(OTHER, "token"))[1]["id"] == "7"  # a new token works at once
        await cache.lookup(keys.session(account_sid), "session")
        assert set(cache._entries) == {OTHER}


async def test_a_lookup_that_began_before_a_drop_keeps_nothing(aredis: aioredis.Redis) -> None:
    await seed(aredis)
    async with watching(aredis) as cache:
        pending = asyncio.create_task(cache.lookup(TOKEN, "token"))
        await asyncio.sleep(0)  # the lookup has started and waits for Redis
        cache.forget()  # what an announcement arriving meanwhile does
        assert (await pending)[1]["id"] == "7"
        assert not cache._entries


async def test_a_zero_ttl_turns_the_cache_off(aredis: aioredis.Redis) -> None:
    await seed(aredis)
    cache = CredentialCache(aredis, 0)
    await asyncio.wait_for(cache.watch(), 1)  # returns at once: nothing to listen for
    await cache.lookup(TOKEN, "token")
    assert not cache._entries
