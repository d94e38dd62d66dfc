"""Redis clients from settings: the embedded server's unix socket, or ``QTRAQ_REDIS_URL``.

The connection is always passed in explicitly (never a hidden global), as RQ does.
"""

from __future__ import annotations

from pathlib import Path

import redis
import redis.asyncio as aioredis

from .config import Settings


def embedded_socket_path(data_dir: Path) -> Path:
    return data_dir / "redis" / "redis.sock"


def redis_url(settings: Settings) -> str:
    """The URL every process of this deployment connects to."""
    if settings.redis_url:
        return settings.redis_url
    return f"unix://{embedded_socket_path(settings.data_dir).resolve()}"


def async_client(settings: Settings, *, decode: bool = True) -> aioredis.Redis:
    return aioredis.from_url(redis_url(settings), decode_responses=decode, health_check_interval=30)


def sync_client(settings: Settings, *, decode: bool = True) -> redis.Redis:
    return redis.from_url(redis_url(settings), decode_responses=decode, health_check_interval=30)
