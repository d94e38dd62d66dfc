"""Web Push sign-up: the server's public VAPID key, and a ticket's browser subscription.

``POST /t/{token}/push`` takes the browser's ``PushSubscription`` JSON. Its endpoint is a URL
our workers will POST to, so it must be ``https`` (push services all are); plain ``http`` is
accepted only for a loopback host outside production, for local tests. Subscribing turns the
ticket's notices on (the engine's ``notify_on``); from then on they go by Web Push first.
"""

from __future__ import annotations

import ipaddress
import json
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..engine import redis_keys as keys
from ..errors import Invalid, NotFound
from ..validation import Field, Schema
from ..web import ratelimit
from ..web.request import client_ip, read_json
from ..web.responses import JSONResponse
from ..workers import vapid
from .common import engine_of

B64URL = r"^[A-Za-z0-9_-]+={0,2}$"
SUBSCRIPTION = Schema({
    "endpoint": Field("string", required=True, min_length=12, max_length=1024,
                      description="the push service URL the browser gave (https)"),
    "expirationTime": Field("number", nullable=True, description="ignored: the ticket's life bounds it"),
    "keys": Field("object", required=True, schema=Schema({
        "p256dh": Field("string", required=True, min_length=80, max_length=100, pattern=B64URL,
                        description="the browser's P-256 public key, URL-safe base64"),
        "auth": Field("string", required=True, min_length=16, max_length=32, pattern=B64URL,
                      description="the 16-byte auth secret, URL-safe base64"),
    })),
})
SUBSCRIPTION_TTL_S = 2 * 86400  # about a ticket's life; a new visit to the page subscribes again
WINDOW_S = 60


def _check_endpoint(url: str, production: bool) -> None:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if parts.scheme == "http" and loopback and not production:
        return
    raise Invalid("endpoint", "must be an https URL of a push service")


async def public_key(request: Request) -> Response:
    state = request.app.state
    if not state.settings["notify.web_push"]:
        raise NotFound("Web Push is off")
    key = await vapid.public_key(state.redis)
    if key is None and state.mode == "all":  # Redis was emptied since start: publish again
        key = await vapid.publish(state.redis, state.settings.data_dir)
    if key is None:
        raise NotFound("no VAPID key yet: the primary publishes it when it starts")
    return JSONResponse({"public_key": key})


async def subscribe(request: Request) -> Response:
    state = request.app.state
    await ratelimit.hit(state.redis, "track", client_ip(request), state.settings["security.track_rate_limit"], WINDOW_S)
    if not state.settings["notify.web_push"]:
        raise NotFound("Web Push is off")
    body = await read_json(request, SUBSCRIPTION)
    _check_endpoint(body["endpoint"], state.settings.production)
    engine = engine_of(request)
    ticket = await engine.ticket_by_token(request.path_params["token"])
    if ticket is None:
        raise NotFound("unknown ticket")
    # The subscription first: the notifier reads it when the "notify_on" event arrives.
    sub = {"endpoint": body["endpoint"], "keys": body["keys"]}
    await state.redis.set(keys.push_subscription(ticket["id"]), json.dumps(sub), ex=SUBSCRIPTION_TTL_S)
    try:
        await engine.notify_on(ticket["id"])  # Conflict (409) once it has left the queue
    except BaseException:
        await state.redis.delete(keys.push_subscription(ticket["id"]))  # nothing half-written
        raise
    return JSONResponse({"subscribed": True}, status_code=201)


routes: list[BaseRoute] = [
    Route("/push/key", public_key, methods=["GET"]),
    Route("/t/{token}/push", subscribe, methods=["POST"]),
]
