"""live_schema is the one description of the live state: the Lua, the SQL and the Python views
follow it, a disagreement fails here, and a field added to it goes all the way round."""

from __future__ import annotations

import dataclasses
import random
import re
from importlib import resources
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from support_durability import CLINICS, make_clinics, random_operations, store  # noqa: F401

from qtraq_live import queue_engine, webhooks
from qtraq_live.engine import live_schema
from qtraq_live.engine import redis_keys as keys
from qtraq_live.engine.live_schema import Enc, Field, Start
from qtraq_live.errors import Invalid
from qtraq_live.queue_engine import QueueEngine, _load_scripts
from qtraq_live.record.persister import Persister
from qtraq_live.record.rebuild import rebuild
from qtraq_live.record.store import Store, schema_files

ENGINE = resources.files("qtraq_live").joinpath("lua/engine")
LUA = {f.name: f.read_text() for f in ENGINE.iterdir() if f.name.endswith(".lua")}


def sql_columns() -> dict[str, dict[str, str]]:
    """table -> column -> declared type, from every ``CREATE TABLE`` of schema/*.sql."""
    out: dict[str, dict[str, str]] = {}
    for _, text in schema_files():
        text = re.sub(r"--[^\n]*", "", text)
        for table, body in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\n\);", text, re.S):
            cols = {}
            for line in body.splitlines():
                words = line.strip().rstrip(",").split()
                if words and words[0].upper() not in ("PRIMARY", "UNIQUE", "FOREIGN", "CHECK"):
                    cols[words[0]] = words[1].upper()
            out[table] = cols
    return out


# -- the description against the SQL --------------------------------------------------------------

def sql_disagreements(entity: live_schema.Entity) -> list[str]:
    """Where the entity's table in schema/*.sql and its description differ."""
    table = sql_columns()[entity.table]
    out = [f"{entity.table}.{f.name}: described {f.sql_type}, declared {table.get(f.name)}"
           for f in entity.columns if table.get(f.name) != f.sql_type]
    out += [f"{entity.table}.{name}: declared, not described"
            for name in sorted(set(table) - {f.name for f in entity.columns} - set(entity.record_only))]
    return out


@pytest.mark.parametrize("entity", live_schema.entities(), ids=lambda e: e.name)
def test_every_described_column_is_in_the_schema_files_with_its_type(entity: live_schema.Entity) -> None:
    assert sql_disagreements(entity) == []


def test_the_sql_check_names_a_missing_column_a_wrong_type_and_an_undescribed_column() -> None:
    ticket = live_schema.TICKET
    fields = [f for f in ticket.fields if f.name != "issue_ahead"]  # the table keeps it: undescribed now
    fields = [dataclasses.replace(f, sql="TEXT") if f.name == "recalls" else f for f in fields]
    changed = dataclasses.replace(ticket, fields=(*fields, Field("kiosk", Enc.OPT, "TEXT")))
    assert sql_disagreements(changed) == [
        "tickets.recalls: described TEXT, declared INTEGER",
        "tickets.kiosk: described TEXT, declared None",
        "tickets.issue_ahead: declared, not described",
    ]


def test_added_columns_are_what_an_older_database_lacks() -> None:
    assert ("tickets", "source", "TEXT NOT NULL DEFAULT 'reception'") in live_schema.added_columns()
    assert ("clinics", "region", "TEXT NOT NULL DEFAULT 'IN'") in live_schema.added_columns()


# -- the description against the Lua --------------------------------------------------------------

def lua_hash_fields() -> dict[str, set[str]]:
    """Field names the hand-written Lua reads or writes in a ticket's, queue's or clinic's hash."""
    found: dict[str, set[str]] = {"ticket": set(), "queue": set(), "clinic": set()}
    code = "\n".join(LUA.values())
    for command, kind, args in re.findall(r"'(HSET|HGET|HMGET|HDEL)', K\.(ticket|queue|clinic)\([^)]*\), (.*?)\)\n",
                                          code, re.S):
        items = [item.strip() for item in args.split(",")]
        names = items[::2] if command == "HSET" else items
        found[kind] |= {m.group(1) for item in names if (m := re.fullmatch(r"'(\w+)'", item))}
    for args in re.findall(r"set_ticket\([^,]+, \{([^}]*)\}", code):
        found["ticket"] |= set(re.findall(r"(\w+) =", args))
    issue_table = re.search(r"local t = \{(.*?)\n  \}", LUA["issue.lua"], re.S)
    assert issue_table
    found["ticket"] |= set(re.findall(r"(\w+) = ", issue_table.group(1)))
    return found


def lua_disagreements(entities: tuple[live_schema.Entity, ...]) -> list[str]:
    found = lua_hash_fields()
    return [f"{e.name}.{name}: in the Lua, not described" for e in entities
            for name in sorted(found[e.name] - set(e.hashed))]


def test_every_hash_field_the_lua_names_is_described() -> None:
    found = lua_hash_fields()
    assert {"moved_back", "prev_status", "status", "token", "day"} <= found["ticket"]  # the scan does find them
    assert {"paused", "paused_at", "pause_ema_s", "ema_s", "eta", "clinic", "notify_ahead"} <= found["queue"]
    assert {"mask_names", "region", "name", "timezone"} <= found["clinic"]
    assert lua_disagreements(live_schema.entities()) == []
    ticket = live_schema.TICKET
    less = dataclasses.replace(ticket, fields=tuple(f for f in ticket.fields if f.name != "moved_back"))
    assert lua_disagreements((less,)) == ["ticket.moved_back: in the Lua, not described"]


def test_the_generated_lua_holds_every_described_field_and_no_placeholder() -> None:
    scripts = _load_scripts()
    for source in scripts.values():
        assert "__" not in re.sub(r"--[^\n]*", "", source)
    lib = scripts["issue"]
    for entity in live_schema.entities():
        reader = re.search(rf"local function {entity.name}_hash\(id\)(.*?)\nend", lib, re.S)
        encoder = re.search(rf"local function {entity.name}_json\(.*?\)(.*?)\nend", lib, re.S)
        assert encoder
        if entity.name != "clinic":
            assert reader and set(re.findall(r"(\w+) = false", reader.group(1))) == set(entity.hashed)
        assert re.findall(r'"(\w+)":', encoder.group(1)) == [f.name for f in entity.in_json]
    for name, value in live_schema.LUA_CONSTANTS.items():
        assert f"local {name} = {value}\n" in lib
    assert "'qt:clinics'" not in "".join(LUA.values()) and "'qt:seq:ticket'" not in "".join(LUA.values())


def test_the_key_table_is_made_from_redis_keys() -> None:
    assert live_schema.lua_key_function(keys.labels) == "function(q, day) return 'qt:q:' .. q .. ':labels:' .. day end"
    assert live_schema.lua_key_function(keys.ticket) == "function(ticket_id) return 'qt:t:' .. ticket_id end"


async def test_the_state_json_and_the_hashes_hold_the_described_fields(
        engine: QueueEngine, aredis: aioredis.Redis, store: Store) -> None:  # noqa: F811
    await make_clinics(engine)
    rng = random.Random(18)
    tokens: dict[int, str] = {}
    await random_operations(engine, rng, 150, tokens)
    first = await engine.issue("gp")
    await engine.issue("gp")
    await engine.move_back(first["id"], 1)
    state = await engine.clinic_state("c1")
    tickets = [t for q in state["queues"] for t in q["waiting"] + q["now_serving"]]
    assert tickets
    json_fields = {e.name: [f.name for f in e.in_json] for e in live_schema.entities()}
    assert all(list(t) == json_fields["ticket"] for t in tickets)
    assert all(list(q)[:len(json_fields["queue"])] == json_fields["queue"] for q in state["queues"])
    assert list(state["clinic"]) == json_fields["clinic"]
    # every field any operation left in a hash is described
    described = {e.name: set(e.hashed) for e in live_schema.entities()}
    for pattern, kind in (("qt:t:*", "ticket"), ("qt:q:*", "queue"), ("qt:c:*", "clinic")):
        async for key in aredis.scan_iter(match=pattern):
            if key.count(":") == 2 and await aredis.type(key) == "hash":
                assert set(await aredis.hkeys(key)) <= described[kind], key


def test_views_follow_the_description() -> None:
    assert queue_engine.PUBLIC_FIELDS == live_schema.TICKET.seen(live_schema.PATIENT)
    assert webhooks.TICKET_FIELDS == live_schema.TICKET.seen(live_schema.HOOK)
    assert not {"name", "token", "lang", "notify"} & set(webhooks.TICKET_FIELDS)  # nothing personal
    assert not {"name", "token", "id"} & set(queue_engine.PUBLIC_FIELDS)
    from qtraq_live.realtime import mirror
    assert set(mirror.DISPLAY_FIELDS) == set(live_schema.TICKET.seen(live_schema.DISPLAY))
    assert set(mirror.HIDDEN_FROM_RECEPTION) == {f.name for f in live_schema.TICKET.fields if f.enc is Enc.API}


# -- adding a field is one entry ----------------------------------------------------------------

KIOSK = Field("kiosk", Enc.OPT, "TEXT", frozenset({live_schema.STAFF, live_schema.HOOK}), added=True, start=Start.ARG)


@pytest.fixture
def with_kiosk(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test-only ticket field (how the kiosk that printed it), added to the description alone."""
    fields = list(live_schema.TICKET.fields)
    fields.insert([f.name for f in fields].index("source") + 1, KIOSK)
    monkeypatch.setattr(live_schema, "TICKET", dataclasses.replace(live_schema.TICKET, fields=tuple(fields)))


async def test_a_field_added_to_the_description_goes_round(
        with_kiosk: None, aredis: aioredis.Redis, store: Store) -> None:  # noqa: F811
    assert ("tickets", "kiosk", "TEXT") in live_schema.added_columns()
    await store.close()
    await store.open()  # an existing database gains the column
    engine = QueueEngine(aredis)
    await make_clinics(engine)
    issued = await engine.issue("gp", name="Asha Rao", fields={"kiosk": "lobby-2"})
    plain = await engine.issue("gp")
    assert issued["kiosk"] == "lobby-2" and plain["kiosk"] is None  # the API's ticket
    with pytest.raises(Invalid, match="cannot be set"):
        await engine.issue("gp", fields={"token": "x" * 30})
    events = await engine.events_since("c1", 0)
    assert events is not None
    sent = webhooks.payload(events[-2])
    assert sent["tickets"][0]["kiosk"] == "lobby-2" and "name" not in sent["tickets"][0]

    assert await Persister(aredis, store).drain() > 0  # the record
    row = await store.fetchone("SELECT kiosk, name FROM tickets WHERE id = ?", (issued["id"],))
    assert row is not None and (row["kiosk"], row["name"]) == ("lobby-2", "Asha Rao")
    await engine.next("gp", "1")  # a change keeps it
    await Persister(aredis, store).drain()

    await aredis.flushall()
    await rebuild(store, aredis)  # and back to the live state
    assert await aredis.hget(keys.ticket(issued["id"]), "kiosk") == "lobby-2"
    assert await aredis.hget(keys.ticket(plain["id"]), "kiosk") == ""
    back = await engine.ticket(issued["id"])
    assert back is not None and back["kiosk"] == "lobby-2" and back["status"] == "called"


def test_without_the_entry_the_field_is_nowhere() -> None:
    assert "kiosk" not in {f.name for f in live_schema.TICKET.fields}
    assert "kiosk" not in _load_scripts()["issue"]
    with pytest.raises(Invalid, match="cannot be set"):
        queue_engine._issue_fields({"kiosk": "lobby-2"})


# The live hashes and sets (qt:c/q/t…); the event streams are the engine's published feed.
LIVE_KEY_FUNCTIONS = ("ticket", "clinic", "queue", "waiting", "counters", "seen", "idle", "token", "labels",
                      "recent", "arrival", "clinic_queues", "version", "eta_profile", "idem")
LIVE_KEY_OWNERS = {"queue_engine.py", "engine/live_reads.py", "engine/live_erasure.py", "engine/queue_figures.py",
                   "engine/redis_keys.py", "engine/live_schema.py", "record/rebuild.py"}


def _live_key_users() -> dict[str, list[str]]:
    pattern = re.compile(r"\bkeys\.(%s)\(|[\"']qt:[cqt]:" % "|".join(LIVE_KEY_FUNCTIONS))
    root = resources.files("qtraq_live")
    found: dict[str, list[str]] = {}
    for path in sorted(Path(str(root)).rglob("*.py")):
        name = path.relative_to(Path(str(root))).as_posix()
        hits = [line.strip() for line in path.read_text().splitlines() if pattern.search(line)]
        if hits and name not in LIVE_KEY_OWNERS:
            found[name] = hits
    return found


def test_only_the_engine_names_the_live_keys() -> None:
    assert _live_key_users() == {}


def test_the_live_key_check_sees_a_module_that_names_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "qtraq_live"
    (fake / "api").mkdir(parents=True)
    (fake / "api" / "sneaky.py").write_text("await redis.hset(keys.ticket(tid), 'name', '')\n")
    monkeypatch.setattr(resources, "files", lambda package: fake)
    assert list(_live_key_users()) == ["api/sneaky.py"]
