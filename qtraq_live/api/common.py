"""Small helpers every endpoint module shares: the engine, the audit trail."""

from __future__ import annotations

import logging
import sqlite3

from starlette.requests import Request

from .. import access
from ..errors import QtraqError
from ..queue_engine import QueueEngine
from ..web.request import client_ip

log = logging.getLogger(__name__)


def engine_of(request: Request) -> QueueEngine:
    engine: QueueEngine = request.app.state.engine
    return engine


async def audit(request: Request, actor: str, action: str, target: str = "") -> None:
    """Record a staff write (ids only). The change itself has happened by now, so a failing
    audit write is logged rather than turned into an error the caller would retry."""
    store = request.app.state.store
    if store is None:
        return
    try:
        await access.write_audit(store, actor, action, target, client_ip(request))
    except (QtraqError, sqlite3.Error):
        log.warning("audit write failed for %s %s", action, target, exc_info=True)
