"""One ticket's state changes by staff: call (out of order), recall, serve, skip, done, no-show,
cancel, requeue, transfer. Each is one engine call; an illegal transition is a 409."""

from __future__ import annotations

from functools import partial

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..errors import Forbidden, NotFound
from ..metrics import observe_call
from ..validation import EMPTY, SLUG, Field, Schema
from ..web.auth import Staff, authenticate_staff, require_staff
from ..web.request import read_json
from ..web.responses import JSONResponse
from .common import audit_entry, engine_of
from .queues import NEXT_BODY

# URL segment -> engine action
ACTIONS = {
    "recall": "recall",
    "serve": "serve",
    "skip": "skip",
    "done": "done",
    "no-show": "no_show",
    "cancel": "cancel",
    "requeue": "requeue",
}
TRANSFER_BODY = Schema({"queue": Field("string", required=True, pattern=SLUG,
                                       description="the queue (same clinic) to move the ticket to")})


async def _authorize(request: Request, action: str, ticket_id: int) -> Staff:
    """Reception and admins act on any ticket; a doctor only on tickets of their queues."""
    user = await authenticate_staff(request)
    if user.at_least("reception"):
        return user
    ticket = await engine_of(request).ticket(ticket_id)
    if ticket is None:
        raise NotFound("unknown ticket")
    if not user.may(action, ticket["queue"]):
        raise Forbidden(f"not allowed to {action.replace('_', '-')} this ticket", code="forbidden")
    return user


async def get_ticket(request: Request) -> Response:
    user = await require_staff(request)
    ticket = await engine_of(request).ticket(request.path_params["ticket_id"])
    if ticket is None:
        raise NotFound("unknown ticket")
    if not user.reads(ticket["queue"]):
        raise Forbidden("a doctor reads only the tickets of the queues named for them", code="forbidden")
    return JSONResponse({"ticket": ticket})


async def act(request: Request, action: str) -> Response:
    ticket_id: int = request.path_params["ticket_id"]
    user = await _authorize(request, action, ticket_id)
    await read_json(request, EMPTY)
    ticket = await engine_of(request).act(action, ticket_id, actor=user.actor,
                                          record=audit_entry(request, user.actor, f"ticket.{action}", f"ticket:{ticket_id}"))
    return JSONResponse({"ticket": ticket})


async def call(request: Request) -> Response:
    """Call this ticket to the counter now; the counter's previous call ends as with ``next``.
    A retried press with the same ``Idempotency-Key`` answers the first result."""
    ticket_id: int = request.path_params["ticket_id"]
    user = await _authorize(request, "call", ticket_id)
    body = await read_json(request, NEXT_BODY)
    ticket = await engine_of(request).call(ticket_id, body["counter"],
                                           idempotency_key=request.headers.get("idempotency-key"), actor=user.actor,
                                           record=audit_entry(request, user.actor, "ticket.call", f"ticket:{ticket_id}"))
    observe_call(ticket)
    return JSONResponse({"ticket": ticket})


async def transfer(request: Request) -> Response:
    ticket_id: int = request.path_params["ticket_id"]
    user = await require_staff(request, "reception")
    body = await read_json(request, TRANSFER_BODY)
    ticket = await engine_of(request).transfer(ticket_id, body["queue"], actor=user.actor,
                                               record=audit_entry(request, user.actor, "ticket.transfer",
                                                                  f"ticket:{ticket_id}"))
    return JSONResponse({"ticket": ticket})


routes: list[BaseRoute] = [
    Route("/tickets/{ticket_id:int}", get_ticket, methods=["GET"]),
    *[Route(f"/tickets/{{ticket_id:int}}/{segment}", partial(act, action=action), methods=["POST"],
            name=f"ticket_{action}") for segment, action in ACTIONS.items()],
    Route("/tickets/{ticket_id:int}/call", call, methods=["POST"]),
    Route("/tickets/{ticket_id:int}/transfer", transfer, methods=["POST"]),
]
