"""The demo's outbox: where ``qtraq-live demo`` shows the verification codes it would send.

A newcomer trying the patient portal has no email or SMS provider, and a code that goes nowhere
stops them at the first step. With ``demo.outbox`` on (the demo turns it on; it never works in
production) each code is also kept here, with its contact masked, and ``/demo/outbox`` shows the
last few on a page marked plainly as the demo's. Redis keeps at most ``KEEP`` of them for an hour.
"""

from __future__ import annotations

import json
import time

import redis.asyncio as aioredis
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..config import Settings
from ..display.render import error_page, page, request_lang
from ..engine import redis_keys as keys

KEEP = 20
TTL_S = 3600


def enabled(settings: Settings) -> bool:
    return bool(settings["demo.outbox"]) and not settings.production


def mask(contact: str) -> str:
    """``asha@mail.example`` → ``a•••@mail.example``; ``+919876543210`` → ``+91•••••43210``."""
    if "@" in contact:
        local, _, domain = contact.partition("@")
        return f"{local[:1]}•••@{domain}"
    return f"{contact[:3]}•••••{contact[-5:]}" if len(contact) > 8 else "•••"


async def put(redis: aioredis.Redis, channel: str, contact: str, code: str) -> None:
    entry = json.dumps({"channel": channel, "to": mask(contact), "code": code, "at": int(time.time())})
    async with redis.pipeline(transaction=True) as pipe:
        pipe.lpush(keys.DEMO_OUTBOX, entry)
        pipe.ltrim(keys.DEMO_OUTBOX, 0, KEEP - 1)
        pipe.expire(keys.DEMO_OUTBOX, TTL_S)
        await pipe.execute()


async def outbox_page(request: Request) -> Response:
    settings = request.app.state.settings
    if not enabled(settings):
        return error_page(request, 404, "error.not_found")
    entries = [json.loads(e) for e in await request.app.state.redis.lrange(keys.DEMO_OUTBOX, 0, KEEP - 1)]
    for e in entries:
        e["time"] = time.strftime("%H:%M:%S", time.localtime(e["at"]))
    return page(request, "demo_outbox.html", lang=request_lang(request), entries=entries)


routes: list[BaseRoute] = [Route("/demo/outbox", outbox_page, methods=["GET"], name="demo_outbox")]
