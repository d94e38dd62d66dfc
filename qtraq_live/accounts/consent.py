"""Consent: three separate, explicit, default-off choices with a timestamped history.

The current choice is the newest history row (none yet: everything off). A change is one new
row; withdrawing notifications also drops the account's pending notices at once, so nothing
already queued goes out after the patient said no.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from ..queue_engine import iso
from ..record.store import Store
from . import records

log = logging.getLogger(__name__)

Json = dict[str, Any]
KINDS = ("notifications", "analytics", "marketing")
OFF: Json = {k: False for k in KINDS}


async def current(store: Store, account_id: int) -> Json:
    row = await store.fetchone(
        "SELECT notifications, analytics, marketing FROM account_consent_history WHERE account_id = ?"
        " ORDER BY id DESC LIMIT 1", (account_id,))
    return {k: bool(row[k]) for k in KINDS} if row else dict(OFF)


async def history(store: Store, account_id: int) -> list[Json]:
    rows = await store.fetchall(
        "SELECT changed_at, notifications, analytics, marketing FROM account_consent_history"
        " WHERE account_id = ? ORDER BY id", (account_id,))
    return [{"changed_at": iso(r["changed_at"]), **{k: bool(r[k]) for k in KINDS}} for r in rows]


async def record(store: Store, account_id: int, choice: Json, now_ms: int, today: date) -> tuple[Json, Json]:
    """Store a new choice; returns ``(before, after)``. Unchanged choices add no row."""
    before = await current(store, account_id)
    account = await records.get_account_row(store, account_id)
    records.check_marketing(account["date_of_birth"], choice["marketing"], today)
    after = {k: bool(choice[k]) for k in KINDS}
    if after != before:
        async with store.transaction() as db:
            await db.execute(
                "INSERT INTO account_consent_history (account_id, changed_at, notifications, analytics, marketing)"
                " VALUES (?,?,?,?,?)", (account_id, now_ms, *(after[k] for k in KINDS)))
        log.info("account %d consent changed", account_id)
    return before, after
