"""A clinic's announcement languages, in order: the clinic field ``languages``.

Kept in SQLite (``clinic_languages``, written by the primary's clinic endpoints) and mirrored
to the Redis string ``qt:speech:langs:{clinic}`` (JSON list), which every process reads; the
primary re-mirrors the table at start. A clinic that never chose has :data:`DEFAULT_LANGUAGES`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from ..engine import redis_keys as keys
from ..record.store import Store
from ..runtime.redis_conn import UNREACHABLE
from .phrases import DEFAULT_LANGUAGES

log = logging.getLogger(__name__)


async def get(redis: aioredis.Redis, clinic: str) -> list[str]:
    raw: Any = await redis.get(keys.clinic_languages(clinic))
    return list(json.loads(raw)) if raw else list(DEFAULT_LANGUAGES)


async def set_languages(store: Store, redis: aioredis.Redis, clinic: str, languages: Sequence[str]) -> list[str]:
    """Record a clinic's choice (already validated), then mirror it."""
    value = json.dumps(list(languages))
    await store.execute("INSERT INTO clinic_languages (clinic_id, languages, updated_at) VALUES (?, ?, ?) "
                        "ON CONFLICT (clinic_id) DO UPDATE SET languages = excluded.languages, "
                        "updated_at = excluded.updated_at", (clinic, value, int(time.time() * 1000)))
    await redis.set(keys.clinic_languages(clinic), value)
    return list(languages)


async def mirror_all(store: Store, redis: aioredis.Redis) -> None:
    for row in await store.fetchall("SELECT clinic_id, languages FROM clinic_languages", ()):
        await redis.set(keys.clinic_languages(row["clinic_id"]), row["languages"])


async def mirror_at_start(store: Store, redis: aioredis.Redis) -> None:
    """``mirror_all`` at the primary's start; Redis down only delays it to the next start."""
    try:
        await mirror_all(store, redis)
    except UNREACHABLE:
        log.warning("Redis unreachable at start; clinics' announcement languages not mirrored")
