"""Fixed-window rate limits in Redis, shared by every process behind the same Redis."""

from __future__ import annotations

import redis.asyncio as aioredis

from ..engine import redis_keys as keys
from ..errors import RateLimited


async def hit(redis: aioredis.Redis, scope: str, who: str, limit: int, window_s: int) -> None:
    """Count one request of ``who`` in ``scope``; over ``limit`` per window → 429 with Retry-After."""
    key = keys.rate_limit(scope, keys.secret_hash(who)[:32])  # no raw IPs or names in key names
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(key, 0, ex=window_s, nx=True)  # opens the window (Redis 6.2 has no EXPIRE NX)
        pipe.incr(key)  # INCR keeps the TTL
        pipe.ttl(key)
        _, count, ttl = await pipe.execute()
    if int(count) > limit:
        raise RateLimited(f"too many requests; retry in {max(int(ttl), 1)} s", retry_after=int(ttl))
