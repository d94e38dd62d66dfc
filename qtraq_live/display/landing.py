"""``/``, the landing page that links the screens, and ``/forms/refused``, where a form lands
when its page script did not run.

Every form that holds a password, a phone number or an email is ``method=post`` with this
action: with JavaScript off nothing typed goes into a URL, the history or a proxy's log; the
server answers with a page that says so and reads nothing of the body.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..queue_engine import QueueEngine
from .render import page, request_lang


async def landing(request: Request) -> Response:
    """The screens of this server: staff consoles, the patient portal, self check-in per queue."""
    engine: QueueEngine = request.app.state.engine
    clinics = []
    for cid in await engine.clinic_ids():
        clinic = await engine.get_clinic(cid)
        if clinic is not None:
            clinics.append({"name": clinic["name"],
                            "joins": [{"id": q["id"], "name": q["name"]} for q in clinic["queues"] if q["self_checkin"]]})
    return page(request, "landing.html", lang=request_lang(request), clinics=clinics)


async def refused(request: Request) -> Response:
    """The form was sent without its script: nothing of it is read, kept or logged (400; a plain
    visit to the address, 200)."""
    return page(request, "refused.html", lang=request_lang(request), status=400 if request.method == "POST" else 200)


routes: list[BaseRoute] = [
    Route("/", landing, methods=["GET"], name="landing"),
    Route("/forms/refused", refused, methods=["GET", "POST"], name="form_refused"),
]
