"""The nominee an account holder names to exercise their rights after death or incapacity
(DPDP Act s.14, DPDP Rules). ``GET``/``PUT``/``DELETE /me/nominee``; in the export; erased with
the account."""

from __future__ import annotations

from typing import Any

from ..errors import NotFound
from ..queue_engine import iso
from ..record.store import Store
from ..validation import E164, EMAIL, EMAIL_MAX, NAME_MAX, Field, Schema

Json = dict[str, Any]
TEXT = r".*\S.*"
NOMINEE = Schema({
    "name": Field("string", required=True, min_length=1, max_length=NAME_MAX, pattern=TEXT),
    "relation": Field("string", required=True, min_length=1, max_length=40, pattern=TEXT),
    "contact": Field("string", required=True, max_length=EMAIL_MAX, pattern=f"(?:{EMAIL.strip('^$')})|(?:{E164.strip('^$')})",
                     description="an email address or an E.164 mobile number"),
})


async def get(store: Store, account_id: int) -> Json | None:
    row = await store.fetchone("SELECT name, relation, contact, at FROM nominees WHERE account_id = ?", (account_id,))
    return None if row is None else {"name": row["name"], "relation": row["relation"], "contact": row["contact"],
                                     "recorded_at": iso(row["at"])}


async def put(store: Store, account_id: int, body: Json, now_ms: int) -> Json:
    await store.execute("INSERT INTO nominees (account_id, name, relation, contact, at) VALUES (?,?,?,?,?)"
                        " ON CONFLICT (account_id) DO UPDATE SET name = excluded.name, relation = excluded.relation,"
                        " contact = excluded.contact, at = excluded.at",
                        (account_id, body["name"], body["relation"], body["contact"].lower() if "@" in body["contact"]
                         else body["contact"], now_ms))
    found = await get(store, account_id)
    assert found is not None
    return found


async def delete(store: Store, account_id: int) -> None:
    if not (await store.execute("DELETE FROM nominees WHERE account_id = ?", (account_id,))).rowcount:
        raise NotFound("no nominee recorded")
