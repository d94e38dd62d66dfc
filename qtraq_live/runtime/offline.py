"""Redis, the engine and the SQLite record for a one-shot command, whether or not the server runs.

:func:`run_offline` uses the running server's embedded Redis when one answers on its socket,
otherwise starts it for the command's duration. Console commands (``cli.py`` and each area's
``commands.py``) reach their resources through it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from ..config import Settings
from .duties import Context, open_context
from .server import embedded_redis

T = TypeVar("T")


@contextlib.asynccontextmanager
async def offline_context(settings: Settings) -> AsyncIterator[Context]:
    """Redis, engine and SQLite for a one-shot command, whether or not the server runs."""
    with contextlib.ExitStack() as stack:
        if settings.embedded_redis:
            redis_server = embedded_redis(settings)
            if not redis_server.is_running():
                redis_server.start()
                stack.callback(redis_server.stop)
        async with open_context(settings) as ctx:
            yield ctx


def run_offline(settings: Settings, action: Callable[[Context], Awaitable[T]]) -> T:
    """Run ``await action(ctx)`` inside :func:`offline_context`."""
    async def main() -> T:
        async with offline_context(settings) as ctx:
            return await action(ctx)

    return asyncio.run(main())
