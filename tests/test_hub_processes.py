"""Fan-out across real processes: a primary and a ``--role hub`` process sharing one Redis
deliver the same messages, and a client may resume on the other process."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from qtraq_live.engine import redis_keys as keys
from qtraq_live.queue_engine import QueueEngine
from support_serve import ServeProcess
from tests.support_hub import open_ws, recv, recv_until, ws_url


@pytest.fixture
def two_processes(tmp_path: Path, redis_url: str) -> Iterator[tuple[ServeProcess, ServeProcess]]:
    env = {"QTRAQ_REDIS_URL": redis_url}
    with ServeProcess(tmp_path / "primary", env=env) as primary, \
            ServeProcess(tmp_path / "hub", env=env, args=["--role", "hub"]) as hub:
        yield primary, hub


async def test_primary_and_hub_process_deliver_the_same(two_processes: tuple[ServeProcess, ServeProcess],
                                                        engine: QueueEngine, sync_redis: redis.Redis) -> None:
    primary, hub = two_processes
    await engine.create_clinic("c1", "City Clinic", mask_names=True)
    await engine.create_queue("c1", "gp", "General", "A")
    key = secrets.token_urlsafe(24)
    sync_redis.set(keys.display_key(key), "c1")  # what the primary's access layer writes
    sync_redis.sadd(keys.display_keys_of("c1"), keys.secret_hash(key))
    mine = await engine.issue("gp", name="Asha Rao")
    path = f"/ws/display/c1?key={key}"
    async with await open_ws(ws_url(primary.url, path)) as on_primary, \
            await open_ws(ws_url(hub.url, path)) as on_hub, \
            await open_ws(ws_url(hub.url, f"/ws/t/{mine['token']}")) as patient:
        snaps = [await recv(on_primary), await recv(on_hub)]
        assert snaps[0] == snaps[1]
        assert (await recv(patient))["position"] == 1
        await engine.issue("gp", name="Other One")
        await engine.next("gp", "4")
        v = await engine.version("c1")
        raw_primary = [await on_primary.recv() for _ in range(3)]  # issued, called, call
        raw_hub = [await on_hub.recv() for _ in range(3)]
        assert raw_primary == raw_hub  # the same bytes, built independently by each process
        assert json.loads(raw_hub[2]) == {"type": "call", "version": v, "label": mine["label"],
                                          "counter": "4", "queue": "gp"}
        got = await recv_until(patient, v)
        assert [(m["type"], m["status"]) for m in got] == [("update", "called")]
        assert "Other" not in json.dumps(got)
    await engine.issue("gp")
    await engine.issue("gp")
    # a screen that was on the hub process resumes on the primary: the missed updates, in order
    async with await open_ws(ws_url(primary.url, f"{path}&since={v}")) as again:
        got = await recv_until(again, v + 2)
        assert [(m["type"], m["version"]) for m in got] == [("update", v + 1), ("update", v + 2)]
