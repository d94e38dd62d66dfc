"""The scrape-time queue figures of ``/metrics``: how many wait in each queue and for how long.

Read from the live state at scrape time (two pipelined round trips), not counted as events
happen, so every process's ``/metrics`` shows the same figures.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis
from prometheus_client.core import GaugeMetricFamily, Metric

from ..queue_engine import NORMAL_OFFSET
from . import redis_keys as keys


async def queue_families(redis: aioredis.Redis) -> list[Metric]:
    """Waiting count and longest current wait of every queue: two pipelined round trips.

    The waiting set is ordered urgent-first, so the oldest arrival is the smaller of the first
    urgent and the first normal entry (scores are arrival µs, normal ones offset)."""
    clinics = sorted(str(c) for c in await redis.smembers(keys.CLINICS))  # a decoded client
    async with redis.pipeline(transaction=False) as pipe:
        for c in clinics:
            pipe.zrange(keys.clinic_queues(c), 0, -1)
        queues = [q for found in await pipe.execute() for q in found]
    async with redis.pipeline(transaction=False) as pipe:
        for q in queues:
            pipe.zcard(keys.waiting(q))
            pipe.zrange(keys.waiting(q), 0, 0, withscores=True)
            pipe.zrangebyscore(keys.waiting(q), NORMAL_OFFSET, "+inf", start=0, num=1, withscores=True)
        replies = await pipe.execute()
    waiting = GaugeMetricFamily("qtraq_queue_waiting", "Tickets waiting, read from Redis at scrape", labels=["queue"])
    longest = GaugeMetricFamily("qtraq_queue_longest_wait_seconds",
                                "How long the longest-waiting ticket has waited, at scrape", labels=["queue"])
    now_us = time.time() * 1_000_000
    for i, q in enumerate(queues):
        count, first, first_normal = replies[3 * i: 3 * i + 3]
        waiting.add_metric([q], count)
        arrivals = [s for _, s in first if s < NORMAL_OFFSET] + [s - NORMAL_OFFSET for _, s in first_normal]
        longest.add_metric([q], max(0.0, (now_us - min(arrivals)) / 1_000_000) if arrivals else 0.0)
    return [waiting, longest]
