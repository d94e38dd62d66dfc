"""Today's set-aside tickets of a clinic: those skipped (called, not there) and no-shows, so the
front desk can bring a patient back when they turn up (``POST /tickets/{id}/call`` or
``/requeue``) or mark a skipped one as a no-show.

``GET /clinics/{clinic}/set-aside`` → ``{tickets: [{id, queue, label, status, name}]}``, newest
first. The day's tickets come from the SQLite record (a ticket can be set aside only while it is
not done or cancelled, and those two are final, so the record's list of the others holds every
candidate even while it lags a moment behind); their status now comes from the live state. The
console follows later changes over its socket. A doctor sees only their queues' tickets.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..errors import NotFound, Unavailable
from ..queue_engine import TicketStatus, clinic_day
from ..web.auth import require_staff
from ..web.responses import JSONResponse
from .common import engine_of

SET_ASIDE = (TicketStatus.SKIPPED, TicketStatus.NO_SHOW)
FINAL = (TicketStatus.DONE, TicketStatus.CANCELLED)
CANDIDATES = 5000  # a busy hospital's day of open tickets


async def set_aside(request: Request) -> Response:
    user = await require_staff(request)
    clinic = await engine_of(request).get_clinic(request.path_params["clinic"])
    if clinic is None:
        raise NotFound("unknown clinic")
    store = request.app.state.store
    if store is None:
        raise Unavailable("the record is read on the primary")
    queues = [q["id"] for q in clinic["queues"] if user.at_least("reception") or q["id"] in user.queues]
    if not queues:
        return JSONResponse({"tickets": []})
    engine = engine_of(request)
    day = clinic_day(clinic["timezone"], engine.clock())
    rows = await store.fetchall(
        f"SELECT id, label, name FROM tickets WHERE clinic = ? AND day = ? "
        f"AND status NOT IN ({', '.join('?' * len(FINAL))}) ORDER BY updated_at DESC LIMIT ?",
        (clinic["id"], day, *(str(s) for s in FINAL), CANDIDATES))
    live = await engine.live_statuses([int(r["id"]) for r in rows])
    out = [{"id": r["id"], "queue": live[r["id"]][1], "label": r["label"], "status": live[r["id"]][0],
            "name": r["name"]} for r in rows
           if r["id"] in live and live[r["id"]][0] in SET_ASIDE and live[r["id"]][1] in queues]
    return JSONResponse({"tickets": out})


routes: list[BaseRoute] = [
    Route("/clinics/{clinic}/set-aside", set_aside, methods=["GET"]),
]
