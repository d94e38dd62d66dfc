"""The staff audit log for admins.

    GET /audit?from=&to=&actor=&action=&limit=&before=    entries, newest first

``from``/``to`` are UTC days (``YYYY-MM-DD``, both inclusive) or UTC times
(``YYYY-MM-DDTHH:MM:SSZ``, ``to`` exclusive); ``actor`` is exact (``user:3``); ``action`` is
exact (``queue.next``) or, ending in ``.``, a prefix (``ticket.``). A page holds ``limit``
entries (1–500, default 100); ``next_before`` (or null on the last page) is the ``before`` of the
next one. Entries are read from the SQLite record, which the primary's duties process fills
from the ``qt:audit`` stream within about a second of the action.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..errors import Invalid
from ..record import audit
from ..web.auth import require_staff
from ..web.request import known_params, query_int
from ..web.responses import JSONResponse
from .common import record_of

PARAMS = ("from", "to", "actor", "action", "limit", "before")
MAX_LIMIT = 500
DEFAULT_LIMIT = 100
ACTOR = re.compile(r"[a-z]+(:[A-Za-z0-9_-]{1,64})?")  # "user:3", "anonymous", "patient"
ACTION = re.compile(r"[a-z_]{1,40}(\.[a-z_]{1,40}){0,3}\.?")
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?Z")


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")  # the form audit.entry() writes


def _bound(name: str, raw: str, end: bool) -> str:
    """A day or a UTC time as the ``at`` text it compares with; a day ``to`` takes the whole day."""
    try:
        if DAY.fullmatch(raw):
            day = date.fromisoformat(raw)
            start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
            return _stamp(start + timedelta(days=1) if end else start)
        if TIME.fullmatch(raw):
            return _stamp(datetime.fromisoformat(raw.replace("Z", "+00:00")))
    except ValueError:
        pass
    raise Invalid(name, "must be a day YYYY-MM-DD or a UTC time YYYY-MM-DDTHH:MM:SSZ")


async def list_audit(request: Request) -> Response:
    await require_staff(request, "admin")
    q = request.query_params
    known_params(request, PARAMS)
    start = _bound("from", q["from"], end=False) if q.get("from") else None
    end = _bound("to", q["to"], end=True) if q.get("to") else None
    if start is not None and end is not None and start >= end:
        raise Invalid("to", "must be after from")
    actor = q.get("actor") or None
    if actor is not None and not ACTOR.fullmatch(actor):
        raise Invalid("actor", "must be an actor id such as user:3")
    action = q.get("action") or None
    if action is not None and not ACTION.fullmatch(action):
        raise Invalid("action", "must be an action such as queue.next, or a prefix such as ticket.")
    limit = query_int(request, "limit", 1, MAX_LIMIT, DEFAULT_LIMIT)
    before = query_int(request, "before", 1, 2**62, None)
    rows = await audit.entries(record_of(request), start=start, end=end, actor=actor, action=action,
                               before=before, limit=limit + 1)
    page = rows[:limit]
    return JSONResponse({"entries": page, "next_before": page[-1]["id"] if len(rows) > limit else None})


routes: list[BaseRoute] = [Route("/audit", list_audit, methods=["GET"])]
