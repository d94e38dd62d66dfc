"""Spoken calls for the TV: a call's audio in one language, and the clinic's languages.

Both take the screen's display key (``?key=``), like the display socket. The audio is the
call made at that clinic version (a ``called`` or ``recalled`` event), said by espeak-ng in
the language asked for, from the clip cache when it was said before.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from ..engine import redis_keys as keys
from ..errors import Invalid, NotFound, Unauthorized
from ..realtime.mirror import call_of
from ..speech import clips, languages
from ..speech.phrases import SUPPORTED, call_text
from ..web import ratelimit
from ..web.request import client_ip
from ..web.responses import JSONResponse
from .common import engine_of

CLIP_CACHE_S = 86400  # the same call never sounds different: the browser may keep it a day
RATE_PER_MIN = 240  # a busy TV asks two clips per call; a runaway script is stopped


async def _check_key(request: Request) -> str:
    clinic: str = request.path_params["clinic"]
    key = request.query_params.get("key", "")
    if not key or await request.app.state.redis.get(keys.display_key(key)) != clinic:
        raise Unauthorized("missing or invalid display key", code="bad_display_key")
    return clinic


async def call_audio(request: Request) -> Response:
    await ratelimit.hit(request.app.state.redis, "speech", client_ip(request), RATE_PER_MIN, 60)
    clinic = await _check_key(request)
    lang = request.query_params.get("lang", "")
    if lang not in SUPPORTED:
        raise Invalid("lang", f"must be one of {', '.join(SUPPORTED)}")
    version: int = request.path_params["version"]
    events = await engine_of(request).events_since(clinic, version - 1, limit=1) if version > 0 else None
    called = call_of(events[0]) if events and int(events[0]["v"]) == version else None
    if called is None:
        raise NotFound("no call was made at that version (or it is too old)")
    text = call_text(lang, called["label"], called.get("counter") or "")
    path = await clips.clip(request.app.state.settings.data_dir / "speech", lang, text)
    return FileResponse(path, media_type="audio/wav", headers={"Cache-Control": f"private, max-age={CLIP_CACHE_S}"})


async def clinic_languages(request: Request) -> Response:
    clinic = await _check_key(request)
    return JSONResponse({"languages": await languages.get(request.app.state.redis, clinic)})


routes: list[BaseRoute] = [
    Route("/clinics/{clinic}/calls/{version:int}/audio", call_audio, methods=["GET"]),
    Route("/clinics/{clinic}/speech", clinic_languages, methods=["GET"]),
]
