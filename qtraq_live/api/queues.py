"""A queue at work: its snapshot, issuing tickets, the "next" press, closing a counter, pause and
resume."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..errors import Forbidden
from ..metrics import PRESS_SECONDS, observe_call
from ..queue_engine import COUNTER_MAX, TicketSource
from ..validation import EMPTY, Field, Schema
from ..web.auth import require_queue_action, require_staff
from ..web.request import read_json
from ..web.responses import JSONResponse
from .common import audit, audit_entry, engine_of
from .issue import STAFF_ISSUE, issue_ticket

NEXT_BODY = Schema({"counter": Field("string", min_length=1, max_length=COUNTER_MAX, default="1",
                                     description="the desk or room pressing; its previous patient is finished")})


async def snapshot(request: Request) -> Response:
    user = await require_staff(request)
    if not user.reads(request.path_params["queue"]):
        raise Forbidden("a doctor reads only the queues named for them", code="forbidden")
    return JSONResponse(await engine_of(request).queue_snapshot(request.path_params["queue"]))


async def issue(request: Request) -> Response:
    queue_id = request.path_params["queue"]
    user = await require_queue_action(request, "issue", queue_id)
    body = await read_json(request, STAFF_ISSUE)
    issued = await issue_ticket(request, queue_id, body, user.actor, via="reception", source=TicketSource.RECEPTION)
    await audit(request, user.actor, "ticket.issue", f"ticket:{issued['ticket']['id']}")
    return JSONResponse(issued, status_code=201)


async def next_press(request: Request) -> Response:
    """Finish this counter's patient and call the next one. A retried press with the same
    ``Idempotency-Key`` gets the first answer back instead of calling someone else."""
    started = time.perf_counter()
    queue_id = request.path_params["queue"]
    user = await require_queue_action(request, "next", queue_id)
    body = await read_json(request, NEXT_BODY)
    called = await engine_of(request).next(queue_id, body["counter"],
                                           idempotency_key=request.headers.get("idempotency-key"), actor=user.actor,
                                           record=audit_entry(request, user.actor, "queue.next", f"queue:{queue_id}"))
    PRESS_SECONDS.observe(time.perf_counter() - started)
    observe_call(called)
    return JSONResponse({"called": called})


async def close_counter(request: Request) -> Response:
    """The counter closes: its patient (if still called or serving) is done and it leaves the open
    counters. Closing a closed counter answers the same with ``closed: false`` and audits nothing."""
    queue_id = request.path_params["queue"]
    counter = request.path_params["counter"]
    user = await require_queue_action(request, "close_counter", queue_id)
    await read_json(request, EMPTY)
    ended, closed = await engine_of(request).close_counter(
        queue_id, counter, actor=user.actor,
        record=audit_entry(request, user.actor, "queue.close_counter", f"queue:{queue_id}"))
    return JSONResponse({"closed": closed, "done": ended})


async def pause(request: Request) -> Response:
    return await _set_paused(request, "pause")


async def resume(request: Request) -> Response:
    return await _set_paused(request, "resume")


async def _set_paused(request: Request, action: str) -> Response:
    queue_id = request.path_params["queue"]
    user = await require_queue_action(request, action, queue_id)
    await read_json(request, EMPTY)
    engine = engine_of(request)
    queue = await (engine.pause if action == "pause" else engine.resume)(
        queue_id, actor=user.actor, record=audit_entry(request, user.actor, f"queue.{action}", f"queue:{queue_id}"))
    return JSONResponse({"queue": queue})


routes: list[BaseRoute] = [
    Route("/queues/{queue}", snapshot, methods=["GET"]),
    Route("/queues/{queue}/tickets", issue, methods=["POST"]),
    Route("/queues/{queue}/next", next_press, methods=["POST"]),
    Route("/queues/{queue}/counters/{counter:path}/close", close_counter, methods=["POST"]),
    Route("/queues/{queue}/pause", pause, methods=["POST"]),
    Route("/queues/{queue}/resume", resume, methods=["POST"]),
]
