"""Feedback endpoints: the ticket holder rates a finished visit once; admins read aggregates."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..api.common import engine_of
from ..errors import NotFound
from ..web import auth
from ..web import ratelimit
from ..web.request import client_ip, read_json
from ..web.responses import JSONResponse, range_report, wants_csv
from . import feedback
from .api import now_ms, store_of

RATINGS_PER_IP = 30  # per 10 minutes: a clinic's Wi-Fi shares one address, a flood does not pass


async def rate(request: Request) -> Response:
    await ratelimit.hit(request.app.state.redis, "feedback", client_ip(request), RATINGS_PER_IP, 600)
    body = await read_json(request, feedback.BODY)
    engine = engine_of(request)
    ticket = await engine.ticket_by_token(request.path_params["token"])
    if ticket is None:
        raise NotFound("unknown ticket")
    clinic = await engine.get_clinic(ticket["clinic"])
    timezone = clinic["timezone"] if clinic else "UTC"
    out = await feedback.rate(store_of(request), ticket, body, timezone,
                              request.app.state.settings["feedback.days"], now_ms())
    return JSONResponse(out, status_code=201)


async def clinic_feedback(request: Request) -> Response:
    """Aggregates per queue and day (admin); ``?format=csv`` for a spreadsheet."""
    await auth.require_staff(request, "admin")
    q = request.query_params
    as_csv = wants_csv(request)
    clinic = await engine_of(request).get_clinic(request.path_params["clinic"])
    if clinic is None:
        raise NotFound("unknown clinic")
    today = datetime.now(ZoneInfo(clinic["timezone"])).date()
    data = await feedback.aggregates(store_of(request), clinic["id"], q.get("from"), q.get("to"), today)
    return range_report(as_csv, "feedback", data, feedback.to_csv)


routes: list[BaseRoute] = [
    Route("/feedback/{token}", rate, methods=["POST"]),
    Route("/clinics/{clinic}/feedback", clinic_feedback, methods=["GET"]),
]
