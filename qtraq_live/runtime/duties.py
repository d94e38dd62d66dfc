"""The duties process: the primary's background work, one coroutine per duty.

``qtraq-live serve`` (mode ``all``) starts one ``qtraq-live duties`` process. Each duty is
``async def duty(ctx, stop)``: it runs until ``stop`` is set. A duty that raises is logged and
restarted after a growing pause, without disturbing the others. Areas add their duty to
:data:`DUTIES` with one line.

:func:`open_context` is also how one-shot commands (``qtraq-live rebuild``, ``user add``…) and
the supervisor's start-up step reach Redis, the engine and the SQLite record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import redis.asyncio as aioredis

from ..abdm.duty import abdm_upkeep
from ..accounts.duty import account_upkeep
from ..accounts.notices import recipients_for_ticket
from ..config import Settings
from ..queue_engine import QueueEngine
from ..record.audit import copy_loop
from ..record.persister import Persister
from ..record.store import Store
from ..webhooks import run_webhooks
from ..workers.notifier import run_notifier
from . import gc_policy, redis_conn

log = logging.getLogger(__name__)

# Background work yields the CPU to requests and sockets: under a burst the record and the
# notices fall a little behind (the live state is in Redis already), presses do not slow down.
NICENESS = 10


@dataclass
class Context:
    settings: Settings
    redis: aioredis.Redis  # decoded
    engine: QueueEngine
    store: Store


Duty = Callable[[Context, asyncio.Event], Awaitable[None]]


@contextlib.asynccontextmanager
async def open_context(settings: Settings) -> AsyncIterator[Context]:
    """Redis client, engine (scripts loaded) and the opened SQLite record; closed on exit."""
    client = redis_conn.async_client(settings)
    store = Store(settings.data_dir / "qtraq.db")
    try:
        engine = QueueEngine(client, stream_maxlen=settings["engine.stream_maxlen"])
        await engine.load_scripts()
        await store.open()
        yield Context(settings, client, engine, store)
    finally:
        await store.close()
        await client.aclose()


async def persist(ctx: Context, stop: asyncio.Event) -> None:
    """Clinic event streams → the SQLite record."""
    await Persister(ctx.redis, ctx.store).run(stop)


async def notify(ctx: Context, stop: asyncio.Event) -> None:
    """Events and account requests → notices → RQ jobs; delivery outcomes → SQLite."""
    await run_notifier(ctx, stop, appointments=recipients_for_ticket)


async def copy_audit(ctx: Context, stop: asyncio.Event) -> None:
    """Staff audit entries (Redis stream) → the audit_log table."""
    await copy_loop(ctx, stop)


async def send_webhooks(ctx: Context, stop: asyncio.Event) -> None:
    """Clinic events → signed webhook jobs for the configured receivers (idle without any)."""
    await run_webhooks(ctx, stop)


DUTIES: list[Duty] = [
    persist,
    copy_audit,
    notify,
    account_upkeep,
    abdm_upkeep,
    send_webhooks,
]

MAX_BACKOFF_S = 30.0


async def _keep_running(duty: Duty, ctx: Context, stop: asyncio.Event) -> None:
    delay = 1.0
    while not stop.is_set():
        try:
            await duty(ctx, stop)
            return
        except Exception:
            log.error("duty %s failed; restarting in %.0f s", duty.__name__, delay, exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(MAX_BACKOFF_S, delay * 2)


async def run_duties(settings: Settings, duties: list[Duty] | None = None) -> None:
    """Run every duty until SIGTERM/SIGINT, then let each finish its current step."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with open_context(settings) as ctx:
        tasks = [asyncio.create_task(_keep_running(d, ctx, stop), name=d.__name__)
                 for d in (DUTIES if duties is None else duties)]
        log.info("duties running: %s", ", ".join(t.get_name() for t in tasks))
        gc_task = asyncio.create_task(gc_policy.freeze_survivors(), name="gc-policy")
        try:
            await asyncio.gather(*tasks)
        finally:
            gc_task.cancel()
    log.info("duties stopped")

