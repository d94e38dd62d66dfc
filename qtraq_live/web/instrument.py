"""The web layer's metrics: every HTTP answer counted by route template (by
:class:`~qtraq_live.web.middleware.HttpMiddleware`), and ``GET /metrics``.

A path such as ``/api/v1/t/{token}`` is recorded by its template, so no token or id ever
reaches a metric. The families themselves live in :mod:`qtraq_live.metrics`.
"""

from __future__ import annotations

import logging
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from .. import metrics
from ..engine.queue_figures import queue_families
from ..runtime.redis_conn import UNREACHABLE

log = logging.getLogger(__name__)
_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}  # by (method, route, status)


def count_answer(method: str, route: str, status: int, seconds: float) -> None:
    """Count one HTTP answer. The label children are looked up once per label set: a label
    lookup (a lock, a tuple, a dict) on every request costs more than the count itself."""
    key = (method, route, status)
    children = _children.get(key)
    if children is None:
        children = _children[key] = (metrics.HTTP_REQUESTS.labels(method, route, str(status)),
                                     metrics.HTTP_SECONDS.labels(route))
    children[0].inc()
    children[1].observe(seconds)


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
        extra = await queue_families(request.app.state.redis)
    except UNREACHABLE as exc:
        metrics.REDIS_ERRORS.inc()
        log.warning("metrics: queue figures unavailable (%s)", exc.__class__.__name__)
        extra = []
    return Response(metrics.exposition(extra), media_type=CONTENT_TYPE_LATEST)
