"""The live state described once: clinic, queue and ticket fields, the constants the engine's
Lua and the Python share, and the key table the Lua uses (named by ``redis_keys``).

Each :class:`Field` says how the field is held in its Redis hash, how it is written in the
state JSON (events, snapshots), which SQLite column keeps it and who may see it. From this:

- the Lua engine gets a generated prelude (constants, key table ``K``) and generated hash
  readers and JSON encoders (``ticket_hash``, ``queue_hash``, ``ticket_json``, ``queue_json``,
  ``clinic_json``) and the issue's starting fields (:func:`lua_sources`, used by
  ``queue_engine._load_scripts``);
- the persister its rows and upserts, rebuild the hashes it writes, the store the columns an
  older database gains, the views (``ticket_view``, ``PUBLIC_FIELDS``, what a display sees)
  and the webhooks' payload their field lists.

Adding a ticket field is one :class:`Field` entry here (and its column in ``schema/core.sql``,
which ``tests/test_live_schema.py`` ties to this description); docs/internals.md shows it.
Consumers read ``TICKET``, ``QUEUE`` and ``CLINIC`` from this module when they need them, so a
test may replace one (a test-only field) and everything follows.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import TypeVar

from ..phones import DEFAULT_REGION
from . import redis_keys as keys

T = TypeVar("T")

# -- constants the Lua and the Python share ---------------------------------------------------

NORMAL_OFFSET = 4_000_000_000_000_000  # urgent (priority 1) tickets sort before all normal ones
COUNTER_OPEN_MS = 5 * 60 * 1000        # a counter that pressed "next" this recently counts as open
LABEL_TTL_S = 3 * 86_400               # a day's label sequence outlives its day by this much
RECENT_CALLS = 20                      # the last calls a clinic keeps (qt:c:{c}:recent)

ETA_DEV_PRIOR = 0.45  # the wait estimator's mean absolute deviation of log cycles before any is seen (docs/eta.md)
LUA_CONSTANTS: dict[str, float] = {
    "NORMAL_OFFSET": NORMAL_OFFSET, "COUNTER_OPEN_MS": COUNTER_OPEN_MS,
    "LABEL_TTL_S": LABEL_TTL_S, "RECENT_CALLS": RECENT_CALLS, "ETA_DEV_PRIOR": ETA_DEV_PRIOR,
}


class TicketSource(StrEnum):
    """How a ticket came to be: the desk, the patient's own phone (self check-in), an
    appointment checked in (booked in an account, or imported from a file), or an ABHA app's
    Scan & Share. Kept for the record and the statistics; it changes nothing in the queue."""

    RECEPTION = "reception"
    SELF = "self"
    APPOINTMENT = "appointment"
    IMPORT = "import"
    ABDM = "abdm"


# -- the fields -------------------------------------------------------------------------------

class Enc(StrEnum):
    """How a field is held in its hash and written in the state JSON."""

    ID = "id"              # decimal text; JSON: the number as it is
    PLAIN = "plain"        # text the engine wrote (ids, states, days, scores): JSON string, never escaped
    TEXT = "text"          # text someone typed: JSON string, escaped when it must be
    OPT = "opt"            # text, '' for none: JSON null when empty
    FLAG = "flag"          # '1' / '0': JSON true / false
    NUM = "num"            # a number's text ('' or absent: 0): JSON number
    TIME = "time"          # epoch ms, '0' when unset: JSON number; NULL in SQLite and the API when unset
    COMPUTED = "computed"  # not kept: the Lua expression ``lua`` gives it in the JSON
    API = "api"            # neither kept nor in events: the API's ticket computes it (ticket_view)


STAFF = "staff"      # the staff API's ticket (TicketDict), queue and clinic
PATIENT = "patient"  # a token holder (GET /t/{token}, the ticket page)
DISPLAY = "display"  # a waiting-room screen (names only masked, by the display's own rule)
HOOK = "hook"        # a hospital system (webhooks): never names, contacts or tokens
Seen = frozenset[str]


class Start(StrEnum):
    """How ``issue`` sets a ticket field (only tickets are issued)."""

    ENGINE = "engine"  # issue.lua sets it itself (id, label, score...)
    ARG = "arg"        # from the issue's argument of the same name (QueueEngine.issue)
    EMPTY = "empty"    # starts empty ('' or '0')
    NEVER = "never"    # absent until an operation writes it


@dataclass(frozen=True)
class Field:
    name: str
    enc: Enc
    sql: str | None = None  # the SQLite column's declaration in the entity's table (named as the field)
    seen_by: Seen = frozenset()
    hashed: bool = True     # kept in the entity's Redis hash
    in_json: bool = True    # in the entity's state JSON
    default: str | None = None  # how an absent or empty value reads (rows and states older than the field)
    fixed: bool = False     # never changes once written: the record's upsert leaves it alone
    added: bool = False     # added after the first release: an older database gains the column
    start: Start = Start.ENGINE
    lua: str | None = None  # Enc.COMPUTED: the Lua expression (the hash is ``h``)

    @property
    def sql_type(self) -> str | None:
        return self.sql.split()[0] if self.sql else None

    def empty(self) -> str:
        """The hash's value for "unset"."""
        return "0" if self.enc in (Enc.TIME, Enc.NUM, Enc.FLAG) else (self.default or "")


@dataclass(frozen=True)
class Entity:
    name: str       # ticket, queue, clinic
    table: str      # its SQLite table
    var: str        # the Lua variable its encoder reads
    fields: tuple[Field, ...]
    record_only: tuple[str, ...] = ()  # columns of its table that are no field (the record's own)

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)

    @property
    def hashed(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.hashed)

    @property
    def in_json(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.in_json and f.enc is not Enc.API)

    @property
    def columns(self) -> tuple[Field, ...]:
        """Fields with a column, in order."""
        return tuple(f for f in self.fields if f.sql)

    @property
    def event_columns(self) -> tuple[Field, ...]:
        """Fields an event's state carries and a column keeps: the persister's row."""
        return tuple(f for f in self.fields if f.sql and f.in_json)

    def seen(self, by: str) -> tuple[str, ...]:
        """The fields ``by`` may see, in the description's order."""
        return tuple(f.name for f in self.fields if by in f.seen_by)


S_ALL = frozenset({STAFF, PATIENT, DISPLAY, HOOK})
S_SCREENS = frozenset({STAFF, PATIENT, DISPLAY})
S_STAFF_HOOK = frozenset({STAFF, HOOK})
S_STAFF = frozenset({STAFF})
S_WAIT = frozenset({STAFF, PATIENT})  # the wait as a token holder and staff see it
TIME_COL = "INTEGER"

# Order: the state JSON's (events) with the API-only fields where TicketDict has them.
TICKET = Entity("ticket", "tickets", "t", (
    Field("id", Enc.ID, "INTEGER PRIMARY KEY", frozenset({STAFF, DISPLAY, HOOK}), fixed=True),
    Field("clinic", Enc.PLAIN, "TEXT NOT NULL", S_STAFF, fixed=True),
    Field("queue", Enc.PLAIN, "TEXT NOT NULL", frozenset({STAFF, DISPLAY, HOOK})),
    Field("label", Enc.PLAIN, "TEXT NOT NULL", S_ALL),
    Field("status", Enc.PLAIN, "TEXT NOT NULL", S_ALL),
    Field("prev_status", Enc.OPT, "TEXT", frozenset({HOOK}), start=Start.EMPTY),
    Field("priority", Enc.NUM, "INTEGER NOT NULL DEFAULT 0", S_STAFF_HOOK, start=Start.ARG),
    Field("position", Enc.API, seen_by=S_WAIT, hashed=False, in_json=False),
    Field("ahead", Enc.API, seen_by=S_WAIT, hashed=False, in_json=False),
    Field("eta_s", Enc.API, seen_by=S_WAIT, hashed=False, in_json=False),
    Field("eta_low_s", Enc.API, seen_by=S_WAIT, hashed=False, in_json=False),
    Field("eta_high_s", Enc.API, seen_by=S_WAIT, hashed=False, in_json=False),
    Field("score", Enc.PLAIN, "TEXT NOT NULL"),
    Field("name", Enc.OPT, "TEXT", S_STAFF, start=Start.ARG),
    Field("notify", Enc.FLAG, "INTEGER NOT NULL DEFAULT 0", S_STAFF, start=Start.ARG),
    Field("lang", Enc.OPT, "TEXT", S_STAFF, start=Start.ARG),
    Field("counter", Enc.OPT, "TEXT", S_ALL, start=Start.EMPTY),
    Field("recalls", Enc.NUM, "INTEGER NOT NULL DEFAULT 0", S_STAFF_HOOK, start=Start.EMPTY),
    Field("created_at", Enc.TIME, TIME_COL, S_STAFF_HOOK),
    Field("called_at", Enc.TIME, TIME_COL, S_STAFF_HOOK, start=Start.EMPTY),
    Field("served_at", Enc.TIME, TIME_COL, S_STAFF_HOOK, start=Start.EMPTY),
    Field("done_at", Enc.TIME, TIME_COL, S_STAFF_HOOK, start=Start.EMPTY),
    Field("day", Enc.PLAIN, "TEXT NOT NULL", fixed=True),
    Field("appointment_id", Enc.OPT, "TEXT", S_STAFF_HOOK, start=Start.ARG),
    Field("issue_ahead", Enc.NUM, "INTEGER NOT NULL DEFAULT 0"),
    Field("source", Enc.PLAIN, "TEXT NOT NULL DEFAULT 'reception'", S_STAFF_HOOK,
          default=TicketSource.RECEPTION.value, added=True, start=Start.ARG),
    Field("token", Enc.PLAIN, "TEXT", in_json=False),  # the record keeps it for rebuild; the persister reads it live
    Field("moved_back", Enc.FLAG, in_json=False, start=Start.NEVER),  # once in a ticket's life (act.lua)
), record_only=("issued_queue", "eta_issue_s", "updated_version", "updated_at"))

QUEUE = Entity("queue", "queues", "h", (
    Field("id", Enc.PLAIN, "TEXT PRIMARY KEY", S_ALL, fixed=True),
    Field("clinic", Enc.PLAIN, "TEXT NOT NULL", S_STAFF, fixed=True),
    Field("name", Enc.TEXT, "TEXT NOT NULL", S_SCREENS),
    Field("prefix", Enc.TEXT, "TEXT NOT NULL", frozenset({STAFF, DISPLAY})),
    Field("paused", Enc.FLAG, "INTEGER NOT NULL DEFAULT 0", frozenset({STAFF, DISPLAY, HOOK})),
    Field("avg_service_s", Enc.NUM, "INTEGER NOT NULL", S_STAFF),
    Field("ema_s", Enc.NUM, "INTEGER NOT NULL", S_STAFF),
    Field("pause_left_s", Enc.COMPUTED, hashed=False, lua="pause_left_s(h)"),
    Field("counters_open", Enc.COMPUTED, seen_by=frozenset({STAFF, DISPLAY}), hashed=False,
          lua="counters_open(h.id, num(h.ema_s))"),
    Field("eta", Enc.PLAIN),  # what learn_gap learns (lib.lua); the record keeps it in ``extra``
    Field("self_checkin", Enc.FLAG, "INTEGER NOT NULL DEFAULT 0", S_STAFF),
    Field("notify_ahead", Enc.NUM, "INTEGER NOT NULL DEFAULT 3", S_STAFF),
    Field("archived", Enc.FLAG, seen_by=frozenset({STAFF, DISPLAY})),
    Field("paused_at", Enc.TIME, in_json=False),
    Field("pause_ema_s", Enc.NUM, in_json=False),
    Field("created_at", Enc.TIME, TIME_COL, in_json=False, fixed=True),  # the record: its first event's time
), record_only=("created_version", "updated_version", "extra"))

CLINIC = Entity("clinic", "clinics", "h", (
    Field("id", Enc.PLAIN, "TEXT PRIMARY KEY", S_ALL, fixed=True),
    Field("name", Enc.TEXT, "TEXT NOT NULL", S_SCREENS),
    Field("timezone", Enc.TEXT, "TEXT NOT NULL", S_SCREENS),
    Field("mask_names", Enc.FLAG, "INTEGER NOT NULL DEFAULT 0", frozenset({STAFF, DISPLAY})),
    Field("lang", Enc.TEXT, "TEXT NOT NULL DEFAULT 'en'", S_SCREENS),
    Field("region", Enc.TEXT, "TEXT NOT NULL DEFAULT 'IN'", S_STAFF, default=DEFAULT_REGION, added=True),
    Field("created_at", Enc.TIME, TIME_COL, in_json=False, fixed=True),  # the record: its first event's time
), record_only=("updated_version",))


def per_entity(make: Callable[[Entity], T]) -> Callable[[Entity], T]:
    """``make(entity)`` computed once per entity object: what consumers derive from the
    description (statements, readers, views). Keyed by identity, as hashing a whole entity on
    every call would cost more than the work it saves."""
    made: dict[int, tuple[Entity, T]] = {}

    def get(entity: Entity) -> T:
        hit = made.get(id(entity))
        if hit is not None and hit[0] is entity:
            return hit[1]
        value = make(entity)
        made[id(entity)] = (entity, value)
        return value

    return get


def entities() -> tuple[Entity, Entity, Entity]:
    """The three described entities as they are now (a test may have replaced one)."""
    return TICKET, QUEUE, CLINIC


def added_columns() -> tuple[tuple[str, str, str], ...]:
    """(table, column, declaration) of the fields an older database lacks (``store``)."""
    return tuple((e.table, f.name, f.sql) for e in entities() for f in e.columns if f.added and f.sql)


# -- the Lua ----------------------------------------------------------------------------------

# The engine's key table: its Lua names and the ``redis_keys`` functions that make them.
LUA_KEYS: dict[str, Callable[..., str]] = {
    "clinic": keys.clinic, "version": keys.version, "events": keys.events, "clinic_queues": keys.clinic_queues,
    "recent": keys.recent, "arrival": keys.arrival, "queue": keys.queue, "waiting": keys.waiting,
    "counters": keys.counters, "seen": keys.counters_seen, "idle": keys.counters_idle,
    "eta_profile": keys.eta_profile, "labels": keys.labels, "ticket": keys.ticket, "token": keys.token,
    "idem": keys.idempotency,
}
LUA_KEY_NAMES: dict[str, str] = {"KEY_CLINICS": keys.CLINICS, "KEY_TICKET_SEQ": keys.TICKET_SEQ}

_ENCODE = {Enc.PLAIN: "jplain", Enc.TEXT: "jtext", Enc.OPT: "jopt", Enc.FLAG: "jflag", Enc.NUM: "jnum",
           Enc.TIME: "jnum"}


def lua_str(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def lua_key_function(make: Callable[..., str]) -> str:
    """``function(c) return 'qt:c:' .. c .. ':v' end`` from ``redis_keys.version``: the Python
    function is called with markers for its arguments, and the text between them is the Lua's."""
    params = list(inspect.signature(make).parameters)
    marks = [f"\x00{i}\x00" for i in range(len(params))]
    text = make(*marks)
    parts: list[str] = []
    rest = text
    for i, mark in enumerate(marks):
        before, rest = rest.split(mark, 1)
        if before:
            parts.append(lua_str(before))
        parts.append(params[i])
    if rest:
        parts.append(lua_str(rest))
    return f"function({', '.join(params)}) return {' .. '.join(parts)} end"


def lua_prelude() -> str:
    """The shared constants and the key table (made at its full size: filled one by one, the
    table would regrow five times)."""
    lines = ["-- Generated by qtraq_live/engine/live_schema.py (lua_prelude): constants and key names."]
    lines += [f"local {name} = {value}" for name, value in LUA_CONSTANTS.items()]
    lines += [f"local {name} = {lua_str(value)}" for name, value in LUA_KEY_NAMES.items()]
    lines.append("local K = {")
    lines += [f"  {name} = {lua_key_function(make)}," for name, make in LUA_KEYS.items()]
    lines.append("}")
    return "\n".join(lines)


def _hash_reader(e: Entity) -> str:
    """``ticket_hash(id)``: the hash as a table made at its full size (every described field
    false), or nil when there is none."""
    slots = [f"{name} = false," for name in e.hashed]
    rows = "\n".join("    " + " ".join(slots[i:i + 6]) for i in range(0, len(slots), 6))
    return (f"local function {e.name}_hash(id)\n  local flat = redis.call('HGETALL', K.{e.name}(id))\n"
            f"  return fill({{\n{rows}\n  }}, flat)\nend")


def _json_value(e: Entity, f: Field) -> str:
    ref = f"{e.var}.{f.name}"
    if f.enc is Enc.ID:
        return ref
    if f.enc is Enc.COMPUTED:
        assert f.lua, f"{e.name}.{f.name}: a computed field needs its Lua expression"
        return f.lua
    if f.default is not None and f.enc is Enc.PLAIN:  # states older than the field read as its default
        return f"jplain({ref} ~= '' and {ref} or {lua_str(f.default)})"
    return f"{_ENCODE[f.enc]}({ref})"


def _json_encoder(e: Entity, more: bool) -> str:
    """The entity's state JSON written as text: one concatenation, the keys' text merged with
    the punctuation around them."""
    pieces: list[str] = []
    sep = "{"
    for f in e.in_json:
        pieces.append(lua_str(f'{sep}"{f.name}":'))
        pieces.append(_json_value(e, f))
        sep = ","
    tail = "(more or '') .. '}'" if more else "'}'"
    body = " ..\n    ".join(" .. ".join(pieces[i:i + 2]) for i in range(0, len(pieces), 2))
    args = f"{e.var}, more" if more else e.var
    return f"local function {e.name}_json({args})\n  return {body} ..\n    {tail}\nend"


def lua_encoders() -> str:
    """The hash readers and the state encoders (they use lib.lua's fill, j* and the queue's
    pause_left_s / counters_open, so they are placed after those)."""
    ticket, queue, clinic = entities()
    return "\n\n".join((
        "-- Generated by qtraq_live/engine/live_schema.py (lua_encoders): hash readers and state JSON.\n"
        + _hash_reader(ticket), _hash_reader(queue),
        "-- QueueState from the queue's hash (as this script left it); ``more`` adds fields.\n"
        + _json_encoder(queue, more=True),
        _json_encoder(clinic, more=False),
        "-- TicketState from the ticket's hash.\n" + _json_encoder(ticket, more=False),
    ))


def lua_issue_fields() -> str:
    """The fields ``issue`` takes from its arguments or starts empty, as the entries of the new
    ticket's table constructor (issue.lua sets the engine's own)."""
    out = []
    for f in entities()[0].fields:
        if f.start is Start.ARG:
            arg = f"A.{f.name}"
            if f.enc is Enc.FLAG:
                value = f"{arg} and '1' or '0'"
            elif f.enc in (Enc.NUM, Enc.TIME, Enc.ID):
                value = f"tostring({arg} or 0)"
            else:
                value = f"{arg} or {lua_str(f.empty())}"
        elif f.start is Start.EMPTY:
            value = lua_str(f.empty())
        else:
            continue
        out.append(f"{f.name} = {value},")
    return " ".join(out)


@cache
def _lua_for(described: tuple[Entity, ...]) -> dict[str, str]:
    return {"__LIVE_PRELUDE__": lua_prelude(), "__LIVE_ENCODERS__": lua_encoders(),
            "__ISSUE_FIELDS__": lua_issue_fields()}


def lua_sources() -> dict[str, str]:
    """Placeholder -> generated Lua, for ``queue_engine._load_scripts``."""
    return _lua_for(entities())


def issue_args() -> tuple[str, ...]:
    """The ticket fields ``issue`` takes from its arguments."""
    return tuple(f.name for f in TICKET.fields if f.start is Start.ARG)
