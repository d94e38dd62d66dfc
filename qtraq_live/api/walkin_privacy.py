"""A walk-in withdraws consent from their ticket page (DPDP: withdrawal as easy as giving it):
``POST /api/v1/t/{token}/withdraw`` deletes the ticket's contact details and name from the
record and the live state, drops its pending notices and its consent record. The ticket keeps
its place in the queue (by label); no further notice is sent.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..accounts import consent_records, notices
from ..engine import live_erasure
from ..errors import MisdirectedWrite, NotFound
from ..record import security_log
from ..validation import EMPTY
from ..web import ratelimit
from ..web.request import client_ip, read_json
from ..web.responses import JSONResponse
from .common import engine_of

WINDOW_S = 600


async def withdraw(request: Request) -> Response:
    store = request.app.state.store
    if store is None:
        raise MisdirectedWrite("this server only relays queues; send it to the primary")
    redis = request.app.state.redis
    await ratelimit.hit(redis, "withdraw", client_ip(request), request.app.state.settings["security.join_rate_limit"],
                        WINDOW_S)
    await read_json(request, EMPTY)
    ticket = await engine_of(request).ticket_by_token(request.path_params["token"])
    if ticket is None:
        raise NotFound("unknown ticket")
    tid = int(ticket["id"])
    await live_erasure.blank_names(redis, [tid])
    async with store.transaction() as db:
        await db.execute("DELETE FROM ticket_contacts WHERE ticket_id = ?", (tid,))
        await db.execute("UPDATE tickets SET name = NULL WHERE id = ?", (tid,))
    await consent_records.forget_tickets(store, [tid])
    await notices.forget_ticket(redis, store, tid)
    await security_log.record(store, "walk_in.withdrawn", f"ticket:{tid}", "self", client_ip(request))
    return JSONResponse({"withdrawn": True})


routes: list[BaseRoute] = [Route("/t/{token}/withdraw", withdraw, methods=["POST"])]
