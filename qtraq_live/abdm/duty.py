"""``abdm_upkeep``, one of the primary's duties: the retention purge of shared ABHA profiles,
their consent records and registrations (``abdm.profile_days``), hourly."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol

import redis.asyncio as aioredis

from ..config import Settings
from ..record.store import Store
from . import records


class Context(Protocol):
    """What this duty uses of the duties process's context."""

    settings: Settings
    redis: aioredis.Redis
    store: Store

EVERY_S = 3600.0


async def abdm_upkeep(ctx: Context, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await records.purge(ctx.store, ctx.redis, ctx.settings["abdm.profile_days"], int(time.time() * 1000))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), EVERY_S)
