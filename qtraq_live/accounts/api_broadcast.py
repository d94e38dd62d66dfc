"""``POST /admin/notices``: an admin's notice to the accounts that consented to its purpose."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..api.common import audit
from ..web import auth
from ..web.request import read_json
from ..web.responses import JSONResponse
from . import broadcast
from .api import now_ms, store_of


async def send_notice(request: Request) -> Response:
    user = await auth.require_staff(request, "admin")
    body = await read_json(request, broadcast.BODY)
    out = await broadcast.send(store_of(request), request.app.state.redis, request.app.state.settings, body,
                               user.actor, now_ms())
    if not body["dry_run"]:
        await audit(request, user.actor, "notice.send", f"notice:{out['id']}")
    return JSONResponse(out, status_code=200 if body["dry_run"] else 201)


routes: list[BaseRoute] = [
    Route("/admin/notices", send_notice, methods=["POST"]),
]
