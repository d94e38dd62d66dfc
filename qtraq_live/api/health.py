"""Liveness, readiness and metrics: ``/healthz``, ``/readyz``, ``/metrics`` (outside /api)."""

from __future__ import annotations

import asyncio
import hmac
import logging
import sqlite3

import redis.exceptions

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..web.errors import error_response
from ..web.instrument import metrics_endpoint
from ..web.request import address_within, client_ip
from ..web.responses import JSONResponse

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 2.0


async def healthz(request: Request) -> Response:
    """The process answers: nothing else is checked (a restart would not fix Redis)."""
    return JSONResponse({"status": "ok"})


async def _redis_ok(request: Request) -> bool:
    try:
        return bool(await asyncio.wait_for(request.app.state.redis.ping(), CHECK_TIMEOUT_S))
    except (redis.exceptions.RedisError, OSError, asyncio.TimeoutError) as exc:
        log.warning("readiness: Redis unreachable (%s)", exc.__class__.__name__)
        return False


async def _sqlite_ok(request: Request) -> bool:
    store = request.app.state.store
    if store is None:  # a hub keeps no record
        return True
    try:
        row = await asyncio.wait_for(store.fetchone("SELECT 1 AS ok", ()), CHECK_TIMEOUT_S)
    except (sqlite3.Error, OSError, ValueError, asyncio.TimeoutError) as exc:  # ValueError: closed
        log.warning("readiness: SQLite check failed (%s)", exc.__class__.__name__)
        return False
    return row is not None


async def readyz(request: Request) -> Response:
    """Ready when Redis answers PING and (on the primary) SQLite answers ``SELECT 1``."""
    checks = {"redis": await _redis_ok(request), "sqlite": await _sqlite_ok(request)}
    down = [name for name, ok in checks.items() if not ok]
    if down:
        return error_response(503, "unavailable", "not ready: " + ", ".join(down) + " unreachable")
    return JSONResponse({"status": "ready", "role": request.app.state.mode})


async def metrics(request: Request) -> Response:
    """``/metrics`` for the configured token (``Authorization: Bearer``) or a client inside
    ``security.metrics_networks`` (the real client: a proxy's forwarded address counts, so a
    scrape through the public proxy is refused even though the proxy itself is local)."""
    settings = request.app.state.settings
    token = settings["security.metrics_token"]
    sent = request.headers.get("authorization", "")
    if token and hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
        return await metrics_endpoint(request)
    # forwarded by a proxy we were not told to trust: the peer's address says nothing of the client
    unknown_client = bool(request.headers.get("x-forwarded-for")) and not settings["security.trusted_proxies"]
    if not unknown_client and address_within(client_ip(request), settings["security.metrics_networks"],
                                             "security.metrics_networks"):
        return await metrics_endpoint(request)
    return error_response(403, "forbidden", "metrics are for the monitoring host: send the metrics token")


routes: list[BaseRoute] = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
