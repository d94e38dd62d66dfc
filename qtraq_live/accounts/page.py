"""The patient portal page ``/account`` and the public privacy page ``/privacy``.

The portal is one page: signed out it offers registration and login; signed in, the page
script drives the REST API (``/api/v1/me…``) with the session's CSRF token embedded here, and
follows each checked-in appointment's ticket live over ``/ws/t/{token}``.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..display import i18n
from ..display.render import page, request_lang
from ..errors import NotFound
from ..web import auth, demo_outbox
from . import oidc, records

CHECKIN_CODE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


async def _account_lang(request: Request, uid: str) -> str | None:
    """The signed-in account's chosen language: the page speaks it unless ``?lang=`` says otherwise."""
    store = request.app.state.store
    if store is None:
        return None
    try:
        return (await records.get_account_row(store, int(uid)))["lang"]
    except NotFound:
        return None


async def account_page(request: Request) -> Response:
    settings = request.app.state.settings
    session = await auth.current_session(request)
    signed_in = session is not None and session.get("kind") == "account"
    code = request.query_params.get("checkin", "")
    data = {
        "csrf": session["csrf"] if signed_in and session else None,
        "signed_in": signed_in,
        "checkin_code": code if CHECKIN_CODE.match(code) else None,
        "grievance_contact": settings["privacy.grievance_contact"],
    }
    preferred = await _account_lang(request, session["uid"]) if signed_in and session else None
    clinics = await _bookable(request)
    t = i18n.translator(request_lang(request, preferred))
    # Which contacts this server can send a code to: the page never claims a code was sent otherwise.
    can_send = [t(f"portal.{name}") for name, keys_ in (("email", ("email",)), ("mobile", ("sms", "whatsapp")))
                if any(settings[f"notify.{k}"] for k in keys_)]
    data["queue_names"] = {q["id"]: q["name"] for c in clinics for q in c["queues"]}
    oidc_label = settings["accounts.oidc.label"] if oidc.enabled(settings) else None  # #22
    return page(request, "account.html", lang=request_lang(request, preferred), data=data, signed_in=signed_in,
                grievance_contact=settings["privacy.grievance_contact"], oidc_label=oidc_label, clinics=clinics,
                outbox=demo_outbox.enabled(settings), code_channels=", ".join(can_send),
                erased=request.query_params.get("erased") == "1" and not signed_in)


async def _bookable(request: Request) -> list[dict[str, Any]]:
    """Each clinic's queues by name, for booking from a list (nobody types a queue id)."""
    engine = request.app.state.engine
    out = []
    for cid in await engine.clinic_ids():
        clinic = await engine.get_clinic(cid)
        if clinic is not None and clinic["queues"]:
            out.append({"name": clinic["name"], "queues": [{"id": q["id"], "name": q["name"]} for q in clinic["queues"]]})
    return out


async def privacy_page(request: Request) -> Response:
    settings = request.app.state.settings
    return page(request, "privacy.html", lang=request_lang(request),
                grievance_contact=settings["privacy.grievance_contact"],
                walkin_contact_days=settings["privacy.walkin_contact_days"],
                session_log_days=settings["privacy.session_log_days"],
                notice_version=settings["privacy.notice_version"])


routes: list[BaseRoute] = [
    Route("/account", account_page, methods=["GET"]),
    Route("/privacy", privacy_page, methods=["GET"]),
]
