"""The web layer's metrics: every HTTP answer counted by route template, and ``GET /metrics``.

A path such as ``/api/v1/t/{token}`` is recorded by its template, so no token or id ever
reaches a metric. The families themselves live in :mod:`qtraq_live.metrics`.
"""

from __future__ import annotations

import logging
import time

import redis.exceptions
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import metrics

log = logging.getLogger(__name__)


class MetricsMiddleware:
    """Count every HTTP answer by method, route template and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = route_label(scope)
            metrics.HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
            metrics.HTTP_SECONDS.labels(route).observe(time.perf_counter() - started)


def route_label(scope: Scope) -> str:
    """The matched route's template (with its mount prefix), or ``unmatched``."""
    route = scope.get("route")
    if not isinstance(route, Route):
        return "unmatched"
    return str(scope.get("root_path", "")) + route.path


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus text format. Queue figures are read from Redis now; without Redis the
    scrape still answers, with every other family."""
    try:
        extra = await metrics.queue_families(request.app.state.redis)
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        metrics.REDIS_ERRORS.inc()
        log.warning("metrics: queue figures unavailable (%s)", exc.__class__.__name__)
        extra = []
    return Response(metrics.exposition(extra), media_type=CONTENT_TYPE_LATEST)
