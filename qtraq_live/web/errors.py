"""Every failure becomes the API error shape ``{"error": {"code", "message"}}``.

Handlers map :class:`QtraqError` to its status, the router's own 404/405 to JSON under
``/api`` (pages keep plain text), lost Redis/SQLite connections to 503, and anything else to
a bare 500: the stack trace goes to the log, never to the client. Logs name the route
template (``/api/v1/t/{token}``), never the path, which may hold a token.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

import redis.exceptions
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ..display.render import error_page
from ..errors import QtraqError, RateLimited
from ..metrics import REDIS_ERRORS
from .instrument import route_label
from .responses import JSONResponse

log = logging.getLogger(__name__)

API_PREFIX = "/api/"
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}


def error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


async def qtraq_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, QtraqError)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    return error_response(exc.status, exc.code, exc.message, headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if not request.url.path.startswith(API_PREFIX):
        if exc.status_code == 404:  # an unknown page: the friendly page, in the visitor's language
            return error_page(request, 404, "error.not_found")
        return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, exc.detail, exc.headers)


async def store_unreachable(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, sqlite3.Error):  # the store counts its own
        REDIS_ERRORS.inc()
    log.warning("backing store unreachable on %s: %s", route_label(request.scope), exc.__class__.__name__)
    which = "the record (SQLite)" if isinstance(exc, sqlite3.Error) else "the live state (Redis)"
    return error_response(503, "unavailable", f"{which} is unreachable; try again shortly")


async def id_out_of_range(request: Request, exc: Exception) -> Response:
    """An id in the path beyond any stored one (SQLite holds 64-bit integers): unknown."""
    return error_response(404, "not_found", "no such id")


async def internal_error(request: Request, exc: Exception) -> Response:
    # The traceback is logged by the server once this handler has answered.
    log.error("unhandled %s on %s %s", exc.__class__.__name__, request.method, route_label(request.scope))
    return error_response(500, "internal_error", "internal error")


def exception_handlers() -> dict[Any, Callable[[Request, Exception], Any]]:
    return {
        QtraqError: qtraq_error,
        HTTPException: http_error,
        redis.exceptions.ConnectionError: store_unreachable,
        redis.exceptions.TimeoutError: store_unreachable,
        sqlite3.OperationalError: store_unreachable,
        OverflowError: id_out_of_range,
        Exception: internal_error,
    }
