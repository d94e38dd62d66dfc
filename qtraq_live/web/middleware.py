"""The app's own HTTP middleware, one ASGI layer: metrics, request id and security headers,
the hub's write guard (421), the body size limit (413).

One plain ASGI class rather than one per concern (or ``BaseHTTPMiddleware``): a request
passes one frame, its ``send`` one wrapper and its ``receive`` one, it streams, adds no task,
and leaves WebSockets alone but for their request id.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import Settings
from ..errors import PayloadTooLarge, RequestTimeout
from ..runtime.logs import REQUEST_ID
from .errors import API_PREFIX, error_response
from .instrument import count_answer, route_label

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
# Document uploads (accounts/api_documents.py) may be as large as documents.max_bytes plus the
# multipart framing around the file; every other body keeps server.max_body_bytes.
UPLOAD_PATH = re.compile(r"^/api/v1/me/patients/[^/]+/documents$")
MULTIPART_ROOM = 64 * 1024

Raw = list[tuple[bytes, bytes]]


def _encoded(headers: dict[str, str]) -> tuple[tuple[bytes, bytes], ...]:
    return tuple((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())


# The headers an answer gets unless it set them itself, by (under /api/, over HTTPS).
DEFAULT_HEADERS = {
    (api, https): _encoded({**SECURITY_HEADERS, **({"cache-control": "no-store"} if api else {}),
                            **({"strict-transport-security": HSTS} if https else {})})
    for api in (False, True) for https in (False, True)
}


class HttpMiddleware:
    """Count every HTTP answer by method, route template and status; echo or mint
    ``X-Request-ID``; add the security headers an answer did not set itself; refuse writes on a
    ``--role hub`` process (it holds no record: they belong on the primary) and bodies over
    ``max_bytes`` (at once by Content-Length, else while streaming). A WebSocket gets its
    request id (for its log lines) and passes."""

    def __init__(self, app: ASGIApp, max_bytes: int, read_only: bool, upload_bytes: int = 0,
                 body_timeout_s: float = 30.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_only = read_only
        self.upload_bytes = max(upload_bytes, max_bytes)
        self.body_timeout_s = body_timeout_s  # a body still arriving after this is a 408 (slow bodies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                assign_request_id(scope)
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        request_id = assign_request_id(scope)
        defaults = DEFAULT_HEADERS[scope["path"].startswith(API_PREFIX), scope.get("scheme") == "https"]

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = _with_headers(message.get("headers", ()), request_id, defaults)
            await send(message)

        try:
            await self._guarded(scope, receive, answer)
        finally:
            count_answer(scope["method"], route_label(scope), status, time.perf_counter() - started)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app, behind the write guard and the body limit."""
        if self.read_only and scope["method"] in UNSAFE_METHODS:
            response = error_response(421, "write_on_hub", "this server only reads; send writes to the primary")
            await response(scope, receive, send)
            return
        limit = self.upload_bytes if UPLOAD_PATH.match(scope["path"]) else self.max_bytes
        declared = _header(scope, b"content-length")
        if declared.isdigit() and int(declared) > limit:
            response = error_response(413, "payload_too_large", f"body larger than {limit} bytes")
            await response(scope, receive, send)
            return
        seen, complete = 0, False
        deadline = time.monotonic() + self.body_timeout_s

        async def limited_receive() -> Message:
            nonlocal seen, complete
            if complete:  # after the body: waiting for a disconnect is not bounded
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0.001))
            except TimeoutError:
                raise RequestTimeout(f"the body took longer than {self.body_timeout_s:g} s") from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if seen > limit:
                    raise PayloadTooLarge(f"body larger than {limit} bytes")
            return message

        await self.app(scope, limited_receive, send)


def _header(scope: Scope, name: bytes) -> bytes:
    """The first value of a request header (ASGI names are lower case), or ``b""``."""
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return b""


def _with_headers(raw: Raw, request_id: str, defaults: tuple[tuple[bytes, bytes], ...]) -> Raw:
    """An answer's headers with ``x-request-id`` set and the defaults it lacks added."""
    present = {name for name, _ in raw}
    out = [h for h in raw if h[0] != b"x-request-id"]
    out.append((b"x-request-id", request_id.encode("latin-1")))
    out += [h for h in defaults if h[0] not in present]
    return out


def assign_request_id(scope: Scope) -> str:
    """The request's id (the client's ``X-Request-ID`` if well-formed, else a fresh one), in
    ``scope["state"]`` and in the log context."""
    incoming = _header(scope, b"x-request-id").decode("latin-1")
    request_id = incoming if REQUEST_ID_FORMAT.match(incoming) else secrets.token_hex(16)
    scope.setdefault("state", {})["request_id"] = request_id
    # Not reset afterwards: each request runs in its own task, and the server's own error
    # and access lines for this request, written after the app returns, should carry it.
    REQUEST_ID.set(request_id)
    return request_id


def stack(settings: Settings, mode: str) -> list[Middleware]:
    return [Middleware(HttpMiddleware, max_bytes=settings["server.max_body_bytes"], read_only=mode == "hub",
                       upload_bytes=settings["documents.max_bytes"] + MULTIPART_ROOM,
                       body_timeout_s=settings["server.body_timeout_s"])]
