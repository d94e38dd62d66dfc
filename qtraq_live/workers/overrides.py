"""A clinic's own channel URLs: stored in SQLite, mirrored to Redis for the workers.

Only the primary writes them (the admin API); workers and the notifier read the Redis hash
``qt:notify:ch:{clinic}``. The notifier re-mirrors the whole table when it starts, so a
rebuilt Redis gets them back.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis

from ..engine import redis_keys as keys
from ..errors import ConfigError, Invalid
from ..record.store import Store
from .channels import CHANNELS, check_url


async def clinic_channels(store: Store, clinic: str) -> dict[str, str]:
    rows = await store.fetchall("SELECT channel, url FROM notify_channels WHERE clinic_id = ?", (clinic,))
    return {r["channel"]: r["url"] for r in rows}


async def set_clinic_channels(store: Store, redis: aioredis.Redis, clinic: str,
                              changes: Mapping[str, str | None]) -> dict[str, str]:
    """Set (a URL) or clear (None) some channels of a clinic; every URL is checked first."""
    for channel, url in changes.items():
        if url is not None:
            try:
                check_url(channel, channel, url)
            except ConfigError as exc:
                raise Invalid(channel, exc.message.split(": ", 1)[-1]) from None
    now = int(time.time() * 1000)
    async with store.transaction() as db:
        for channel, url in changes.items():
            if url is None:
                await db.execute("DELETE FROM notify_channels WHERE clinic_id = ? AND channel = ?", (clinic, channel))
            else:
                await db.execute(
                    "INSERT INTO notify_channels (clinic_id, channel, url, updated_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (clinic_id, channel) DO UPDATE SET url = excluded.url, updated_at = excluded.updated_at",
                    (clinic, channel, url, now))
    current = await clinic_channels(store, clinic)
    await _mirror_one(redis, clinic, current)
    return current


async def _mirror_one(redis: aioredis.Redis, clinic: str, current: Mapping[str, str]) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(keys.notify_channels(clinic))
        if current:
            pipe.hset(keys.notify_channels(clinic), mapping=dict[Any, Any](current))
        await pipe.execute()


async def mirror_all(store: Store, redis: aioredis.Redis) -> None:
    """Rewrite every clinic's Redis hash from SQLite (start of the notifier, after a rebuild)."""
    rows = await store.fetchall("SELECT clinic_id, channel, url FROM notify_channels", ())
    by_clinic: dict[str, dict[str, str]] = {}
    for r in rows:
        if r["channel"] in CHANNELS:
            by_clinic.setdefault(r["clinic_id"], {})[r["channel"]] = r["url"]
    for clinic, current in by_clinic.items():
        await _mirror_one(redis, clinic, current)
