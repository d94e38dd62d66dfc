"""The one stream-consumer runner, against the real embedded Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from qtraq_live import metrics
from qtraq_live.engine import redis_keys as keys
from qtraq_live.runtime.stream_consumer import Acks, Batch, StreamConsumer

STREAM = "qt:test:stream"
GROUP = "g"
TIMEOUT_S = 10.0


class Recorder:
    """A handler that records what it was given; ``fail`` batches raise first."""

    def __init__(self, fail: int = 0, keep: set[str] | None = None) -> None:
        self.seen: list[str] = []
        self.calls = 0
        self.fail = fail
        self.keep = keep or set()  # values whose entries it leaves pending

    async def __call__(self, batch: Batch) -> Acks | None:
        self.calls += 1
        if self.fail:
            self.fail -= 1
            raise RuntimeError("the handler's commit failed")
        self.seen += [f["n"] for entries in batch.values() for _, f in entries]
        if not self.keep:
            return None
        return {s: [i for i, f in entries if f["n"] not in self.keep] for s, entries in batch.items()}


def consumer(client: aioredis.Redis, handler: Callable[[Batch], Awaitable[Acks | None]], name: str = "c1",
             **kwargs: object) -> StreamConsumer:
    async def streams() -> list[str]:
        return [STREAM]

    return StreamConsumer(client, GROUP, name, handler, streams, block_ms=50, **kwargs)  # type: ignore[arg-type]


async def add(client: aioredis.Redis, *values: str) -> list[str]:
    return [await client.xadd(STREAM, {"n": v}) for v in values]


async def until(check: Callable[[], Awaitable[bool] | bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + TIMEOUT_S
    while True:
        value = check()
        if not isinstance(value, bool):
            value = await value
        if value:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def pending(client: aioredis.Redis) -> int:
    return int((await client.xpending(STREAM, GROUP))["pending"])


async def test_what_a_dead_consumer_read_is_claimed_and_handled_once(aredis: aioredis.Redis) -> None:
    await aredis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    await add(aredis, "a", "b", "c")
    await aredis.xreadgroup(GROUP, "dead", {STREAM: ">"}, count=2)  # read, then the process died
    handler = Recorder()
    assert await consumer(aredis, handler).drain() == 3
    assert handler.seen == ["a", "b", "c"]
    assert await pending(aredis) == 0
    assert await consumer(aredis, handler, name="c2").drain() == 0  # nothing twice


async def test_a_failed_handler_acks_nothing_and_the_batch_is_retried(aredis: aioredis.Redis) -> None:
    await add(aredis, "a", "b")
    handler = Recorder(fail=1)
    failures = metrics.STREAM_FAILURES.labels(GROUP)._value.get()
    with pytest.raises(RuntimeError):
        await consumer(aredis, handler).drain()
    assert await pending(aredis) == 2 and handler.seen == []
    stop = asyncio.Event()
    handler.fail = 1  # the running consumer fails once more, backs off, and then succeeds
    task = asyncio.create_task(consumer(aredis, handler).run(stop))
    try:
        await until(lambda: handler.seen == ["a", "b"], "the retried batch")
        await until(lambda: _zero(aredis), "the acknowledgement")
    finally:
        stop.set()
        await asyncio.wait_for(task, TIMEOUT_S)
    assert handler.calls == 3
    assert metrics.STREAM_FAILURES.labels(GROUP)._value.get() == failures + 1


async def _zero(client: aioredis.Redis) -> bool:
    return await pending(client) == 0


async def test_an_existing_group_is_used_as_it_is(aredis: aioredis.Redis) -> None:
    await add(aredis, "old")
    await aredis.xgroup_create(STREAM, GROUP, id="$")  # made by another process: BUSYGROUP for us
    await add(aredis, "new")
    handler = Recorder()
    assert await consumer(aredis, handler).drain() == 1
    assert handler.seen == ["new"]
    other = Recorder()
    await asyncio.gather(consumer(aredis, other, name="x").drain(), consumer(aredis, other, name="y").drain())
    assert other.seen == []


async def test_a_new_group_can_start_at_the_end(aredis: aioredis.Redis) -> None:
    await add(aredis, "backlog")
    handler = Recorder()
    c = consumer(aredis, handler, start=lambda stream: "$")
    assert await c.drain() == 0
    await add(aredis, "fresh")
    assert await c.drain() == 1 and handler.seen == ["fresh"]


async def test_entries_left_pending_are_read_again_first(aredis: aioredis.Redis) -> None:
    await add(aredis, "good", "bad", "good2")
    handler = Recorder(keep={"bad"})
    c = consumer(aredis, handler)
    assert await c.drain() == 2
    assert await pending(aredis) == 1
    handler.keep = set()
    assert await consumer(aredis, handler).drain() == 1  # a restart replays what was left
    assert handler.seen == ["good", "bad", "good2", "bad"]


async def test_deleted_after_the_ack_when_asked(aredis: aioredis.Redis) -> None:
    await add(aredis, "a", "b")
    assert await consumer(aredis, Recorder(), delete=lambda stream: True).drain() == 2
    assert await aredis.xlen(STREAM) == 0


async def test_a_wiped_redis_is_followed(aredis: aioredis.Redis) -> None:
    handler = Recorder()
    stop = asyncio.Event()
    task = asyncio.create_task(consumer(aredis, handler).run(stop))
    try:
        await add(aredis, "before")
        await until(lambda: handler.seen == ["before"], "the first entry")
        await aredis.flushall()
        await add(aredis, "after")
        await until(lambda: handler.seen == ["before", "after"], "the entry after the wipe")
    finally:
        stop.set()
        await asyncio.wait_for(task, TIMEOUT_S)


def test_the_clinic_is_read_from_its_stream_name() -> None:
    assert keys.clinic_of_events(keys.events("c-1")) == "c-1"
    assert keys.clinic_of_events(keys.AUDIT) is None
    assert keys.clinic_of_events("qt:c::events") is None


async def test_a_short_batch_waits_and_is_handled_with_what_came_meanwhile(aredis: aioredis.Redis) -> None:
    """With ``linger_s`` an entry a wait brought is handled after that delay, together with
    the entries written meanwhile (a press's event is the hub's to fan out first), in order."""
    await aredis.xgroup_create(STREAM, GROUP, id="$", mkstream=True)
    batches: list[list[str]] = []

    async def handler(batch: Batch) -> None:
        batches.append([f["n"] for entries in batch.values() for _, f in entries])

    stop = asyncio.Event()
    runner = asyncio.create_task(consumer(aredis, handler, linger_s=2.0).run(stop))
    try:
        await asyncio.sleep(0.2)  # blocking in its read
        await add(aredis, "a")
        await until(lambda: _one_pending(aredis), "the first entry read")  # read, not yet handled
        assert batches == []
        await add(aredis, "b", "c")
        await until(lambda: bool(batches), "the gathered batch")
        assert batches == [["a", "b", "c"]]
        await until(lambda: _none_pending(aredis), "the acknowledgement")
    finally:
        stop.set()
        await runner


async def _none_pending(client: aioredis.Redis) -> bool:
    return await pending(client) == 0


async def _one_pending(client: aioredis.Redis) -> bool:
    return await pending(client) == 1
