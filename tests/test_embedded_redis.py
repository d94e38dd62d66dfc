"""The embedded redis-server: unix socket only, AOF on, survives restarts and crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from qtraq_live.errors import Unavailable
from qtraq_live.runtime.embedded_redis import EmbeddedRedis

from support_serve import alive, wait_until


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    srv = EmbeddedRedis(tmp_path / "redis")
    srv.start()
    yield srv
    srv.stop()


def client(srv: EmbeddedRedis) -> redis.Redis:
    return redis.Redis.from_url(srv.url, decode_responses=True)


def wait_gone(pid: int) -> None:
    wait_until(lambda: not alive(pid), 10, f"process {pid} to exit")


def listening_tcp_inodes() -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                inodes.add(fields[9])
    return inodes


def socket_inodes(pid: int) -> set[str]:
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with_target = os.readlink(fd)
        if with_target.startswith("socket:["):
            out.add(with_target[8:-1])
    return out


def test_unix_socket_only_with_aof(server: EmbeddedRedis) -> None:
    c = client(server)
    assert c.ping()
    assert c.config_get("appendonly") == {"appendonly": "yes"}
    assert c.config_get("port") == {"port": "0"}
    assert server.process is not None
    assert not socket_inodes(server.process.pid) & listening_tcp_inodes()
    assert server.socket_path.is_socket()
    assert oct(server.directory.stat().st_mode & 0o777) == "0o700"
    assert server.is_running()
    c.close()


def test_state_survives_stop_and_start(server: EmbeddedRedis) -> None:
    c = client(server)
    c.set("k", "v1")
    c.close()
    server.stop()
    assert not server.is_running()
    server.start()
    c = client(server)
    assert c.get("k") == "v1"
    c.close()


def test_state_survives_sigkill(server: EmbeddedRedis) -> None:
    c = client(server)
    for i in range(100):
        c.set(f"k{i}", i)
    c.close()
    server.kill()
    server.start()
    c = client(server)
    assert c.get("k99") == "99"
    c.close()


def test_stop_ends_the_process(server: EmbeddedRedis) -> None:
    assert server.process is not None
    pid = server.process.pid
    server.stop()
    wait_gone(pid)
    assert not server.socket_path.exists()
    server.stop()  # idempotent


def test_second_server_on_the_same_files_is_refused(server: EmbeddedRedis) -> None:
    with pytest.raises(Unavailable, match="another redis-server"):
        EmbeddedRedis(server.directory).start(timeout=0.3)
    assert client(server).ping()


def test_redis_dies_with_its_parent(tmp_path: Path) -> None:
    """A supervisor killed with SIGKILL leaves no redis-server behind (PR_SET_PDEATHSIG)."""
    script = ("import sys, time\n"
              "from qtraq_live.runtime.embedded_redis import EmbeddedRedis\n"
              f"s = EmbeddedRedis({str(tmp_path / 'redis')!r}); s.start()\n"
              "print(s.process.pid, flush=True)\n"
              "time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        redis_pid = int(parent.stdout.readline())
        assert alive(redis_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        wait_gone(redis_pid)
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
