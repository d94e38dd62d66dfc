"""Fixtures and helpers of the durability tests (store, persister, rebuild)."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from qtraq_live.errors import Conflict, Invalid
from qtraq_live.queue_engine import QueueEngine
from qtraq_live.record.store import Store

CLINICS = {"c1": ("gp", "lab"), "c2": ("dent",)}
PREFIX = {"gp": "A", "lab": "L", "dent": "D"}
COUNTERS = ("1", "2")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = Store(tmp_path / "data" / "qtraq.db")
    await s.open()
    yield s
    await s.close()


async def make_clinics(engine: QueueEngine) -> None:
    for clinic, queues in CLINICS.items():
        await engine.create_clinic(clinic, f"Clinic {clinic}", timezone="Asia/Kolkata")
        for q in queues:
            await engine.create_queue(clinic, q, f"Queue {q}", PREFIX[q], avg_service_s=120)


async def random_operations(engine: QueueEngine, rng: random.Random, steps: int,
                            tokens: dict[int, str]) -> None:
    """Every kind of change, at random, on the clinics of :func:`make_clinics`.
    Illegal transitions picked by chance are part of the mix (they must leave no trace)."""
    queues = [q for qs in CLINICS.values() for q in qs]
    for _ in range(steps):
        q = rng.choice(queues)
        ids = sorted(tokens)
        op = rng.choice(["issue", "issue", "issue", "next", "next", "act", "act", "transfer",
                         "pause", "update", "token_cancel"])
        try:
            if op == "issue" or not ids:
                t = await engine.issue(q, name=rng.choice([None, "Asha Rao", "Vikram Singh"]),
                                       priority=rng.choice([0, 0, 0, 1]), notify=rng.random() < 0.3,
                                       lang=rng.choice([None, "en", "hi"]))
                tokens[t["id"]] = t["token"]
            elif op == "next":
                await engine.next(q, rng.choice(COUNTERS))
            elif op == "act":
                await engine.act(rng.choice(["recall", "serve", "skip", "no_show", "done", "cancel", "requeue"]),
                                 rng.choice(ids))
            elif op == "transfer":
                await engine.transfer(rng.choice(ids), rng.choice(("gp", "lab")))
            elif op == "pause":
                await (engine.pause(q) if rng.random() < 0.5 else engine.resume(q))
            elif op == "update":
                await engine.update_queue(q, notify_ahead=rng.randint(0, 5))
                await engine.update_clinic(rng.choice(sorted(CLINICS)), mask_names=rng.random() < 0.5)
            else:
                await engine.cancel_by_token(tokens[rng.choice(ids)])
        except (Conflict, Invalid):  # e.g. a transfer to another clinic's queue
            pass
    for q in queues:  # every queue ends with a change, so its open counters are recorded
        await engine.resume(q)
        t = await engine.issue(q)
        tokens[t["id"]] = t["token"]


async def dump_live(redis: aioredis.Redis) -> dict[str, Any]:
    """Every ``qt:`` key and its value (streams and idempotency results left out), with
    whether it has a TTL — the whole live state in comparable form."""
    out: dict[str, Any] = {}
    async for key in redis.scan_iter(match="qt:*", count=1000):
        if key.endswith(":events") or key.startswith("qt:idem:"):
            continue
        kind = await redis.type(key)
        if kind == "hash":
            value: Any = await redis.hgetall(key)
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1, withscores=True, score_cast_func=str)
        elif kind == "list":
            value = [json.loads(x) for x in await redis.lrange(key, 0, -1)]
        elif kind == "set":
            value = sorted(await redis.smembers(key))
        else:
            value = await redis.get(key)
        out[key] = (value, await redis.pttl(key) > 0)
    return out
