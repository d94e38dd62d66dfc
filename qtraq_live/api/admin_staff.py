"""Admin endpoints that withdraw or change staff access (through ``staff_access``): disable or
enable a user, reset a password, change a role, end a user's sessions, create scoped and
expiring API tokens, list and revoke them. Every change is audited (ids only) and holds in every
process at once.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..errors import Conflict, Invalid
from ..record import access, security_log
from ..validation import SLUG, Field, Schema
from ..web import staff_access
from ..web.auth import Staff, require_staff
from ..web.request import client_ip, read_json
from ..web.responses import JSONResponse
from .common import audit, engine_of, record_of

DAY_S = 86_400
PATCH_USER = Schema({
    "disabled": Field("boolean"),
    "password": Field("string", min_length=access.PASSWORD_MIN, max_length=access.PASSWORD_MAX),
    "role": Field("string", enum=access.ROLES),
    "queues": Field("array", items=Field("string", pattern=SLUG), description="doctor: queues they act on"),
})
NEW_TOKEN = Schema({
    "scope": Field("string", default="", enum=access.TOKEN_SCOPES, description="'press': next only (a desk button)"),
    "expires_days": Field("integer", nullable=True, minimum=1, maximum=3650, description="days until it expires"),
})


def _changed(request: Request) -> None:
    """This process drops its cached credentials now; the others when the announcement reaches them."""
    request.app.state.credentials.forget()


async def _admin(request: Request) -> Staff:
    return await require_staff(request, "admin")


async def _logged(request: Request, admin: Staff, action: str, target: str) -> None:
    """A staff access change: in the staff audit log and in the year-long security log."""
    await audit(request, admin.actor, action, target)
    await security_log.record(request.app.state.store, f"staff.{action}", target, admin.actor, client_ip(request))


async def patch_user(request: Request) -> Response:
    admin = await _admin(request)
    body = await read_json(request, PATCH_USER)
    sent = {k: body[k] for k in body if body[k] is not None}
    store, redis, uid = record_of(request), request.app.state.redis, request.path_params["user"]
    user = await staff_access.find_user(store, uid)
    if user["id"] == admin.id and (sent.get("disabled") or ("role" in sent and sent["role"] != "admin")):
        raise Conflict("you cannot disable yourself or drop your own admin role", code="own_account")
    if "password" in sent:
        access.check_password(sent["password"], user["username"])  # before any change is made
    for q in sent.get("queues", []):
        if await engine_of(request).get_queue(q) is None:
            raise Invalid("queues", f"unknown queue {q}")
    if "role" in sent or "queues" in sent:
        await staff_access.set_role(store, redis, uid, sent.get("role", user["role"]), sent.get("queues", []))
        await _logged(request, admin, "user.role", f"user:{uid}")
    if "password" in sent:
        await staff_access.set_password(store, redis, uid, sent["password"])
        await _logged(request, admin, "user.password", f"user:{uid}")
    if "disabled" in sent:
        await staff_access.set_disabled(store, redis, uid, sent["disabled"])
        await _logged(request, admin, "user.disable" if sent["disabled"] else "user.enable", f"user:{uid}")
    _changed(request)
    return JSONResponse({"user": staff_access.user_view(await staff_access.find_user(store, uid))})


async def end_user_sessions(request: Request) -> Response:
    admin = await _admin(request)
    uid = request.path_params["user"]
    ended = await staff_access.end_sessions(record_of(request), request.app.state.redis, uid)
    _changed(request)
    await _logged(request, admin, "user.sessions_end", f"user:{uid}")
    return JSONResponse({"ended": ended})


async def list_tokens(request: Request) -> Response:
    await _admin(request)
    who = request.query_params.get("user") or None
    return JSONResponse({"tokens": await staff_access.list_tokens(record_of(request), who)})


async def create_token(request: Request) -> Response:
    admin = await _admin(request)
    body = await read_json(request, NEW_TOKEN)
    store = record_of(request)
    user = await staff_access.find_user(store, request.path_params["user"])
    expires_at = int(time.time()) + body["expires_days"] * DAY_S if body["expires_days"] else None
    token = await access.create_api_token(store, request.app.state.redis, user["username"], body["scope"], expires_at)
    listed: dict[str, Any] = (await staff_access.list_tokens(store, user["id"]))[-1]
    await _logged(request, admin, "token.create", f"user:{user['id']}")
    return JSONResponse({**listed, "token": token}, status_code=201)


async def revoke_token(request: Request) -> Response:
    admin = await _admin(request)
    token_id = request.path_params["token_id"]
    result = await staff_access.revoke_token(record_of(request), request.app.state.redis, token_id)
    _changed(request)
    await _logged(request, admin, "token.revoke", f"token:{token_id}")
    return JSONResponse(result)


routes: list[BaseRoute] = [
    Route("/admin/users/{user:int}", patch_user, methods=["PATCH"]),
    Route("/admin/users/{user:int}/sessions", end_user_sessions, methods=["DELETE"]),
    Route("/admin/users/{user:int}/tokens", create_token, methods=["POST"]),
    Route("/admin/tokens", list_tokens, methods=["GET"]),
    Route("/admin/tokens/{token_id:int}", revoke_token, methods=["DELETE"]),
]
