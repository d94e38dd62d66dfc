"""access.py: the SQLite record of staff access and its Redis mirror (used by the CLI and
rebuild). Real SQLite file, real Redis."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from argon2 import PasswordHasher

from qtraq_live.config import Settings
from qtraq_live.engine import redis_keys as keys
from qtraq_live.errors import Conflict, Invalid, NotFound
from qtraq_live.queue_engine import QueueEngine
from qtraq_live.record import access, audit
from qtraq_live.record.store import Store

TOKEN = re.compile(r"^[A-Za-z0-9_-]{22,}$")


@pytest.fixture
async def store(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Store]:
    monkeypatch.setattr(access, "hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    s = Store(settings.data_dir / "qtraq.db")
    await s.open()
    yield s
    await s.close()


async def test_users_are_stored_hashed_and_mirrored(store: Store, aredis: aioredis.Redis) -> None:
    uid = await access.create_user(store, aredis, "Dr.Rao", "long-enough-pw", "doctor", ["gp", "eye"])
    row = await store.fetchone("SELECT * FROM users WHERE id = ?", (uid,))
    assert row is not None and row["username"] == "dr.rao"
    assert row["password_hash"].startswith("$argon2") and "long-enough-pw" not in row["password_hash"]
    assert await aredis.hgetall(keys.user(uid)) == {
        "id": str(uid), "username": "dr.rao", "role": "doctor", "queues": '["eye", "gp"]', "disabled": "0"}
    record = await access.login_record(store, "DR.RAO")  # usernames ignore case
    assert record is not None and record["id"] == uid


@pytest.mark.parametrize(("args", "error", "field"), [
    (("x", "long-enough-pw", "admin"), Invalid, "username"),
    (("has space", "long-enough-pw", "admin"), Invalid, "username"),
    (("asha", "short", "admin"), Invalid, "password"),
    (("asha", "long-enough-pw", "superuser"), Invalid, "role"),
])
async def test_bad_users_are_refused(store: Store, aredis: aioredis.Redis, args: tuple[str, str, str],
                                     error: type[Exception], field: str) -> None:
    with pytest.raises(error) as caught:
        await access.create_user(store, aredis, *args)
    assert getattr(caught.value, "field") == field
    assert await store.fetchall("SELECT id FROM users") == []


async def test_duplicate_username_is_a_conflict_and_keeps_the_first(store: Store, aredis: aioredis.Redis) -> None:
    uid = await access.create_user(store, aredis, "asha", "long-enough-pw", "admin")
    with pytest.raises(Conflict):
        await access.create_user(store, aredis, "ASHA", "other-password", "doctor")
    assert [r["id"] for r in await store.fetchall("SELECT id FROM users")] == [uid]
    assert await aredis.hget(keys.user(uid), "role") == "admin"


async def test_api_tokens_are_kept_as_hashes(store: Store, aredis: aioredis.Redis) -> None:
    uid = await access.create_user(store, aredis, "kiosk", "long-enough-pw", "reception")
    token = await access.create_api_token(store, aredis, "kiosk")
    assert TOKEN.match(token)
    assert await aredis.get(keys.api_token(token)) == str(uid)
    row = await store.fetchone("SELECT token_hash FROM api_tokens")
    assert row == {"token_hash": keys.secret_hash(token)}
    with pytest.raises(NotFound):
        await access.create_api_token(store, aredis, "nobody")


async def test_display_keys_are_created_and_revoked(store: Store, aredis: aioredis.Redis,
                                                    engine: QueueEngine) -> None:
    with pytest.raises(NotFound):
        await access.create_display_key(store, aredis, "c1")
    await engine.create_clinic("c1", "Clinic One")
    key = await access.create_display_key(store, aredis, "c1", "waiting room TV")
    assert TOKEN.match(key)
    assert await aredis.get(keys.display_key(key)) == "c1"
    assert await aredis.smembers(keys.display_keys_of("c1")) == {keys.secret_hash(key)}
    row = await store.fetchone("SELECT id, key_hash, label FROM display_keys")
    assert row is not None and row["key_hash"] == keys.secret_hash(key) and row["label"] == "waiting room TV"
    await access.revoke_display_key(store, aredis, "c1", row["id"])
    assert await aredis.get(keys.display_key(key)) is None
    assert await aredis.smembers(keys.display_keys_of("c1")) == set()
    with pytest.raises(NotFound):
        await access.revoke_display_key(store, aredis, "c1", row["id"])


async def test_mirror_access_rewrites_redis_from_sqlite(store: Store, aredis: aioredis.Redis,
                                                        engine: QueueEngine) -> None:
    await engine.create_clinic("c1", "Clinic One")
    uid = await access.create_user(store, aredis, "asha", "long-enough-pw", "admin")
    token = await access.create_api_token(store, aredis, "asha")
    kept = await access.create_display_key(store, aredis, "c1")
    gone = await access.create_display_key(store, aredis, "c1")
    gone_row = await store.fetchone("SELECT id FROM display_keys WHERE key_hash = ?", (keys.secret_hash(gone),))
    assert gone_row is not None
    await access.revoke_display_key(store, aredis, "c1", gone_row["id"])
    before = set(await aredis.keys("qt:*"))
    # Redis loses the access keys and gains a stale one; the live queue keys stay.
    for k in await aredis.keys("qt:user:*") + await aredis.keys("qt:dk*") + await aredis.keys("qt:apitok:*"):
        await aredis.delete(k)
    await aredis.set(keys.api_token("stale-token-that-was-revoked"), "99")
    await access.mirror_access(store, aredis)
    assert await aredis.get(keys.api_token(token)) == str(uid)
    assert await aredis.get(keys.display_key(kept)) == "c1"
    assert await aredis.get(keys.display_key(gone)) is None
    assert await aredis.get(keys.api_token("stale-token-that-was-revoked")) is None
    assert set(await aredis.keys("qt:*")) == before
    assert await aredis.hget(keys.user(uid), "username") == "asha"


async def test_audit_entries_reach_sqlite_once_and_leave_redis(store: Store, aredis: aioredis.Redis) -> None:
    await audit.append(aredis, audit.entry("user:3", "queue.next", "queue:gp", "10.0.0.7"))
    await audit.append(aredis, audit.entry("user:3", "queue.pause", "queue:gp", "10.0.0.7"))
    assert await audit.copy(aredis, store) == 2
    assert await audit.copy(aredis, store) == 0
    rows = await store.fetchall("SELECT actor, action, target, ip FROM audit_log ORDER BY id")
    assert rows == [{"actor": "user:3", "action": "queue.next", "target": "queue:gp", "ip": "10.0.0.7"},
                    {"actor": "user:3", "action": "queue.pause", "target": "queue:gp", "ip": "10.0.0.7"}]
    assert await aredis.xlen(keys.AUDIT) == 0  # IPs are not kept in Redis once recorded
