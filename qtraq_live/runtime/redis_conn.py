"""Redis clients from settings: the embedded server's unix socket, or ``QTRAQ_REDIS_URL``.

``QTRAQ_REDIS_URL`` takes ``redis://``, ``rediss://`` and ``unix://`` URLs, and a Sentinel set
as ``redis+sentinel://[:password@]host:26379[,host2:26379]/mymaster[/db]``: clients then ask
the sentinels for the current master on every reconnect, so a failover needs no restart.
The connection is always passed in explicitly (never a hidden global), as RQ does.

This module is also the adapter for two speed tricks that use redis-py's private parts
(``runtime/fastpaths.py``): :class:`WaitingPool`'s direct checkout (``redis_pool``) and
:class:`PackedInC`'s write (``redis_write``). Each is on only with the redis-py (and hiredis)
it was written for; otherwise the pool and the connections are redis-py's own, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis
import redis
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection, Connection, SSLConnection, UnixDomainSocketConnection
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.sentinel import Sentinel

from ..config import Settings
from ..errors import ConfigError
from . import fastpaths

SENTINEL_SCHEME = "redis+sentinel"
UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)  # Redis down or cut off
POOL_SIZE = 200
POOL_WAIT_S = 5
WRITTEN_FOR = ("redis", (8, 0), (9, 0))
REDIS_POOL = fastpaths.enabled("redis_pool", WRITTEN_FOR)
REDIS_WRITE = fastpaths.enabled("redis_write", WRITTEN_FOR, ("hiredis", (2, 3), (4, 0)))


def embedded_socket_path(data_dir: Path) -> Path:
    return data_dir / "redis" / "redis.sock"


def redis_url(settings: Settings) -> str:
    """The URL every process of this deployment connects to."""
    if settings.redis_url:
        return settings.redis_url
    return f"unix://{embedded_socket_path(settings.data_dir).resolve()}"


@dataclass(frozen=True)
class SentinelTarget:
    hosts: list[tuple[str, int]]
    master: str
    db: int
    password: str | None


def parse_sentinel_url(url: str) -> SentinelTarget:
    """``redis+sentinel://[:pw@]h1:26379,h2:26379/master[/db]`` → its parts (ConfigError if bad)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    password = None
    if "@" in netloc:
        creds, netloc = netloc.rsplit("@", 1)
        password = unquote(creds.split(":", 1)[-1]) or None
    hosts = []
    for item in netloc.split(","):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError("redis_url", f"sentinel address {item!r} must be host:port")
        hosts.append((host.strip("[]"), int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ConfigError("redis_url", "sentinel URL must end with /MASTER_NAME or /MASTER_NAME/DB")
    return SentinelTarget(hosts, path[0], int(path[1]) if len(path) == 2 else 0, password)


def _is_sentinel(url: str) -> bool:
    return url.startswith(f"{SENTINEL_SCHEME}://")


def _sentinel_master(url: str, sentinel_cls: Any, decode: bool) -> Any:
    t = parse_sentinel_url(url)
    sentinel = sentinel_cls(t.hosts, socket_timeout=5, sentinel_kwargs={"password": t.password})
    return sentinel.master_for(t.master, db=t.db, password=t.password, decode_responses=decode,
                               health_check_interval=30)


class PackedInC(AbstractConnection):
    """Commands packed by hiredis (C) rather than by redis-py's Python loop, the same bytes
    (as redis-py's synchronous client does), at less CPU a command (docs/benchmarks.md, "Fast paths"). A multi-word command
    name, or an argument hiredis does not take, is packed by redis-py as before.

    And written without a task: redis-py bounds each write with ``asyncio.wait_for``, which on
    Python 3.11 starts a task and a timer per command, though a write the transport takes at
    once has nothing to wait for. Such a write goes straight to the transport; when something
    stays in its buffer, redis-py's own send of nothing drains it, with its timeout and its
    error handling, and everything else (not connected yet, a string command) is redis-py's."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str) and " " not in args[0]:
            try:
                return [hiredis.pack_command(args)]
            except TypeError:
                pass
        return super().pack_command(*args)

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not isinstance(command, list) or not self.is_connected:
            await super().send_packed_command(command, check_health)
            return
        if check_health:
            await self.check_health()  # a PING only when one is due
        writer = self._writer
        if writer is None or writer.transport.is_closing():
            await super().send_packed_command(command, check_health=False)  # raises as redis-py does
            return
        writer.writelines(command)
        if writer.transport.get_write_buffer_size():
            await super().send_packed_command([], check_health=False)


class TcpConnection(PackedInC, Connection):
    pass


class UnixConnection(PackedInC, UnixDomainSocketConnection):
    pass


class TlsConnection(PackedInC, SSLConnection):
    pass


PACKED_IN_C: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: TcpConnection, UnixDomainSocketConnection: UnixConnection, SSLConnection: TlsConnection}


def packed_class(cls: type[AbstractConnection]) -> type[AbstractConnection]:
    """The packing-in-C variant of a redis-py connection class, when ``redis_write`` is on."""
    return PACKED_IN_C.get(cls, cls) if REDIS_WRITE else cls


class WaitingPool(aioredis.BlockingConnectionPool):
    """A burst of requests waits for a free connection rather than failing at the pool's limit.

    redis-py's blocking pool takes a condition, its lock and a timer (and its parent a second
    lock) for every command, even when a connection is idle: more CPU than sending the command
    (docs/benchmarks.md, "Fast paths"). While no task waits, an idle connection is handed
    out and taken back directly (checked as the parent checks it); once one waits, every
    checkout and release is the parent's, so waiters are woken in turn and time out as before.
    Skipped on the direct path: redis-py's OpenTelemetry pool counts and its released-connection
    event (re-authentication by streaming credential providers), neither used here. Its
    connections pack commands in C (:class:`PackedInC`). With ``redis_pool`` off every
    checkout and release is the parent's, and no private attribute is touched.
    """

    def __init__(self, *, connection_class: type[AbstractConnection] = Connection, **kwargs: Any) -> None:
        super().__init__(connection_class=packed_class(connection_class), **kwargs)
        self._waiting = 0  # tasks inside the parent's checkout
        self._fast = REDIS_POOL

    def _direct(self) -> bool:
        # locked: redis-py is moving connections
        return self._fast and not self._waiting and not self._lock.locked()

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        if self._direct() and self._available_connections:
            connection = self._available_connections.pop()
            self._in_use_connections.add(connection)
            try:
                await self.ensure_connection(connection)
            except BaseException:
                await self.release(connection)
                raise
            return connection
        self._waiting += 1
        try:
            return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call,no-any-return]
        finally:
            self._waiting -= 1

    async def release(self, connection: AbstractConnection) -> None:
        if not self._direct():
            await super().release(connection)
            return
        self._in_use_connections.remove(connection)
        if connection.should_reconnect():  # type: ignore[no-untyped-call]
            await connection.disconnect()
        self._available_connections.append(connection)


async def send_once(redis: aioredis.Redis, *args: Any) -> Any:
    """One command on a connection of ``redis``'s pool, sent once.

    redis-py's ``execute_command`` sends a command again after a connection error when its
    connections retry (``Redis(host=...)`` makes them retry ten times): for a change that may
    already have run (a "next" press) that would call a second patient. It also runs
    its retry, telemetry and HIMPORT hooks around every command, a large share of what a call
    of the engine costs its process (docs/benchmarks.md). The connection still disconnects itself on any error while
    reading (redis-py's ``read_response`` does), so it never goes back to the pool with a reply
    pending."""
    pool = redis.connection_pool
    conn = await pool.get_connection()
    try:
        await conn.send_command(*args)
        return await conn.read_response()
    finally:
        await pool.release(conn)


def async_client(settings: Settings, *, decode: bool = True) -> aioredis.Redis:
    url = redis_url(settings)
    if _is_sentinel(url):
        return _sentinel_master(url, AsyncSentinel, decode)  # type: ignore[no-any-return]
    pool = WaitingPool.from_url(url, decode_responses=decode, health_check_interval=30,
                                max_connections=POOL_SIZE, timeout=POOL_WAIT_S)
    return aioredis.Redis(connection_pool=pool)


def sync_client(settings: Settings, *, decode: bool = True) -> redis.Redis:
    url = redis_url(settings)
    if _is_sentinel(url):
        return _sentinel_master(url, Sentinel, decode)  # type: ignore[no-any-return]
    return redis.from_url(url, decode_responses=decode, health_check_interval=30)
