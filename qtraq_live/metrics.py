"""Prometheus metrics of the web layer, and ``GET /metrics``.

Labels carry route templates and counts only: a path such as ``/api/v1/t/{token}`` is
recorded by its template, so no token or id ever reaches a metric. With
``PROMETHEUS_MULTIPROC_DIR`` set (several ``--workers``), every process's samples are
summed; otherwise each process reports its own.
"""

from __future__ import annotations

import os
import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter("qtraq_http_requests", "HTTP requests answered", ["method", "route", "status"])
HTTP_SECONDS = Histogram("qtraq_http_request_seconds", "HTTP request handling time", ["route"],
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
PRESS_SECONDS = Histogram("qtraq_press_seconds", "Handling time of a 'next' press, request to answer",
                          buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1))
TICKETS_ISSUED = Counter("qtraq_tickets_issued", "Tickets issued", ["via"])


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
            HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
            HTTP_SECONDS.labels(route).observe(time.perf_counter() - started)


def route_label(scope: Scope) -> str:
    """The matched route's template (with its mount prefix), or ``unmatched``."""
    route = scope.get("route")
    if not isinstance(route, Route):
        return "unmatched"
    return str(scope.get("root_path", "")) + route.path


async def metrics_endpoint(request: Request) -> Response:
    registry = DEFAULT_REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
