"""The patient portal page ``/account`` and the public privacy page ``/privacy``.

The portal is one page: signed out it offers registration and login; signed in, the page
script drives the REST API (``/api/v1/me…``) with the session's CSRF token embedded here, and
follows each checked-in appointment's ticket live over ``/ws/t/{token}``.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .. import auth
from ..display.render import page, request_lang
from ..errors import NotFound
from . import records

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
    return page(request, "account.html", lang=request_lang(request, preferred), data=data, signed_in=signed_in,
                grievance_contact=settings["privacy.grievance_contact"])


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
