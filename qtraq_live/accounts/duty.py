"""The accounts area's background duty on the primary: appointment reminders (the day before
and an hour before), automatic no-shows after the grace period, and the daily retention purge.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime, timezone
from typing import Protocol

import redis.asyncio as aioredis

from ..config import Settings
from ..queue_engine import QueueEngine
from ..record.store import Store
from . import appointments, notices, privacy


class Context(Protocol):
    """What this duty uses of the duties process's context."""

    settings: Settings
    redis: aioredis.Redis
    engine: QueueEngine
    store: Store

TICK_S = 30.0


async def tick(ctx: Context, now_ms: int) -> None:
    """One round: no-shows, then the reminders that are due."""
    await appointments.mark_no_shows(ctx.store, now_ms)
    for kind, appt in await appointments.take_due_reminders(ctx.store, now_ms):
        await notices.send_appointment(ctx.engine, ctx.store, ctx.settings, "appointment_reminder", appt,
                                       tag=f"reminder-{kind}")


async def account_upkeep(ctx: Context, stop: asyncio.Event) -> None:
    """Runs every :data:`TICK_S`; the purge runs at start and then once per (UTC) day."""
    purged_on = None
    while not stop.is_set():
        now_ms = int(time.time() * 1000)
        today = datetime.now(timezone.utc).date()
        if purged_on != today:
            await privacy.purge(ctx.store, ctx.redis, ctx.settings, now_ms)
            purged_on = today
        await tick(ctx, now_ms)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), TICK_S)
