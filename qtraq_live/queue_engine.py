"""The live queue state in Redis.

Every mutation is one call of an engine script (``lua/engine/``, one per family of
operations): it checks the transition, changes the hashes and sorted sets, bumps the clinic's
version by one and appends the event to the clinic's stream, all atomically. This module holds
the pure rules (statuses, transitions, labels, ordering, ETA, what a patient may see) and a
thin async layer that calls the scripts.
It imports nothing from the web layer.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from . import phones
from .engine import live_schema
from .engine import redis_keys as keys
from .engine.eta import DEFAULT_AVG_SERVICE_S, estimate
from .engine.live_schema import NORMAL_OFFSET, TicketSource
from .errors import Conflict, Invalid, NotFound, QtraqError, Unavailable
from .languages import LANGS
from .metrics import REDIS_ERRORS
from .runtime.redis_conn import UNREACHABLE, send_once
from .validation import NAME_MAX
from .validation import SLUG as SLUG_PATTERN

Json = dict[str, Any]


class TicketStatus(StrEnum):
    WAITING = "waiting"
    CALLED = "called"
    SERVING = "serving"
    DONE = "done"
    SKIPPED = "skipped"
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"


S = TicketStatus
# action -> statuses it may start from (the Lua script reads this table; one source of truth)
TRANSITIONS: dict[str, tuple[TicketStatus, ...]] = {
    "serve": (S.CALLED,),
    "recall": (S.CALLED, S.SERVING),
    "skip": (S.CALLED,),
    "no_show": (S.CALLED, S.SKIPPED),
    "done": (S.CALLED, S.SERVING),
    "cancel": (S.WAITING, S.CALLED, S.SERVING, S.SKIPPED),
    "requeue": (S.CALLED, S.SKIPPED, S.NO_SHOW),
    "transfer": (S.WAITING, S.CALLED, S.SERVING, S.SKIPPED),
    "call": (S.WAITING, S.SKIPPED, S.NO_SHOW),  # out of order, to a counter: QueueEngine.call
}
ACTIONS = tuple(TRANSITIONS)
# The status each action leaves the ticket in (recall keeps the status it had).
RESULT_STATUS: dict[str, TicketStatus | None] = {
    "serve": S.SERVING,
    "recall": None,
    "skip": S.SKIPPED,
    "no_show": S.NO_SHOW,
    "done": S.DONE,
    "cancel": S.CANCELLED,
    "requeue": S.WAITING,
    "transfer": S.WAITING,
    "call": S.CALLED,
}
SOURCES = tuple(s.value for s in TicketSource)
ACTIVE = frozenset({S.WAITING, S.CALLED, S.SERVING, S.SKIPPED})
SLUG = re.compile(SLUG_PATTERN)
PREFIX = re.compile(r"^[A-Z]{1,3}$")
COUNTER_MAX = 32
DEFAULT_NOTIFY_AHEAD = 3  # a new queue notifies a patient this many places ahead


def format_label(prefix: str, n: int) -> str:
    """``A-012``: three digits at least, more when a busy day needs them."""
    return f"{prefix}-{n:03d}"


def order_score(priority: int, arrival_us: int) -> int:
    """Urgent before normal, then arrival. The Lua script computes the same number."""
    return arrival_us + (0 if priority else NORMAL_OFFSET)


def mask_name(name: str | None) -> str | None:
    """``Ramesh Kumar`` → ``R. K.``: enough for a patient to recognise, not to identify."""
    if not name:
        return None
    return " ".join(f"{part[0]}." for part in name.split() if part)


def iso(ms: int | None) -> str | None:
    if not ms:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ticket_view(state: Mapping[str, Any], rank: int, queue: Mapping[str, Any]) -> Json:
    """The API's ticket (the fields staff see, live_schema.TICKET) from a ticket state, its
    rank in the waiting set and its queue state."""
    if state["status"] == S.WAITING and rank >= 0:
        eta = estimate(rank, queue)
        return _api_view(live_schema.TICKET)(state.get, rank + 1, rank, eta[0], eta[1], eta[2])
    return _api_view(live_schema.TICKET)(state.get, None, None, None, None, None)


_API_READERS: dict[live_schema.Enc, str] = {
    live_schema.Enc.ID: "int({})", live_schema.Enc.NUM: "int({} or 0)", live_schema.Enc.FLAG: "bool({})",
    live_schema.Enc.TIME: "iso({})",
}


@live_schema.per_entity
def _api_view(entity: live_schema.Entity) -> Callable[..., Json]:
    """The function that makes the API's view of a ticket state, generated from the description
    as one dict display (a loop over the fields cost twice as much: snapshots make thousands):
    ``view(get, position, ahead, eta_s, eta_low_s, eta_high_s)``."""
    items = []
    for f in entity.fields:
        if live_schema.STAFF not in f.seen_by:
            continue
        if f.enc is live_schema.Enc.API:
            value = f.name
        elif f.default is not None:
            value = f"(get({f.name!r}) or {f.default!r})"
        else:
            value = _API_READERS.get(f.enc, "{}").format(f"get({f.name!r})")
        items.append(f"{f.name!r}: {value}")
    source = ("def view(get, position, ahead, eta_s, eta_low_s, eta_high_s):\n"
              f"    return {{{', '.join(items)}}}\n")
    namespace: dict[str, Any] = {"iso": iso}
    exec(compile(source, f"<ticket view of {entity.name}>", "exec"), namespace)
    view: Callable[..., Json] = namespace["view"]
    return view


PUBLIC_FIELDS = live_schema.TICKET.seen(live_schema.PATIENT)  # what a token holder may see of a ticket


def public_ticket(ticket: Mapping[str, Any], queue_name: str, clinic_name: str, version: int) -> Json:
    """What a token holder may see (``GET /t/{token}``): no name, no id, no token."""
    out = {k: ticket.get(k) for k in PUBLIC_FIELDS}
    out["queue"] = {"name": queue_name}
    out["clinic"] = {"name": clinic_name}
    out["version"] = version
    return out


def parse_event(raw: str) -> Json:
    """An event from its stream JSON. Events written by older versions (through cjson) carry
    an empty list as ``{}``; a stream may still hold some."""
    ev: Json = orjson.loads(raw)
    ev["tickets"] = list(ev.get("tickets") or [])
    ev["queues"] = list(ev.get("queues") or [])
    return ev


def clinic_day(tz_name: str, now: float) -> str:
    """The calendar day in the clinic's timezone: labels restart when it changes."""
    return datetime.fromtimestamp(now, tz=ZoneInfo(tz_name)).strftime("%Y%m%d")


def new_token() -> str:
    """A ticket token: 192 random bits, URL-safe base64 (32 chars)."""
    return secrets.token_urlsafe(24)


SCRIPT_FAMILIES = ("define", "pause", "issue", "next", "act", "read")
_OP_DEFINITION = re.compile(r"^function ops\.(\w+)\(", re.M)


def _load_scripts() -> dict[str, str]:
    """One script per family of operations (``lua/engine/``): what they all share, the
    family's own functions, the dispatch. Redis runs a whole script on every call, so a call
    should define no more functions than its family needs. What live_schema describes (keys,
    constants, hash readers, state encoders, the issue's fields) and the transition table are
    put in where their placeholders stand."""
    folder = resources.files("qtraq_live").joinpath("lua/engine")
    lib, run = (folder.joinpath(f"{name}.lua").read_text() for name in ("lib", "run"))
    generated = {**live_schema.lua_sources(), "__TRANSITIONS__": "'" + json.dumps(
        {action: [str(s) for s in src] for action, src in TRANSITIONS.items()}) + "'"}
    pattern = re.compile("|".join(generated))
    return {family: pattern.sub(lambda m: generated[m.group(0)],
                                "\n".join((lib, folder.joinpath(f"{family}.lua").read_text(), run)))
            for family in SCRIPT_FAMILIES}


def _change_result(out: Json) -> Json:
    """A change answers ``{"id", "rank", "event"}``: its ticket and queue come from the event."""
    event = out.pop("event")
    ticket = next(t for t in event["tickets"] if t["id"] == out["id"])
    out["v"], out["ticket"] = event["v"], ticket
    out["queue"] = next(q for q in event["queues"] if q["id"] == ticket["queue"])
    return out


_ERRORS: dict[str, Callable[[str, str], QtraqError]] = {
    "not_found": lambda field, msg: NotFound(msg),
    "conflict": lambda field, msg: Conflict(msg, code="already_exists"),
    "illegal_transition": lambda field, msg: Conflict(msg, code="illegal_transition"),
    "queue_paused": lambda field, msg: Conflict(msg, code="queue_paused"),
    "invalid_field": lambda field, msg: Invalid(field, msg),
}


@dataclass(frozen=True)
class Record:
    """A stream entry appended in the same atomic step as a change, and only if the change
    happens: a press and its staff audit record land together or not at all."""

    stream: str
    fields: Mapping[str, str]
    maxlen: int


class QueueEngine:
    """Async access to the live queue state. The Redis client must decode responses."""

    def __init__(self, redis: aioredis.Redis, *, clock: Callable[[], float] = time.time,
                 stream_maxlen: int = 50_000) -> None:
        self.redis = redis
        self.clock = clock
        self.stream_maxlen = stream_maxlen
        self._families = [redis.register_script(source) for source in _load_scripts().values()]
        self._scripts = {op: script for script in self._families for op in _OP_DEFINITION.findall(script.script)}
        self._tz: dict[str, str] = {}  # queue id -> clinic timezone (definitions change rarely)

    async def load_scripts(self) -> None:
        """Load the scripts once at start so the first press needs no round trip more."""
        for script in self._families:
            await self._call_redis(self.redis.script_load(script.script))

    async def _call_redis(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except UNREACHABLE as exc:
            REDIS_ERRORS.inc()
            raise Unavailable(f"live queue store unreachable: {exc.__class__.__name__}") from exc

    async def _eval(self, script: AsyncScript, argv: list[Any]) -> Any:
        """EVALSHA sent once (``send_once``): a change is never sent twice. NOSCRIPT (Redis
        restarted, or its scripts were flushed) means it did not run: load it, send again."""
        try:
            return await send_once(self.redis, "EVALSHA", script.sha, 0, *argv)
        except NoScriptError:
            await self.redis.script_load(script.script)
            return await send_once(self.redis, "EVALSHA", script.sha, 0, *argv)

    async def _run(self, op: str, args: Mapping[str, Any], record: Record | None = None) -> Json:
        for field in ("clinic", "queue"):  # ids from paths: never a key name like 'gp:waiting'
            if isinstance(args.get(field), str) and not SLUG.match(args[field]):
                raise NotFound(f"unknown {field}")
        now_ms = int(self.clock() * 1000)
        present = {k: v for k, v in args.items() if v is not None}  # Lua sees null as userdata
        argv: list[Any] = [op, orjson.dumps(present), now_ms, self.stream_maxlen]
        if record is not None:
            argv += [record.stream, record.maxlen, *(x for kv in record.fields.items() for x in kv)]
        raw = await self._call_redis(self._eval(self._scripts[op], argv))
        out: Json = orjson.loads(raw)
        if "error" in out:
            raise _ERRORS[out["error"]](out.get("field") or op, out["message"])
        return _change_result(out) if "event" in out else out

    # -- definitions -----------------------------------------------------------------

    async def create_clinic(self, clinic_id: str, name: str, timezone: str = "Asia/Kolkata",
                            mask_names: bool = True, lang: str = "en", region: str = phones.DEFAULT_REGION,
                            actor: str | None = None) -> Json:
        _check_slug("id", clinic_id)
        _check_text("name", name)
        _check_timezone(timezone)
        _check_lang(lang)
        phones.check_region(region)
        out = await self._run("create_clinic", {"id": clinic_id, "name": name, "timezone": timezone,
                                                "mask_names": bool(mask_names), "lang": lang, "region": region,
                                                "actor": actor})
        return out["clinic"]

    async def update_clinic(self, clinic_id: str, actor: str | None = None, **fields: Any) -> Json:
        allowed = {"name", "timezone", "mask_names", "lang", "region"}
        for k, v in fields.items():
            if k not in allowed:
                raise Invalid(k, "cannot be changed")
        if "region" in fields:
            phones.check_region(fields["region"])
        if "name" in fields:
            _check_text("name", fields["name"])
        if "timezone" in fields:
            _check_timezone(fields["timezone"])
        if "lang" in fields:
            _check_lang(fields["lang"])
        out = await self._run("update_clinic", {"id": clinic_id, "fields": fields, "actor": actor})
        self._tz.clear()
        return out["clinic"]

    async def create_queue(self, clinic_id: str, queue_id: str, name: str, prefix: str,
                           avg_service_s: int = DEFAULT_AVG_SERVICE_S, self_checkin: bool = False,
                           notify_ahead: int = DEFAULT_NOTIFY_AHEAD, actor: str | None = None) -> Json:
        _check_slug("id", queue_id)
        _check_text("name", name)
        if not PREFIX.match(prefix):
            raise Invalid("prefix", "must be 1 to 3 capital letters")
        _check_int("avg_service_s", avg_service_s, 10, 4 * 3600)
        _check_int("notify_ahead", notify_ahead, 0, 50)
        out = await self._run("create_queue", {
            "clinic": clinic_id, "id": queue_id, "name": name, "prefix": prefix,
            "avg_service_s": avg_service_s, "self_checkin": bool(self_checkin),
            "notify_ahead": notify_ahead, "actor": actor})
        return out["queue"]

    async def update_queue(self, queue_id: str, actor: str | None = None, **fields: Any) -> Json:
        allowed = {"name", "prefix", "avg_service_s", "self_checkin", "notify_ahead", "archived"}
        for k in fields:
            if k not in allowed:
                raise Invalid(k, "cannot be changed")
        if "archived" in fields and not isinstance(fields["archived"], bool):
            raise Invalid("archived", "must be true or false")
        if "name" in fields:
            _check_text("name", fields["name"])
        if "prefix" in fields and not PREFIX.match(str(fields["prefix"])):
            raise Invalid("prefix", "must be 1 to 3 capital letters")
        if "avg_service_s" in fields:
            _check_int("avg_service_s", fields["avg_service_s"], 10, 4 * 3600)
        if "notify_ahead" in fields:
            _check_int("notify_ahead", fields["notify_ahead"], 0, 50)
        out = await self._run("update_queue", {"id": queue_id, "fields": fields, "actor": actor})
        return out["queue"]

    async def get_clinic(self, clinic_id: str) -> Json | None:
        """The clinic with its queues' definitions and its version: no ticket is read."""
        try:
            out = await self._run("clinic_definition", {"clinic": clinic_id})
        except NotFound:
            return None
        clinic: Json = out["clinic"]
        clinic["queues"] = [_queue_def(q) for q in out["queues"]]
        clinic["version"] = out["v"]
        clinic["region"] = clinic.get("region") or phones.DEFAULT_REGION  # clinics made before regions
        return clinic

    async def clinic_info(self, clinic_id: str) -> Json | None:
        """The clinic's own fields (``ClinicState``), without its queues: one hash read."""
        try:
            out = await self._run("clinic_definition", {"clinic": clinic_id, "bare": True})
        except NotFound:
            return None
        clinic: Json = out["clinic"]
        return clinic

    async def queue_definition(self, queue_id: str) -> tuple[Json, Json] | None:
        """(``QueueState`` plus ``n_waiting``, its clinic's ``ClinicState``) in one round trip
        that reads no ticket, or None for an unknown queue."""
        if not isinstance(queue_id, str) or not SLUG.match(queue_id):
            return None
        try:
            out = await self._run("queue_definition", {"queue": queue_id})
        except NotFound:
            return None
        return out["queue"], out["clinic"]

    async def get_queue(self, queue_id: str) -> Json | None:
        if not isinstance(queue_id, str) or not SLUG.match(queue_id):
            return None  # not an id (e.g. 'gp:waiting', another key's name): unknown
        h = await self._call_redis(self.redis.hgetall(keys.queue(queue_id)))
        if not h:
            return None
        return {f.name: _hash_reading(f, h.get(f.name)) for f in live_schema.QUEUE.fields
                if f.hashed and live_schema.STAFF in f.seen_by}

    async def clinic_ids(self) -> list[str]:
        return sorted(await self._call_redis(self.redis.smembers(keys.CLINICS)))

    # -- tickets ---------------------------------------------------------------------

    async def allocate_ticket_id(self) -> int:
        return int(await self._call_redis(self.redis.incr(keys.TICKET_SEQ)))

    async def _day(self, queue_id: str) -> str:
        return clinic_day(await self._timezone(queue_id), self.clock())

    async def _utc_offset_s(self, queue_id: str) -> int:
        """The clinic's UTC offset now, in seconds: the ETA's hour profile is by local hour."""
        offset = datetime.fromtimestamp(self.clock(), tz=ZoneInfo(await self._timezone(queue_id))).utcoffset()
        return int(offset.total_seconds()) if offset is not None else 0

    async def _timezone(self, queue_id: str) -> str:
        tz = self._tz.get(queue_id)
        if tz is None:
            clinic = await self._call_redis(self.redis.hget(keys.queue(queue_id), "clinic"))
            if clinic is None:
                raise NotFound(f"unknown queue {queue_id}")
            tz = await self._call_redis(self.redis.hget(keys.clinic(clinic), "timezone")) or "UTC"
            self._tz[queue_id] = tz
        return tz

    async def queue_region(self, queue_id: str) -> str:
        """How local phone numbers are read for this queue: its clinic's ``region``."""
        clinic = await self._call_redis(self.redis.hget(keys.queue(queue_id), "clinic"))
        if clinic is None:
            raise NotFound(f"unknown queue {queue_id}")
        region = await self._call_redis(self.redis.hget(keys.clinic(clinic), "region"))
        return str(region or phones.DEFAULT_REGION)

    async def issue(self, queue_id: str, *, name: str | None = None, priority: int = 0,
                    notify: bool = False, lang: str | None = None, ticket_id: int | None = None,
                    appointment_id: str | int | None = None, arrival_ms: int | None = None,
                    source: TicketSource | str = TicketSource.RECEPTION, actor: str | None = None,
                    fields: Mapping[str, str] | None = None) -> Json:
        """A new waiting ticket. ``arrival_ms`` places it as if it had arrived then
        (appointments checked in by slot time); otherwise it joins at the back of its priority.
        ``source`` records how it came (:class:`TicketSource`). ``fields``: described ticket
        fields the issue takes from its arguments (``live_schema.issue_args``) that have no
        parameter here, as text."""
        if name is not None:
            _check_text("name", name)
        if priority not in (0, 1) or isinstance(priority, bool):
            raise Invalid("priority", "must be 0 (normal) or 1 (urgent)")
        if lang is not None:
            _check_lang(lang)
        if source not in SOURCES:
            raise Invalid("source", "must be one of " + ", ".join(SOURCES))
        day = await self._day(queue_id)
        token = new_token()
        out = await self._run("issue", {
            "queue": queue_id, "id": None if ticket_id is None else str(ticket_id), "name": name, "priority": priority,
            "notify": bool(notify), "lang": lang, "day": day, "token": token,
            "appointment_id": None if appointment_id is None else str(appointment_id),
            "arrival_ms": arrival_ms, "source": str(source), "actor": actor, **_issue_fields(fields)})
        ticket = _ticket(out)
        ticket["token"] = token
        return ticket

    async def next(self, queue_id: str, counter: str = "1", *, idempotency_key: str | None = None,
                   actor: str | None = None, record: Record | None = None) -> Json | None:
        """Finish what this counter was serving and call the next patient, atomically."""
        _check_counter(counter)
        _check_idempotency_key(idempotency_key)
        offset = await self._utc_offset_s(queue_id)
        out = await self._run("next", {"queue": queue_id, "counter": counter, "utc_offset_s": offset,
                                       "idempotency_key": idempotency_key, "actor": actor}, record)
        return _ticket(out) if out.get("ticket") else None

    async def call(self, ticket_id: int | str, counter: str = "1", *, idempotency_key: str | None = None,
                   actor: str | None = None, record: Record | None = None) -> Json:
        """Call this waiting, skipped or no-show ticket to ``counter`` now, out of order; the
        counter's previous patient is finished as by :meth:`next`, in the same atomic step."""
        _check_counter(counter)
        _check_idempotency_key(idempotency_key)
        tid = str(_ticket_id(ticket_id))
        # The ticket's queue, for its clinic's UTC offset (the ETA learns by local hour); an
        # unknown ticket is refused by the script.
        queue_id = await self._call_redis(self.redis.hget(keys.ticket(tid), "queue"))
        offset = await self._utc_offset_s(queue_id) if queue_id else None
        return _ticket(await self._run("call", {"ticket": tid, "counter": counter, "utc_offset_s": offset,
                                                "idempotency_key": idempotency_key, "actor": actor}, record))

    async def close_counter(self, queue_id: str, counter: str, *, actor: str | None = None,
                            record: Record | None = None) -> tuple[Json | None, bool]:
        """Close ``counter``: the patient it called, if still called or serving, is done (as by
        :meth:`next`) and the counter no longer counts as open, in one atomic step with its
        event ``counter_closed``. Returns (that finished ticket or None, whether anything
        changed): a counter that is not open changes nothing and ``record`` is not written."""
        _check_counter(counter)
        out = await self._run("close_counter", {"queue": queue_id, "counter": counter, "actor": actor}, record)
        return (_ticket(out) if out.get("ticket") else None), bool(out["closed"])

    async def _act(self, op: str, ticket_id: int | str, actor: str | None, record: Record | None = None) -> Json:
        return _ticket(await self._run(op, {"ticket": str(_ticket_id(ticket_id)), "actor": actor}, record))

    async def recall(self, ticket_id: int | str, actor: str | None = None) -> Json:
        return await self._act("recall", ticket_id, actor)

    async def serve(self, ticket_id: int | str, actor: str | None = None) -> Json:
        return await self._act("serve", ticket_id, actor)

    async def skip(self, ticket_id: int | str, actor: str | None = None) -> Json:
        return await self._act("skip", ticket_id, actor)

    async def no_show(self, ticket_id: int | str, actor: str | None = None) -> Json:
        return await self._act("no_show", ticket_id, actor)

    async def done(self, ticket_id: int | str, actor: str | None = None) -> Json:
        return await self._act("done", ticket_id, actor)

    async def cancel(self, ticket_id: int | str, actor: str | None = None) -> Json:
        return await self._act("cancel", ticket_id, actor)

    async def requeue(self, ticket_id: int | str, actor: str | None = None) -> Json:
        return await self._act("requeue", ticket_id, actor)

    async def act(self, action: str, ticket_id: int | str, actor: str | None = None,
                  record: Record | None = None) -> Json:
        """Any single-ticket action by name (``recall``, ``no_show``…)."""
        if action not in TRANSITIONS or action in ("transfer", "call"):
            raise Invalid("action", f"unknown action {action}")
        return await self._act(action, ticket_id, actor, record)

    async def transfer(self, ticket_id: int | str, to_queue_id: str, actor: str | None = None,
                       record: Record | None = None) -> Json:
        if not isinstance(to_queue_id, str) or not SLUG.match(to_queue_id):
            raise Invalid("queue", "must be a queue id")
        return _ticket(await self._run("transfer", {"ticket": str(_ticket_id(ticket_id)),
                                                    "to_queue": to_queue_id, "actor": actor}, record))

    async def cancel_by_token(self, token: str) -> Json:
        found = await self._run("ticket", {"token": _check_token(token)})
        return await self._act("cancel", found["ticket"]["id"], "patient")

    async def move_back(self, ticket_id: int | str, places: int, actor: str | None = None) -> Json:
        """A waiting ticket goes ``places`` places back, once in its life (a "LATE" reply);
        ``Conflict`` when it is not waiting, was moved back before or nobody waits behind it."""
        _check_int("places", places, 1, 50)
        return _ticket(await self._run("move_back", {"ticket": str(_ticket_id(ticket_id)), "places": places,
                                                     "actor": actor}))

    async def notify_on(self, ticket_id: int | str) -> bool:
        """Notices on for a ticket still in the queue (its holder allowed Web Push); False when
        they already were. ``Conflict`` for a ticket that has left the queue."""
        out = await self._run("notify_on", {"ticket": str(_ticket_id(ticket_id)), "actor": "patient"})
        return out.get("changed", True) is not False

    async def pause(self, queue_id: str, actor: str | None = None, record: Record | None = None) -> Json:
        return (await self._run("pause", {"queue": queue_id, "actor": actor}, record))["queue"]

    async def resume(self, queue_id: str, actor: str | None = None, record: Record | None = None) -> Json:
        return (await self._run("resume", {"queue": queue_id, "actor": actor}, record))["queue"]

    # -- reads -----------------------------------------------------------------------

    async def ticket(self, ticket_id: int | str) -> Json | None:
        try:
            out = await self._run("ticket", {"ticket": str(_ticket_id(ticket_id))})
        except NotFound:
            return None
        return _ticket(out)

    async def live_statuses(self, ticket_ids: list[int]) -> dict[int, tuple[str, str]]:
        """``{id: (status, queue)}`` of these tickets now, in one round trip (absent: none)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for tid in ticket_ids:
                pipe.hmget(keys.ticket(tid), "status", "queue")
            found = await self._call_redis(pipe.execute())
        return {tid: (s, q) for tid, (s, q) in zip(ticket_ids, found) if s is not None}

    async def ticket_token(self, ticket_id: int | str) -> str | None:
        """The tracking token of a ticket, for staff reprinting it."""
        return await self._call_redis(self.redis.hget(keys.ticket(_ticket_id(ticket_id)), "token"))

    async def ticket_by_token(self, token: str) -> Json | None:
        """The ticket a token opens, with ``version``, ``queue_name`` and ``clinic_name`` added."""
        try:
            out = await self._run("ticket", {"token": _check_token(token)})
        except (NotFound, Invalid):
            return None
        ticket = _ticket(out)
        ticket["version"] = out["v"]
        ticket["queue_name"] = out["queue"]["name"]
        ticket["clinic_name"] = out["clinic_name"]
        return ticket

    async def queue_snapshot(self, queue_id: str) -> Json:
        out = await self._run("queue_snapshot", {"queue": queue_id})
        q = out["queue"]
        return {"version": out["v"], "paused": q["paused"], **_queue_tickets(q)}

    async def clinic_snapshot(self, clinic_id: str) -> Json:
        out = await self.clinic_state(clinic_id)
        queues = [{**_queue_def(q), **_queue_tickets(q)} for q in out["queues"]]
        return {"version": out["v"], "clinic": out["clinic"], "queues": queues, "recent": out["recent"]}

    async def clinic_state(self, clinic_id: str) -> Json:
        """The raw snapshot (event-format ``TicketState``s with ``score``) a hub mirror starts
        from: ``{"v", "clinic": ClinicState, "queues": [QueueState + waiting + now_serving],
        "recent"}``."""
        return await self._run("clinic_snapshot", {"clinic": clinic_id})

    async def version(self, clinic_id: str) -> int:
        return int(await self._call_redis(self.redis.get(keys.version(clinic_id))) or 0)

    async def events_since(self, clinic_id: str, since: int, limit: int | None = None) -> list[Json] | None:
        """Events after version ``since`` in order, or None when the stream no longer holds
        them all (trimmed, or ``since`` is not a version this clinic has had)."""
        if not 0 <= since < 2**63 - 1:  # beyond a stream id: Redis would refuse the XRANGE
            return None
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(keys.version(clinic_id))
            pipe.xrange(keys.events(clinic_id), min=f"{since + 1}-0", max="+", count=limit)
            current, entries = await self._call_redis(pipe.execute())
        current = int(current or 0)
        if since > current or since < 0:
            return None
        if since == current:
            return []
        if not entries or entries[0][0] != f"{since + 1}-0":
            return None
        return [parse_event(fields["e"]) for _, fields in entries]


def _queue_def(q: Mapping[str, Any]) -> Json:
    """The API's queue (QueueDict) from a queue state: what staff see of it."""
    return {k: q.get(k, False) for k in live_schema.QUEUE.seen(live_schema.STAFF)}


def _hash_reading(f: live_schema.Field, value: str | None) -> Any:
    """A hash field as the API shows it (a flag as a boolean, a number as an integer)."""
    if f.enc is live_schema.Enc.FLAG:
        return value == "1"
    if f.enc in (live_schema.Enc.NUM, live_schema.Enc.TIME):
        return int(float(value or 0))
    return value


def _queue_tickets(q: Mapping[str, Any]) -> Json:
    waiting = [ticket_view(t, rank, q) for rank, t in enumerate(q["waiting"])]
    serving = sorted(q["now_serving"], key=lambda t: t["called_at"])
    return {"now_serving": [ticket_view(t, -1, q) for t in serving], "waiting": waiting}


def _ticket(out: Mapping[str, Any]) -> Json:
    return ticket_view(out["ticket"], out.get("rank", -1), out["queue"])


_ISSUE_PARAMETERS = frozenset({"name", "priority", "notify", "lang", "appointment_id", "source"})


def _issue_fields(fields: Mapping[str, str] | None) -> dict[str, str]:
    """``issue``'s further described fields, checked: each one the issue takes, as text."""
    if not fields:
        return {}
    allowed = set(live_schema.issue_args()) - _ISSUE_PARAMETERS
    for k, v in fields.items():
        if k not in allowed:
            raise Invalid(k, "cannot be set")
        _check_text(k, v)
    return dict(fields)


def _ticket_id(value: int | str) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise NotFound(f"unknown ticket {value!r}") from None
    if isinstance(value, bool) or n <= 0 or n > 2**53:
        raise NotFound(f"unknown ticket {value!r}")
    return n


def _check_token(token: str) -> str:
    if not isinstance(token, str) or not re.fullmatch(r"[A-Za-z0-9_-]{22,128}", token):
        raise Invalid("token", "not a ticket token")
    return token


def _check_slug(field: str, value: Any) -> None:
    if not isinstance(value, str) or not SLUG.match(value):
        raise Invalid(field, "must be 1-40 lowercase letters, digits or '-', starting with a letter or digit")


def _check_text(field: str, value: Any, max_len: int = NAME_MAX) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise Invalid(field, f"must be 1 to {max_len} characters")
    if any(ord(ch) < 32 or 0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        raise Invalid(field, "must not contain control characters")


def _check_int(field: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise Invalid(field, f"must be an integer from {lo} to {hi}")


def _check_idempotency_key(key: str | None) -> None:
    if key is not None and not (0 < len(key) <= 128):
        raise Invalid("Idempotency-Key", "must be 1 to 128 characters")


def _check_counter(counter: Any) -> None:
    _check_text("counter", counter, COUNTER_MAX)


def _check_timezone(tz: Any) -> None:
    try:
        if not isinstance(tz, str) or not tz:
            raise ValueError
        ZoneInfo(tz)
    except (ValueError, ZoneInfoNotFoundError):
        raise Invalid("timezone", "must be an IANA timezone such as Asia/Kolkata") from None


def _check_lang(lang: str) -> None:
    if lang not in LANGS:
        raise Invalid("lang", f"must be one of {', '.join(LANGS)}")


__all__ = [
    "ACTIONS", "ACTIVE", "QueueEngine", "TicketStatus", "TRANSITIONS", "RESULT_STATUS",
    "clinic_day", "format_label", "mask_name", "order_score",
    "parse_event", "public_ticket", "ticket_view",
]
