"""The append-only security log (DPDP Rules: kept at least a year, not removed by erasure).

Account logins and failures, registrations, exports, erasures, consent changes, staff logins and
staff access changes. Subjects are pseudonymous: ``account:<hmac>``, ``login:<hmac>`` (a login
name that failed), ``user:<id>`` (staff): the HMAC is keyed with the server secret, so the log
names nobody, yet the breach report (``record/breach_report.py``) can tell which live account an entry
concerns. The table refuses updates, and deletes of entries younger than a year
(schema/security.sql); ``privacy.purge`` removes older ones after ``privacy.security_log_days``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any

from .store import Store

log = logging.getLogger(__name__)

Json = dict[str, Any]


def pseudonym(secret: str, kind: str, ident: int | str) -> str:
    """``kind:<20 hex>``: the same person maps to the same id, and the id to nobody without the secret."""
    digest = hmac.new(secret.encode(), f"{kind}:{str(ident).lower()}".encode(), hashlib.sha256).hexdigest()[:20]
    return f"{kind}:{digest}"


async def record(store: Store | None, event: str, subject: str = "", actor: str = "", ip: str = "",
                 detail: Json | None = None) -> None:
    """Append one entry (a hub process holds no record: it writes none; its writes go to the primary)."""
    if store is None:
        return
    await store.execute("INSERT INTO security_log (at, event, subject, actor, ip, detail) VALUES (?,?,?,?,?,?)",
                        (int(time.time() * 1000), event, subject, actor, ip, json.dumps(detail or {})))


async def entries(store: Store, from_ms: int, to_ms: int) -> list[Json]:
    rows = await store.fetchall("SELECT at, event, subject, actor, ip, detail FROM security_log"
                                " WHERE at BETWEEN ? AND ? ORDER BY id", (from_ms, to_ms))
    return [{**r, "detail": json.loads(r["detail"] or "{}")} for r in rows]
