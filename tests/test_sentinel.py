"""``QTRAQ_REDIS_URL=redis+sentinel://…``: a real master, replica and sentinel; a failover
needs no restart of the client."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from qtraq_live.config import load_settings
from qtraq_live.errors import ConfigError, Unavailable
from qtraq_live.queue_engine import QueueEngine
from qtraq_live.runtime.embedded_redis import SERVER_BIN
from qtraq_live.runtime.redis_conn import async_client, parse_sentinel_url, sync_client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check, timeout: float = 30.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if value:
                return value
        except (redis.exceptions.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def sentinel_set(tmp_path: Path) -> Iterator[tuple[int, int, int]]:
    master, replica, sentinel = free_port(), free_port(), free_port()
    procs = []
    for name, port, extra in (("master", master, []), ("replica", replica, ["--replicaof", "127.0.0.1", str(master)])):
        d = tmp_path / name
        d.mkdir()
        procs.append(subprocess.Popen([str(SERVER_BIN), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(d),
                                       "--save", "", "--appendonly", "no", *extra],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {sentinel}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor mymaster 127.0.0.1 {master} 1\n"
        "sentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 5000\n"
    )
    try:
        wait_for(lambda: redis.Redis(port=replica).info("replication")["master_link_status"] == "up",
                 what="replica in sync")
        procs.append(subprocess.Popen([str(SERVER_BIN), str(conf), "--sentinel"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for(lambda: redis.Redis(port=sentinel).sentinel_master("mymaster")["num-slaves"] >= 1,
                 what="sentinel to see the replica")
        yield master, replica, sentinel
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_sentinel_url_parsing() -> None:
    t = parse_sentinel_url("redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2:26380/mymaster/2")
    assert t.hosts == [("10.0.0.1", 26379), ("10.0.0.2", 26380)]
    assert (t.master, t.db, t.password) == ("mymaster", 2, "s3cret")
    for bad in ("redis+sentinel://host/mymaster", "redis+sentinel://h:1", "redis+sentinel://h:1/m/x"):
        with pytest.raises(ConfigError) as err:
            parse_sentinel_url(bad)
        assert err.value.key == "redis_url"


async def test_failover_needs_no_restart(sentinel_set: tuple[int, int, int], tmp_path: Path) -> None:
    master, replica, sentinel = sentinel_set
    settings = load_settings({"QTRAQ_DATA_DIR": str(tmp_path / "data"),
                              "QTRAQ_REDIS_URL": f"redis+sentinel://127.0.0.1:{sentinel}/mymaster"})
    r = async_client(settings)
    eng = QueueEngine(r)
    await eng.create_clinic("c1", "Clinic")
    await eng.create_queue("c1", "gp", "GP", "A")
    first = await eng.issue("gp")
    assert sync_client(settings).get("qt:c:c1:v") == "3"
    wait_for(lambda: redis.Redis(port=replica).get("qt:c:c1:v") == b"3", what="replication")

    # The sentinel accepts a failover once it has fresh INFO from the replica.
    wait_for(lambda: redis.Redis(port=sentinel).execute_command("SENTINEL", "FAILOVER", "mymaster"),
             what="the sentinel to accept a failover")
    wait_for(lambda: int(redis.Redis(port=sentinel).sentinel_get_master_addr_by_name("mymaster")[1]) == replica,
             what="the replica to be promoted")
    # Writes that reach the old master before it is demoted are lost with Redis' asynchronous
    # replication (docs/deploy/README.md: min-replicas-to-write); the client's part is to follow.
    wait_for(lambda: redis.Redis(port=master).info("replication")["role"] == "slave", what="the old master demoted")

    async def press_until_it_works() -> dict:
        deadline = time.monotonic() + 30
        while True:
            try:
                return await eng.next("gp", "1")  # type: ignore[return-value]
            except Unavailable:  # the 503 a client sees during the switch, then it recovers
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    called = await press_until_it_works()
    assert called["id"] == first["id"]
    # the write landed on (or replicated to) the promoted server: nothing lost in the switch
    wait_for(lambda: redis.Redis(port=replica).get("qt:c:c1:v") == b"4", what="the press on the new master")
    assert redis.Redis(port=replica).info("replication")["role"] == "master"
    await r.aclose()
