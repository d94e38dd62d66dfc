"""Liveness, readiness and metrics: ``/healthz``, ``/readyz``, ``/metrics`` (outside /api)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import redis.exceptions

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..web.errors import error_response
from ..web.instrument import metrics_endpoint
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
    return JSONResponse({"status": "ready", "role": request.app.state.role})


routes: list[BaseRoute] = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics_endpoint, methods=["GET"]),
]
