"""An in-memory mirror of one clinic's live queues, kept current by applying its events.

Pure state and payloads for the hub (no asyncio, no Redis): built from
``engine.clinic_state()`` at version V, it applies events V+1, V+2, … (each carries the
post-state of every ticket and queue it touched) and answers, without a round trip, every
waiting ticket's position and ETA, a display's or reception's snapshot, the update for an
event, and a patient's flat view. Message shapes are documented in ``docs/fanout.md``.
"""

from __future__ import annotations

import bisect
import json
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

from ..engine.eta import Estimator, estimate, queue_wait_s
from ..queue_engine import mask_name, ticket_view

Json = dict[str, Any]

dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode  # one encoder, not one per call

WAITING = "waiting"
AT_COUNTER = frozenset({"called", "serving"})
CALL_EVENTS = frozenset({"called", "recalled"})
RECENT_KEPT = 20  # as many as Redis keeps
RECENT_SHOWN = 10
DISPLAY_FIELDS = ("id", "label", "queue", "status", "counter")
HIDDEN_FROM_RECEPTION = ("position", "ahead", "eta_s", "eta_low_s", "eta_high_s")
QUEUE_DETAIL = ("avg_service_s", "self_checkin", "notify_ahead", "archived")


def _waiting_delta(ev: Mapping[str, Any]) -> dict[str, int]:
    """How an event changed each queue's number of waiting tickets."""
    delta: dict[str, int] = {}
    for t in ev["tickets"]:
        before = ev.get("from_queue") if ev["type"] == "transferred" else t["queue"]
        if t.get("prev_status") == WAITING and before:
            delta[before] = delta.get(before, 0) - 1
        if t["status"] == WAITING:
            delta[t["queue"]] = delta.get(t["queue"], 0) + 1
    return delta


def touched_queues(ev: Mapping[str, Any]) -> set[str]:
    """Queues whose lists or header an event may have changed (a transfer touches both)."""
    out = {q["id"] for q in ev["queues"]} | {t["queue"] for t in ev["tickets"]}
    if ev.get("from_queue"):
        out.add(ev["from_queue"])
    return out


def display_entry(t: Mapping[str, Any], mask: bool, cleared_before_ms: int = 0) -> Json:
    """A ticket as a TV gets it. A name goes only where the screen shows one: a ticket at a
    counter called at or after ``cleared_before_ms`` (an idle counter's older call has left
    the screen), masked when the clinic asks; a waiting ticket is shown by its label, a
    finished one leaves the screen (issue #21 item 18)."""
    out = {k: t.get(k) for k in DISPLAY_FIELDS}
    called_at = int(t.get("called_at") or 0)
    shown = t.get("status") in AT_COUNTER and called_at >= cleared_before_ms
    out["name"] = None if not shown else mask_name(t.get("name")) if mask else t.get("name")
    out["order"] = int(t["score"])
    out["called_at"] = called_at
    return out


def reception_entry(t: Mapping[str, Any]) -> Json:
    out = ticket_view(t, -1, {})
    for k in HIDDEN_FROM_RECEPTION:
        del out[k]
    out["order"] = int(t["score"])
    return out


def queue_header(q: Mapping[str, Any], n_waiting: int, detail: bool) -> Json:
    out: Json = {
        "id": q["id"], "name": q["name"], "prefix": q["prefix"], "paused": bool(q["paused"]),
        "avg_wait_s": queue_wait_s(n_waiting, q),
        "service_s": int(q["ema_s"]), "counters_open": int(q["counters_open"]),
        "archived": bool(q.get("archived")),  # an archived queue leaves the screens
    }
    if detail:
        out.update({k: q[k] for k in QUEUE_DETAIL})
    return out


def patient_fields(t: Mapping[str, Any], rank: int, q: Mapping[str, Any], clinic_name: str) -> Json:
    """A patient's flat view: the fields of ``public_ticket(ticket_view(...))`` (without version),
    built directly: the API's ticket formats four timestamps that a patient never sees, and a
    big OPD renders 2,000 of these per press."""
    waiting = t["status"] == WAITING and rank >= 0
    eta = estimate(rank, q) if waiting else (None, None, None)
    return {
        "label": t.get("label"), "status": t.get("status"),
        "position": rank + 1 if waiting else None, "ahead": rank if waiting else None,
        "eta_s": eta[0], "eta_low_s": eta[1], "eta_high_s": eta[2],
        "counter": t.get("counter"), "queue": {"name": q["name"]}, "clinic": {"name": clinic_name},
    }


def call_of(ev: Mapping[str, Any]) -> Json | None:
    """The ticket a called/recalled event calls (the last one called), else None."""
    if ev["type"] not in CALL_EVENTS:
        return None
    called = [t for t in ev["tickets"] if t["status"] in AT_COUNTER]
    return called[-1] if called else None


class Mirror:
    """One clinic as the hub sees it. ``version`` is the last event applied."""

    def __init__(self, state: Mapping[str, Any], *, keep_events: int = 512, keep_finished: int = 5000) -> None:
        self.version = int(state["v"])
        self.base_version = self.version  # tickets untouched since then are unknown here
        self.clinic: Json = dict(state["clinic"])
        self.queues: dict[str, Json] = {}
        self.waiting: dict[str, list[tuple[int, int]]] = {}  # queue -> sorted (score, id)
        self.serving: dict[str, dict[int, None]] = {}  # queue -> ids at a counter
        self.tickets: dict[int, Json] = {}
        self.recent: deque[Json] = deque(state.get("recent") or [], maxlen=RECENT_KEPT)
        self.events: deque[Json] = deque(maxlen=keep_events)
        self._finished: OrderedDict[int, None] = OrderedDict()
        # ticket id -> (queue name, clinic name, serialised view before/after its numbers);
        # dropped when the ticket changes; by name, as a queue's header is replaced by every event
        self._parts: dict[int, tuple[str, str, str, str]] = {}
        self._keep_finished = keep_finished
        for q in state["queues"]:
            self._set_queue(q)
            for t in [*q["waiting"], *q["now_serving"]]:
                self._set_ticket(t)

    # -- applying events -------------------------------------------------------------

    def apply(self, ev: Json) -> Literal["applied", "stale", "gap"]:
        """Apply the next event. ``stale``: already applied; ``gap``: versions are missing
        (the stream was trimmed under us), nothing changed and the mirror must be rebuilt."""
        v = int(ev["v"])
        if v <= self.version:
            return "stale"
        if v != self.version + 1:
            return "gap"
        if ev.get("clinic_state"):
            self.clinic = dict(ev["clinic_state"])
        for q in ev["queues"]:
            self._set_queue(q)
        for t in ev["tickets"]:
            self._set_ticket(t)
        called = call_of(ev)
        if called is not None:
            self.recent.appendleft({"label": called["label"], "counter": called["counter"],
                                    "queue": called["queue"], "at": ev["at"]})
        self.version = v
        self.events.append(ev)
        return "applied"

    def _set_queue(self, q: Mapping[str, Any]) -> None:
        header = {k: v for k, v in q.items() if k not in ("waiting", "now_serving")}
        self.queues[q["id"]] = header
        self.waiting.setdefault(q["id"], [])
        self.serving.setdefault(q["id"], {})

    def _set_ticket(self, state: Mapping[str, Any]) -> None:
        t = dict(state)
        t["score"] = int(t["score"])
        tid = int(t["id"])
        old = self.tickets.get(tid)
        if old is not None:
            if old["status"] == WAITING:
                lst = self.waiting[old["queue"]]
                i = bisect.bisect_left(lst, (old["score"], tid))
                if i < len(lst) and lst[i][1] == tid:
                    del lst[i]
            self.serving.get(old["queue"], {}).pop(tid, None)
        self.tickets[tid] = t
        self._parts.pop(tid, None)
        self._finished.pop(tid, None)
        if t["status"] == WAITING:
            bisect.insort(self.waiting.setdefault(t["queue"], []), (t["score"], tid))
        elif t["status"] in AT_COUNTER:
            self.serving.setdefault(t["queue"], {})[tid] = None
        else:
            self._finished[tid] = None
            if len(self._finished) > self._keep_finished:
                gone = self._finished.popitem(last=False)[0]
                self.tickets.pop(gone, None)
                self._parts.pop(gone, None)

    # -- reads -----------------------------------------------------------------------

    def rank(self, tid: int) -> int:
        t = self.tickets[tid]
        if t["status"] != WAITING:
            return -1
        return bisect.bisect_left(self.waiting[t["queue"]], (t["score"], tid))

    def counts(self) -> dict[str, int]:
        return {q: len(lst) for q, lst in self.waiting.items()}

    def _waiting_states(self, q: str) -> list[Json]:
        return [self.tickets[tid] for _, tid in self.waiting[q]]

    def _serving_states(self, q: str) -> list[Json]:
        return sorted((self.tickets[tid] for tid in self.serving[q]), key=lambda t: int(t["called_at"] or 0))

    def patient_view(self, tid: int) -> Json | None:
        """The flat fields of ``GET /t/{token}`` (without version), or None if unknown here."""
        t = self.tickets.get(tid)
        if t is None:
            return None
        q, clinic_name = self.queues[t["queue"]], self.clinic["name"]
        view = patient_fields(t, self.rank(tid), q, clinic_name)
        parts = self._parts.get(tid)
        if parts is None or parts[0] != q["name"] or parts[1] != clinic_name:
            self._cut(tid, view, q["name"], clinic_name)  # ready for the socket's first update
        return view

    def _cut(self, tid: int, view: Json, queue_name: str, clinic_name: str) -> tuple[str, str, str, str]:
        """A view's fields that do not move with every call, serialised around the place where
        those that do go (``patient_body_maker``), kept while the queue's and clinic's names stay."""
        head = dumps({k: view[k] for k in ("label", "status")})[:-1]
        tail = dumps({k: view[k] for k in ("counter", "queue", "clinic")})[1:]
        parts = self._parts[tid] = (queue_name, clinic_name, head, tail)
        return parts

    def patient_body_maker(self) -> Callable[[int], str | None]:
        """``body(tid)``: ``dumps(patient_view(tid))``, None if unknown here, fast: a queue's
        ranks and waits are worked out once, at its first ticket, and only the numbers that
        move with every call are formatted per view. The fan-out makes each body right before
        writing it, so the first phones have theirs while the last are still being made (a
        big OPD renders 2,000 views per press). For the mirror as it is now: a new one per change."""
        ranks: dict[str, dict[int, int]] = {}
        estimators: dict[str, Estimator] = {}
        clinic_name = self.clinic["name"]
        tickets, queues, waiting, cached = self.tickets, self.queues, self.waiting, self._parts

        def body(tid: int) -> str | None:
            t = tickets.get(tid)
            if t is None:
                return None
            qid = t["queue"]
            q = queues[qid]
            parts = cached.get(tid)
            if parts is None or parts[0] != q["name"] or parts[1] != clinic_name:
                parts = self._cut(tid, patient_fields(t, -1, q, clinic_name), q["name"], clinic_name)
            if t["status"] != WAITING:
                return (f'{parts[2]},"position":null,"ahead":null,"eta_s":null,'
                        f'"eta_low_s":null,"eta_high_s":null,{parts[3]}')
            of_queue = ranks.get(qid)
            if of_queue is None:
                of_queue = ranks[qid] = {i: n for n, (_, i) in enumerate(waiting[qid])}
            waits = estimators.get(qid)
            if waits is None:
                waits = estimators[qid] = Estimator(q)
            return f"{parts[2]},{waits.fields(of_queue[tid])},{parts[3]}"

        return body

    def display_snapshot(self, allowed: frozenset[str] | None = None, cleared_before_ms: int = 0) -> Json:
        """A screen's snapshot: every queue, or those of its ``?queues=`` filter; names only
        as :func:`display_entry` lets them go."""
        mask = bool(self.clinic.get("mask_names"))
        queues = [{**queue_header(q, len(self.waiting[qid]), False),
                   "now_serving": [display_entry(t, mask, cleared_before_ms) for t in self._serving_states(qid)],
                   "waiting": [display_entry(t, mask) for t in self._waiting_states(qid)]}
                  for qid, q in self.queues.items() if allowed is None or qid in allowed]
        clinic = {k: self.clinic.get(k) for k in ("id", "name", "mask_names")}
        recent = [r for r in self.recent if allowed is None or r["queue"] in allowed]
        return {"type": "snapshot", "version": self.version, "clinic": clinic, "queues": queues,
                "recent": recent[:RECENT_SHOWN]}

    def reception_snapshot(self, allowed: frozenset[str] | None) -> Json:
        queues = [{**queue_header(q, len(self.waiting[qid]), True),
                   "now_serving": [reception_entry(t) for t in self._serving_states(qid)],
                   "waiting": [reception_entry(t) for t in self._waiting_states(qid)]}
                  for qid, q in self.queues.items() if allowed is None or qid in allowed]
        recent = [r for r in self.recent if allowed is None or r["queue"] in allowed]
        return {"type": "snapshot", "version": self.version, "clinic": dict(self.clinic),
                "queues": queues, "recent": recent[:RECENT_SHOWN]}

    # -- updates ---------------------------------------------------------------------

    def display_update(self, ev: Mapping[str, Any], counts: Mapping[str, int],
                       allowed: frozenset[str] | None = None, cleared_before_ms: int = 0) -> Json | None:
        """What a screen shows of a change, limited to its ``?queues=`` filter (None: nothing);
        names only as :func:`display_entry` lets them go."""
        queues, tickets = _shown(ev, allowed)
        if queues is None:
            return None
        mask = bool(self.clinic.get("mask_names"))
        return self._update(ev, [queue_header(q, counts.get(q["id"], 0), False) for q in queues],
                            [display_entry(t, mask, cleared_before_ms) for t in tickets], allowed)

    def reception_update(self, ev: Mapping[str, Any], counts: Mapping[str, int],
                         allowed: frozenset[str] | None) -> Json | None:
        """Full detail, limited to the queues a doctor may see (None: nothing to see)."""
        queues, tickets = _shown(ev, allowed)
        if queues is None:
            return None
        return self._update(ev, [queue_header(q, counts.get(q["id"], 0), True) for q in queues],
                            [reception_entry(t) for t in tickets], allowed)

    @staticmethod
    def _update(ev: Mapping[str, Any], queues: list[Json], tickets: list[Json],
                allowed: frozenset[str] | None) -> Json:
        out: Json = {"type": "update", "version": int(ev["v"]), "event": ev["type"], "queues": queues,
                     "tickets": tickets}
        called = call_of(ev)
        if called is not None and (allowed is None or called["queue"] in allowed):
            out["call"] = {"label": called["label"], "counter": called["counter"],
                           "queue": called["queue"], "at": ev["at"]}
        return out

    def history(self, events: Sequence[Json]) -> list[tuple[Json, dict[str, int]]] | None:
        """Each of ``events`` (which must end at this mirror's version) with the waiting counts
        right after it, worked out backwards from now, so a replayed update is rendered exactly
        as it was live. None when it cannot be (not contiguous, or a clinic setting changed)."""
        if not events or int(events[-1]["v"]) != self.version:
            return None
        versions = [int(ev["v"]) for ev in events]
        if versions != list(range(versions[0], versions[0] + len(versions))):
            return None
        if any(ev.get("clinic_state") for ev in events):
            return None
        counts = self.counts()
        out = []
        for ev in reversed(events):
            out.append((ev, dict(counts)))
            for q, d in _waiting_delta(ev).items():
                counts[q] = counts.get(q, 0) - d
        out.reverse()
        return out

    def events_after(self, since: int) -> list[Json] | None:
        """Events after ``since`` from the ring, or None when the ring no longer reaches back."""
        if since == self.version:
            return []
        if not self.events or int(self.events[0]["v"]) > since + 1:
            return None
        return [ev for ev in self.events if int(ev["v"]) > since]


def _shown(ev: Mapping[str, Any], allowed: frozenset[str] | None) -> tuple[list[Json] | None, list[Json]]:
    """The queue states and ticket states of an event that a screen limited to ``allowed``
    shows (a ticket transferred out of a shown queue too, so the screen drops it); queues
    None when it shows nothing of the event."""
    if allowed is None:
        return ev["queues"], ev["tickets"]
    queues = [q for q in ev["queues"] if q["id"] in allowed]
    before = ev.get("from_queue")
    tickets = [t for t in ev["tickets"] if t["queue"] in allowed or before in allowed]
    if not queues and not tickets:
        return None, []
    return queues, tickets


def watchers_touched(ev: Mapping[str, Any], tickets: Iterable[int], mirror: Mirror) -> list[int]:
    """Of the given ticket ids, those whose patient view an event may have changed."""
    ids = {int(t["id"]) for t in ev["tickets"]}
    queues = touched_queues(ev)
    out = []
    for tid in tickets:
        t = mirror.tickets.get(tid)
        if tid in ids or (t is not None and t["queue"] in queues):
            out.append(tid)
    return out
