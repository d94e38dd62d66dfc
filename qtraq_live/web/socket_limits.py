"""A cap on the WebSockets one client address holds open, across every process (issue #21 item 9).

One address with one self check-in token could open ten thousand sockets; each costs memory and
a slot in the fan-out. Over ``security.sockets_per_address`` the handshake is refused (close
1013, "try again later"), and the count falls as sockets close, so memory and slots return.
The address is the one uvicorn put in the scope: a trusted proxy's ``X-Forwarded-For`` already
applied (``server.uvicorn_config``), the peer otherwise.

The cap holds in total for ``serve --workers N`` and for hub processes sharing Redis: each
process keeps its own counts in Redis under a lease (a hash that expires unless the process's
heartbeat renews it, every third of ``security.socket_lease_s``), and a connect sums the
address's count over the live processes in one script (``lua/sockets_acquire.lua``). A killed
process's sockets stop counting when its lease runs out. Cost: one round trip per connect and
one per disconnect, none per message. Addresses are hashed in Redis. When Redis does not
answer, the process falls back to its own count (the cap then holds per process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from importlib import resources

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Receive, Scope, Send

from ..engine import redis_keys as keys

log = logging.getLogger(__name__)

TRY_LATER = 1013
LUA = resources.files("qtraq_live").joinpath("lua")
ACQUIRE_SCRIPT = LUA.joinpath("sockets_acquire.lua").read_text()
RELEASE_SCRIPT = LUA.joinpath("sockets_release.lua").read_text()
MARK = "~"  # the field that keeps a process's hash alive while it holds no socket


def address_field(address: str) -> str:
    """An address as a field name (no client addresses stored in Redis)."""
    return keys.secret_hash(address)[:32]


class AddressCap:
    """This process's open sockets by address, and its share of the count in Redis."""

    def __init__(self, limit: int, lease_s: int) -> None:
        self.limit = limit
        self.lease_s = lease_s
        self.open: Counter[str] = Counter()  # address -> sockets open here now (no entry at 0)
        self.process_id = uuid.uuid4().hex
        self.key = keys.socket_counts(self.process_id)
        self.redis: aioredis.Redis | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._redis_down = False

    async def start(self, redis: aioredis.Redis) -> None:
        """Take the lease and renew it until :meth:`stop` (in the app's lifespan)."""
        self.redis = redis
        self._acquire = redis.register_script(ACQUIRE_SCRIPT)
        self._release = redis.register_script(RELEASE_SCRIPT)
        with contextlib.suppress(RedisError, OSError):
            await self._renew()
        self._heartbeat = asyncio.create_task(self._beat(), name="socket-cap-lease")

    async def stop(self) -> None:
        """Give the lease back: this process's sockets stop counting at once."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        if self.redis is not None:
            with contextlib.suppress(RedisError, OSError):
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.delete(self.key)
                    pipe.srem(keys.SOCKET_PROCESSES, self.process_id)
                    await pipe.execute()
        self.redis = None

    async def _renew(self) -> None:
        """Extend the lease; write the counts again if Redis lost them (a restart, a long stall)."""
        assert self.redis is not None
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(keys.SOCKET_PROCESSES, self.process_id)
            pipe.expire(self.key, self.lease_s)
            _, renewed = await pipe.execute()
        if not renewed:
            counts = {address_field(a): n for a, n in self.open.items()}
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(self.key, mapping={MARK: 1, **counts})
                pipe.expire(self.key, self.lease_s)
                await pipe.execute()

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                await self._renew()
            except (RedisError, OSError):
                log.warning("sockets per address: lease not renewed (Redis unreachable)")

    async def take(self, address: str) -> bool:
        """One more socket for ``address``, or False when it holds the cap (in all processes)."""
        if self.open[address] >= self.limit:
            return False  # this process alone holds the cap: no round trip
        if self.redis is not None:
            try:
                taken = await self._take(address)
                if taken < 0:  # our lease lapsed: write our counts again, then count this one
                    await self._renew()
                    taken = await self._take(address)
                self._redis_down = False
                if taken <= 0:
                    return False
            except (RedisError, OSError):
                if not self._redis_down:
                    log.warning("sockets per address: Redis unreachable, counting this process's sockets only")
                self._redis_down = True
        self.open[address] += 1
        return True

    async def _take(self, address: str) -> int:
        return int(await self._acquire(keys=[keys.SOCKET_PROCESSES, self.key],
                                       args=[address_field(address), self.limit, self.process_id,
                                             keys.SOCKET_COUNTS_PREFIX]))

    async def give_back(self, address: str) -> None:
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]
        if self.redis is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._release(keys=[self.key], args=[address_field(address)])


class SocketsPerAddress:
    """ASGI middleware in front of the hub's sockets: at most ``cap.limit`` open per address."""

    def __init__(self, app: ASGIApp, cap: AddressCap) -> None:
        self.app = app
        self.cap = cap

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        address = scope["client"][0] if scope.get("client") else "unknown"
        if not await self.cap.take(address):
            log.warning("sockets per address: limit %d reached, one refused", self.cap.limit)
            await receive()  # the websocket.connect message
            # accepted only to say why: a close code the page's reconnect backs off on (a refused
            # handshake would be a bare HTTP 403)
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": TRY_LATER, "reason": "too many sockets"})
            return
        try:
            await self.app(scope, receive, send)
        finally:
            await self.cap.give_back(address)
