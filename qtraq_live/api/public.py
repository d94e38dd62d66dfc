"""What patients reach without an account: self check-in and their own ticket by token.

Rate limited per client address in Redis. A token holder sees only the public fields of
their ticket (``queue_engine.public_ticket``): no name, no id, no one else's token.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..errors import Invalid, NotFound
from ..queue_engine import TicketSource, public_ticket
from ..validation import EMPTY
from ..web import ratelimit
from ..web.request import client_ip, read_json
from ..web.responses import JSONResponse
from .common import audit, engine_of
from .issue import PUBLIC_JOIN, issue_ticket

JOIN_WINDOW_S = 600
TRACK_WINDOW_S = 60


async def join(request: Request) -> Response:
    """Self check-in from the QR page: only on queues that allow it (404 otherwise)."""
    settings = request.app.state.settings
    await ratelimit.hit(request.app.state.redis, "join", client_ip(request),
                        settings["security.join_rate_limit"], JOIN_WINDOW_S)
    queue_id = request.path_params["queue"]
    body = await read_json(request, PUBLIC_JOIN)
    queue = await engine_of(request).get_queue(queue_id)
    if queue is None or not queue["self_checkin"]:
        raise NotFound("no such queue open for self check-in")
    return JSONResponse(await issue_ticket(request, queue_id, body, "patient", via="self_checkin", source=TicketSource.SELF), status_code=201)


async def _limit_tracking(request: Request) -> str:
    await ratelimit.hit(request.app.state.redis, "track", client_ip(request),
                        request.app.state.settings["security.track_rate_limit"], TRACK_WINDOW_S)
    return str(request.path_params["token"])


async def _public_view(request: Request, token: str) -> dict[str, Any]:
    ticket = await engine_of(request).ticket_by_token(token)
    if ticket is None:
        raise NotFound("unknown ticket")
    return public_ticket(ticket, ticket["queue_name"], ticket["clinic_name"], ticket["version"])


async def track(request: Request) -> Response:
    token = await _limit_tracking(request)
    return JSONResponse(await _public_view(request, token))


async def leave(request: Request) -> Response:
    """The patient leaves the queue (their ticket is cancelled)."""
    token = await _limit_tracking(request)
    await read_json(request, EMPTY)
    try:
        ticket = await engine_of(request).cancel_by_token(token)
    except Invalid:  # not even token-shaped: the same answer as an unknown one
        raise NotFound("unknown ticket") from None
    await audit(request, "patient", "ticket.cancel_by_patient", f"ticket:{ticket['id']}")
    return JSONResponse(await _public_view(request, token))


routes: list[BaseRoute] = [
    Route("/public/queues/{queue}/join", join, methods=["POST"]),
    Route("/t/{token}", track, methods=["GET"]),
    Route("/t/{token}", leave, methods=["DELETE"]),
]
