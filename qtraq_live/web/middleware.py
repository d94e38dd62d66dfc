"""ASGI middleware, outermost first: metrics, request id and security headers, the hub's
write guard (421), the body size limit (413).

Plain ASGI classes rather than ``BaseHTTPMiddleware``: they stream, add no task per request,
and leave WebSockets alone.
"""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import Settings
from ..errors import PayloadTooLarge
from ..logs import REQUEST_ID
from .errors import API_PREFIX, error_response
from .instrument import MetricsMiddleware

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REQUEST_ID_FORMAT = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",  # a /t/{token} page must not leak its URL to other sites
    "x-frame-options": "DENY",
    # pages set their own policy (display/render.py); JSON, SVG and the rest may run nothing
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
}
HSTS = "max-age=31536000; includeSubDomains"  # only on answers that came over HTTPS


class HeadersMiddleware:
    """Echo or mint ``X-Request-ID`` (a socket gets one too, for its log lines); add security
    headers a response did not set itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = assign_request_id(scope)
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        is_api = scope["path"].startswith(API_PREFIX)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["x-request-id"] = request_id
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if is_api:
                    headers.setdefault("cache-control", "no-store")
                if scope.get("scheme") == "https":  # directly, or as a trusted proxy says
                    headers.setdefault("strict-transport-security", HSTS)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def assign_request_id(scope: Scope) -> str:
    """The request's id (the client's ``X-Request-ID`` if well-formed, else a fresh one), in
    ``scope["state"]`` and in the log context."""
    incoming = Headers(scope=scope).get("x-request-id", "")
    request_id = incoming if REQUEST_ID_FORMAT.match(incoming) else uuid.uuid4().hex
    scope.setdefault("state", {})["request_id"] = request_id
    # Not reset afterwards: each request runs in its own task, and the server's own error
    # and access lines for this request, written after the app returns, should carry it.
    REQUEST_ID.set(request_id)
    return request_id


class HubWriteGuard:
    """A ``--role hub`` process holds no record: every write belongs on the primary."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in UNSAFE_METHODS:
            response = error_response(421, "write_on_hub", "this server only reads; send writes to the primary")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse bodies over ``max_bytes``: at once by Content-Length, else while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response = error_response(413, "payload_too_large", f"body larger than {self.max_bytes} bytes")
            await response(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise PayloadTooLarge(f"body larger than {self.max_bytes} bytes")
            return message

        await self.app(scope, limited_receive, send)


def stack(settings: Settings, role: str) -> list[Middleware]:
    middleware = [Middleware(MetricsMiddleware), Middleware(HeadersMiddleware)]
    if role == "hub":
        middleware.append(Middleware(HubWriteGuard))
    middleware.append(Middleware(BodyLimit, max_bytes=settings["server.max_body_bytes"]))
    return middleware
