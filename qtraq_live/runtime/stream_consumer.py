"""One way to consume Redis streams in a consumer group: the runner every stream consumer uses.

The persister, the notifier, the webhooks duty, the audit copier and the delivery-log copier
each give a :class:`StreamConsumer` their group, which streams to read, and a handler; the
runner does the rest the same way for all of them:

- **group creation**: the group is made when a stream is first seen (``BUSYGROUP``, another
  process or an earlier run made it, is fine), reading from ``start(stream)`` (default ``0``:
  the whole stream);
- **a dead consumer's entries**: when a stream is first seen, what other consumers of the
  group read but never acknowledged (idle at least ``claim_idle_ms``) is claimed
  (``XAUTOCLAIM``) and handled first, together with this consumer's own pending entries;
- **ack after commit**: a batch is acknowledged (``XACK``, and ``XDEL`` where the stream's
  entries should not outlive their record) only after the handler returned; a handler that
  raises leaves the batch pending, and it is read again, first, after a backoff;
- **backoff**: 0.5 s doubling to 10 s; an outage (Redis or the disk) is logged once when it
  starts and once when it ends; a vanished group (Redis wiped) is made again;
- **gathering** (``linger_s``): a short batch that a blocking read brought is handled after
  ``linger_s``, with what came meanwhile, and the next read waits as long after a short batch:
  fewer commits under load, and a duty's work on a press's event does not share the core with
  the hub's fan-out of it (docs/benchmarks.md, "CPU per press in the big OPD");
- **metrics**: ``qtraq_stream_entries_total`` and ``qtraq_stream_failures_total`` by group.

A handler gets one batch, ``{stream: [(entry id, fields), …]}`` in stream order, and returns
which entries are done (``{stream: [ids]}``), or ``None`` for all of them. A handler that
acknowledges in its own atomic step (the persister: TTLs and ``XACK`` in one script) sets
``self_ack`` and returns what it acknowledged, for the count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

import redis.asyncio as aioredis
import redis.exceptions

from .. import metrics
from ..errors import Unavailable
from .redis_conn import UNREACHABLE

Fields = dict[str, str]
Batch = dict[str, list[tuple[str, Fields]]]
Acks = Mapping[str, Sequence[str]]
Handler = Callable[[Batch], Awaitable[Acks | None]]
Streams = Callable[[], Awaitable[Iterable[str]]]

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 10.0


def _from_start(stream: str) -> str:
    return "0"


def _keep(stream: str) -> bool:
    return False


class StreamConsumer:
    """One consumer of ``group`` on the streams ``streams()`` names (asked every ``refresh_s``)."""

    def __init__(self, redis: aioredis.Redis, group: str, consumer: str, handler: Handler, streams: Streams, *,
                 start: Callable[[str], str] = _from_start, delete: Callable[[str], bool] = _keep,
                 self_ack: bool = False, batch: int = 500, block_ms: int = 1000, linger_s: float = 0.0,
                 refresh_s: float = 0.0, claim_idle_ms: int = 0, name: str | None = None,
                 logger: logging.Logger | None = None) -> None:
        self.redis = redis
        self.group = group
        self.consumer = consumer
        self.handler = handler
        self.streams = streams
        self.start = start
        self.delete = delete  # True: entries are deleted once acknowledged (no personal data kept)
        self.self_ack = self_ack
        self.batch = batch
        self.block_ms = block_ms
        self.linger_s = linger_s  # a short batch gathers this long before and after it is handled
        self.refresh_s = refresh_s
        self.claim_idle_ms = claim_idle_ms
        self.name = name or group
        self.log = logger or logging.getLogger(__name__)
        self.known: list[str] = []            # streams whose group this consumer has checked
        self.pending: dict[str, str] = {}     # stream -> cursor in our pending entries still to replay
        self._refreshed = -float("inf")
        self._entries = metrics.STREAM_ENTRIES.labels(group)
        self._failures = metrics.STREAM_FAILURES.labels(group)

    # -- running ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; failures are retried with backoff, never raised."""
        backoff, down = FIRST_BACKOFF_S, False
        while not stop.is_set():
            try:
                await self.refresh()
                read, _ = await self.step(self.block_ms)
            except redis.exceptions.ResponseError as exc:
                if self.forget(exc):
                    continue
                down = await self._pause(stop, exc, down, backoff, logged=False)
            except (*UNREACHABLE, Unavailable) as exc:
                down = await self._pause(stop, exc, down, backoff, logged=False)
            except Exception as exc:  # a bug must not stop the consumer: log it, retry later
                down = await self._pause(stop, exc, down, backoff, logged=True)
            else:
                if down:
                    self.log.info("%s resumed", self.name)
                backoff, down = FIRST_BACKOFF_S, False
                if 0 < read < self.batch and self.linger_s:
                    await wait(stop, self.linger_s)
                continue
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def drain(self) -> int:
        """Handle everything the streams hold now (pending entries first); how many were done.
        Errors are raised (a vanished group is made again)."""
        total = 0
        while True:
            await self.refresh(force=True)
            try:
                read, done = await self.step(None)
            except redis.exceptions.ResponseError as exc:
                if self.forget(exc):
                    continue
                raise
            total += done
            if not read and not self.pending:
                return total

    async def _pause(self, stop: asyncio.Event, exc: BaseException, down: bool, backoff: float,
                     logged: bool) -> bool:
        self._failures.inc()
        if logged:
            self.log.error("%s step failed", self.name, exc_info=True)
        elif not down:
            self.log.warning("%s paused: %s; retrying", self.name, describe(exc))
        self.replay_pending()
        await wait(stop, backoff)
        return True

    # -- streams and groups ----------------------------------------------------------------

    async def refresh(self, force: bool = False) -> None:
        """Take on streams seen for the first time: make the group, claim a dead consumer's entries."""
        if not force and time.monotonic() - self._refreshed < self.refresh_s:
            return
        for stream in await self.streams():
            if stream in self.known:
                continue
            try:
                await self.redis.xgroup_create(stream, self.group, id=self.start(stream), mkstream=True)
            except redis.exceptions.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            await self._claim(stream)
            self.known.append(stream)
            self.pending[stream] = "0"
        self._refreshed = time.monotonic()

    async def _claim(self, stream: str) -> None:
        start = "0-0"  # redis-py answers only the ids with justid: the next start follows the last one
        while ids := await self.redis.xautoclaim(stream, self.group, self.consumer, self.claim_idle_ms, start,
                                                 count=self.batch, justid=True):
            ms, seq = ids[-1].split("-")
            start = f"{ms}-{int(seq) + 1}"

    def refresh_now(self) -> None:
        """Ask ``streams()`` again before the next read (a caller knows of a new stream)."""
        self._refreshed = -float("inf")

    def forget(self, exc: redis.exceptions.ResponseError) -> bool:
        """A stream or group vanished (Redis wiped or rebuilt): take every stream on again."""
        if "NOGROUP" not in str(exc):
            return False
        self.log.warning("%s: group or stream vanished (Redis wiped?); recreating", self.name)
        self.known.clear()
        self.pending.clear()
        self.refresh_now()
        return True

    def replay_pending(self) -> None:
        """After a failed batch its entries are pending (not acked): read them again first."""
        self.pending = {s: "0" for s in self.known}

    # -- reading and acknowledging ---------------------------------------------------------

    async def step(self, block_ms: int | None) -> tuple[int, int]:
        """Read one batch (our pending entries first) and handle it: (read, done)."""
        if self.pending:
            batch = await self._read(dict(self.pending), None)
            for stream in list(self.pending):
                if batch.get(stream):
                    self.pending[stream] = batch[stream][-1][0]
                else:
                    del self.pending[stream]
            if batch:
                return _size(batch), await self._handle(batch)
        if not self.known:
            if block_ms:
                await asyncio.sleep(block_ms / 1000)  # nothing to read yet; look for streams again
            return 0, 0
        batch = await self._read({s: ">" for s in self.known}, block_ms)
        if batch and block_ms and self.linger_s and _size(batch) < self.batch:
            batch = await self._gather(batch)
        return _size(batch), await self._handle(batch) if batch else 0

    async def _gather(self, batch: Batch) -> Batch:
        """A short batch that a wait brought is handled after ``linger_s``, with what came
        meanwhile: the entries a press just wrote are the hub's to fan out first (a duty shares
        its core, and its work on them can wait), and the batch grows (fewer commits)."""
        await asyncio.sleep(self.linger_s)
        more = await self._read({s: ">" for s in self.known}, None, self.batch - _size(batch))
        for stream, entries in more.items():
            batch.setdefault(stream, []).extend(entries)
        return batch

    async def _read(self, cursors: dict[str, str], block_ms: int | None, count: int | None = None) -> Batch:
        reply = await self.redis.xreadgroup(self.group, self.consumer, cursors,  # type: ignore[arg-type]
                                            count=count or self.batch, block=block_ms)
        return {stream: list(entries) for stream, entries in reply or [] if entries}

    async def _handle(self, batch: Batch) -> int:
        try:
            acks = await self.handler(batch)
        except BaseException:
            self.replay_pending()
            raise
        if acks is None:
            acks = {stream: [entry_id for entry_id, _ in entries] for stream, entries in batch.items()}
        done = sum(len(ids) for ids in acks.values())
        if not self.self_ack and done:
            async with self.redis.pipeline(transaction=False) as pipe:
                for stream, ids in acks.items():
                    if ids:
                        pipe.xack(stream, self.group, *ids)
                        if self.delete(stream):
                            pipe.xdel(stream, *ids)
                await pipe.execute()
        self._entries.inc(done)
        return done


def _size(batch: Batch) -> int:
    return sum(len(entries) for entries in batch.values())


async def wait(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds`` or until ``stop`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def describe(exc: BaseException) -> str:
    """An outage in words, without data: Unavailable messages are ours, others by class."""
    if isinstance(exc, Unavailable):
        return exc.message
    if isinstance(exc, UNREACHABLE):
        return f"Redis unreachable ({type(exc).__name__})"
    if isinstance(exc, redis.exceptions.ResponseError):
        return f"Redis refused a command ({str(exc).split(' ', 1)[0]})"
    return f"unexpected {type(exc).__name__}"
