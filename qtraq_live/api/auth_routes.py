"""Staff login, logout and "who am I"."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..errors import Unauthorized
from ..record import security_log
from ..validation import Field, Schema
from ..web import auth
from ..web.request import client_ip, read_json
from ..web.responses import JSONResponse
from .common import audit

LOGIN_BODY = Schema({
    "username": Field("string", required=True, min_length=1, max_length=64),
    "password": Field("string", required=True, min_length=1, max_length=256),
})


async def login(request: Request) -> Response:
    """Check the password (locked out with backoff after repeated failures) and start a
    session: cookie plus ``{"csrf_token"}`` for the page to send back on writes."""
    auth.check_same_site(request)
    body = await read_json(request, LOGIN_BODY)
    store = request.app.state.store
    try:
        user = await auth.login_staff(request, body["username"], body["password"])
    except Unauthorized:
        await audit(request, "anonymous", "auth.login_failed")
        await security_log.record(store, "staff.login_failed", "", "anonymous", client_ip(request),
                                  {"username": body["username"].lower()[:64]})  # staff names: not patient data
        raise
    await security_log.record(store, "staff.login", f"user:{user.id}", f"user:{user.id}", client_ip(request))
    sid, csrf = await auth.start_session(request, "staff", user.id)
    await audit(request, user.actor, "auth.login", f"user:{user.id}")
    response = JSONResponse({"csrf_token": csrf, "user": user.public()})
    auth.set_session_cookie(response, request, sid)
    return response


async def logout(request: Request) -> Response:
    """End the cookie's session (CSRF-checked, so another site cannot log staff out)."""
    session = await auth.current_session(request)
    if session is not None:
        auth.check_csrf(request, session)
        await auth.end_session(request.app.state.redis, request.cookies.get(auth.SESSION_COOKIE))
        request.app.state.credentials.forget()  # at once here; other processes when they hear of it
        await audit(request, f"{'user' if session.get('kind') == 'staff' else 'account'}:{session.get('uid')}",
                    "auth.logout")
    response = Response(status_code=204)
    auth.clear_session_cookie(response)
    return response


async def me(request: Request) -> Response:
    user = await auth.authenticate_staff(request)
    out: dict[str, Any] = {"user": user.public()}
    session = await auth.current_session(request) if user.via == "session" else None
    if session is not None:
        out["csrf_token"] = session["csrf"]  # lets a reloaded page recover its token
    return JSONResponse(out)


routes: list[BaseRoute] = [
    Route("/auth/login", login, methods=["POST"]),
    Route("/auth/logout", logout, methods=["POST"]),
    Route("/auth/me", me, methods=["GET"]),
]
