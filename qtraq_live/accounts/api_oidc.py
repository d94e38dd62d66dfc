"""``/auth/oidc/login`` and ``/auth/oidc/callback``: patient sign-in with an OpenID Connect
provider (``[accounts.oidc]``; the flow is in oidc.py).

Both are browser navigations, so they answer with redirects: to the provider, then back to
the portal (``/account``), with ``?oidc=<reason>`` when the sign-in did not complete. The
state also travels in a short-lived HttpOnly cookie, so a callback URL planted in someone
else's browser (login CSRF) finds no matching cookie and signs no one in.
"""

from __future__ import annotations

import hmac
import logging

import httpx
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..errors import NotFound
from ..web import auth
from . import oidc
from .api import now_ms, open_session, store_of

log = logging.getLogger(__name__)

STATE_COOKIE = "qtraq_oidc"
CALLBACK = "/api/v1/auth/oidc/callback"


def _settings_on(request: Request) -> None:
    if not oidc.enabled(request.app.state.settings):
        raise NotFound("sign-in with an OpenID Connect provider is not set up here", code="oidc_off")


def _redirect_uri(request: Request) -> str:
    base = request.app.state.settings["server.public_url"] or str(request.base_url)
    return base.rstrip("/") + CALLBACK


def _portal(reason: str | None = None) -> RedirectResponse:
    response = RedirectResponse("/account" + (f"?oidc={reason}" if reason else ""), status_code=303)
    response.delete_cookie(STATE_COOKIE, path=CALLBACK)
    return response


async def login(request: Request) -> Response:
    _settings_on(request)
    settings = request.app.state.settings
    async with httpx.AsyncClient(timeout=oidc.TIMEOUT_S) as client:
        try:
            state, url = await oidc.begin(client, request.app.state.redis, settings, _redirect_uri(request))
        except oidc.OidcFailed as exc:
            return _portal(exc.reason)
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(STATE_COOKIE, state, max_age=oidc.PENDING_S, path=CALLBACK, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https" or settings.production)
    return response


async def callback(request: Request) -> Response:
    _settings_on(request)
    q = request.query_params
    state, code = q.get("state", ""), q.get("code", "")
    if q.get("error"):
        return _portal("cancelled")
    cookie = request.cookies.get(STATE_COOKIE, "")
    if not state or not code or not cookie or not hmac.compare_digest(cookie.encode(), state.encode()):
        log.warning("oidc: callback without its state cookie")
        return _portal("bad_state")
    store = store_of(request)
    try:
        async with httpx.AsyncClient(timeout=oidc.TIMEOUT_S) as client:
            who = await oidc.finish(client, request.app.state.redis, request.app.state.settings, state, code,
                                    _redirect_uri(request))
        account_id = await oidc.account_for(store, who, now_ms())
    except oidc.OidcFailed as exc:
        log.info("oidc: sign-in not completed: %s", exc.reason)
        return _portal(exc.reason)
    sid, _ = await open_session(request, account_id, new_device_notice=True)
    log.info("account %d signed in with OpenID Connect", account_id)
    response = _portal()
    auth.set_session_cookie(response, request, sid)
    return response


routes: list[BaseRoute] = [
    Route("/auth/oidc/login", login, methods=["GET"]),
    Route("/auth/oidc/callback", callback, methods=["GET"]),
]
