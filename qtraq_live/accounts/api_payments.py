"""Payment endpoints: reception marks a visit paid. (The method is chosen when booking; a
clinic's ``upi_vpa`` and a queue's ``fee`` are fields of those resources, api/clinics.py.)"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..api.common import audit
from ..errors import NotFound
from ..validation import EMPTY
from ..web import auth
from ..web.request import read_json
from ..web.responses import JSONResponse
from . import payments
from .api import now_ms, store_of


async def mark_paid(request: Request) -> Response:
    user = await auth.require_staff(request, "reception")
    await read_json(request, EMPTY)
    try:
        appointment_id = int(request.path_params["appointment"])
    except ValueError:
        raise NotFound("unknown appointment") from None
    out = await payments.mark_paid(store_of(request), appointment_id, user.actor, now_ms())
    await audit(request, user.actor, "appointment.paid", f"appointment:{appointment_id}")
    return JSONResponse(out)


routes: list[BaseRoute] = [
    Route("/appointments/{appointment}/paid", mark_paid, methods=["POST"]),
]
