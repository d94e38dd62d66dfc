"""Small helpers every endpoint module shares: the engine, the record, the audit trail."""

from __future__ import annotations

import logging

from redis.exceptions import RedisError
from starlette.requests import Request

from ..errors import QtraqError, Unavailable
from ..queue_engine import QueueEngine, Record
from ..record import audit as audit_log
from ..record.store import Store
from ..web.request import client_ip

log = logging.getLogger(__name__)


def engine_of(request: Request) -> QueueEngine:
    engine: QueueEngine = request.app.state.engine
    return engine


def record_of(request: Request) -> Store:
    """The SQLite record; 503 on a process that holds none (a ``--role hub``)."""
    store: Store | None = request.app.state.store
    if store is None:
        raise Unavailable("this process holds no record; ask the primary")
    return store


def audit_entry(request: Request, actor: str, action: str, target: str = "") -> Record | None:
    """The audit entry of an engine change, for the engine to append with the change itself
    (None on a hub process, which records nothing)."""
    if request.app.state.mode != "all":
        return None
    return audit_log.entry(actor, action, target, client_ip(request))


async def audit(request: Request, actor: str, action: str, target: str = "") -> None:
    """Record a staff action that is not an engine change (ids only). The action has happened
    by now, so a failing record is logged rather than turned into an error the caller would
    retry."""
    entry = audit_entry(request, actor, action, target)
    if entry is None:
        return
    try:
        await audit_log.append(request.app.state.redis, entry)
    except (QtraqError, RedisError):
        log.warning("audit record failed for %s %s", action, target, exc_info=True)
