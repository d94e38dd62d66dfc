"""Consent records for the DPDP Rules: each consent given or changed, with the version of the
privacy notice shown (``privacy.notice_version``), the purposes, the channel and the time.

Accounts: a record per change (registration, ``PUT /me/consent``), erased with the account (its
pseudonymous trace stays in the security log). Walk-ins: the notice consent given with a ticket
(self check-in or at reception), kept with the ticket's contact and purged with it.
"""

from __future__ import annotations

import json
from typing import Any

from ..queue_engine import iso
from ..record.store import Store

Json = dict[str, Any]
CHANNELS = ("web", "self_check_in", "reception", "api")


def purposes_of(choice: Json) -> list[str]:
    return sorted(k for k, v in choice.items() if v is True)


async def add(store: Store, *, notice_version: str, purposes: list[str], channel: str, at_ms: int,
              account_id: int | None = None, ticket_id: int | None = None) -> None:
    await store.execute("INSERT INTO consent_records (account_id, ticket_id, notice_version, purposes, channel, at)"
                        " VALUES (?,?,?,?,?,?)",
                        (account_id, ticket_id, notice_version, json.dumps(purposes), channel, at_ms))


async def of_account(store: Store, account_id: int) -> list[Json]:
    rows = await store.fetchall("SELECT notice_version, purposes, channel, at FROM consent_records"
                                " WHERE account_id = ? ORDER BY id", (account_id,))
    return [{"notice_version": r["notice_version"], "purposes": json.loads(r["purposes"]),
             "channel": r["channel"], "at": iso(r["at"])} for r in rows]


async def forget_tickets(store: Store, ticket_ids: list[int]) -> None:
    """With a walk-in's contact (erasure, withdrawal, retention)."""
    if ticket_ids:
        await store.execute(f"DELETE FROM consent_records WHERE ticket_id IN ({','.join('?' * len(ticket_ids))})",
                            ticket_ids)
