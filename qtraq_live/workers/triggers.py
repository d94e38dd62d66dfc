"""Which notices a queue event calls for: pure rules over an event and the clinic mirror.

Each :class:`Trigger` names a ticket, a notice kind, the template context it needs and the
``check`` the worker repeats right before sending (see jobs.stale_reason). Only tickets with
``notify`` set get any.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..engine.eta import estimate
from ..realtime.mirror import Mirror, touched_queues

Json = dict[str, Any]

# event type -> (notice kind, statuses the ticket must still be in when the notice is sent)
STATUS_NOTICES: dict[str, tuple[str, tuple[str, ...]]] = {
    "called": ("called", ("called",)),
    "recalled": ("recalled", ("called", "serving")),
    "skipped": ("skipped", ("skipped",)),
    "no_show": ("no_show", ("no_show",)),
    "cancelled": ("cancelled", ("cancelled",)),
}
PATIENT = "patient"  # the actor of a cancel the patient made themselves: no notice for that


@dataclass(frozen=True)
class Trigger:
    kind: str
    ticket: Mapping[str, Any]  # TicketState
    version: int  # the event's version ("ahead" uses its queue instead: once per ticket and queue)
    context: Json = field(default_factory=dict)
    check: Json = field(default_factory=dict)

    @property
    def dedupe(self) -> str:
        tail = self.ticket["queue"] if self.kind == "ahead" else "once" if self.kind == "feedback_request" \
            else str(self.version)
        return f"t{self.ticket['id']}:{self.kind}:{tail}"


def _eta_min(mirror: Mirror, queue: str, ahead: int) -> int:
    q = mirror.queues[queue]
    return max(1, round(estimate(ahead, q).eta_s / 60))


def _waiting_check(t: Mapping[str, Any]) -> Json:
    return {"ticket": int(t["id"]), "status": ["waiting"], "queue": t["queue"]}


def status_triggers(ev: Mapping[str, Any], mirror: Mirror) -> list[Trigger]:
    """Notices about a ticket's own change: issued, called, recalled, skipped, no-show, cancelled."""
    v = int(ev["v"])
    out: list[Trigger] = []
    for t in ev["tickets"]:
        if not t.get("notify"):
            continue
        if ev["type"] == "issued" and t["status"] == "waiting":
            ahead = max(mirror.rank(int(t["id"])), 0) if int(t["id"]) in mirror.tickets else 0
            out.append(Trigger("issued", t, v, {"ahead": ahead, "eta_min": _eta_min(mirror, t["queue"], ahead)},
                               _waiting_check(t)))
            continue
        rule = STATUS_NOTICES.get(ev["type"])
        if rule is None or t["status"] not in rule[1]:
            continue
        if ev["type"] == "called" and t.get("prev_status") in ("called", "serving"):
            continue  # the previous patient of that counter, finished by the same press
        if ev["type"] == "cancelled" and ev.get("actor") == PATIENT:
            continue
        out.append(Trigger(rule[0], t, v, {"counter": t.get("counter") or ""},
                           {"ticket": int(t["id"]), "status": list(rule[1])}))
    return out + feedback_triggers(ev)


def feedback_triggers(ev: Mapping[str, Any]) -> list[Trigger]:
    """A link to rate the visit, once, to a patient whose ticket became ``done`` (by any event:
    a "next" press finishes the counter's previous patient inside its "called" event)."""
    return [Trigger("feedback_request", t, int(ev["v"]), {}, {"ticket": int(t["id"]), "status": ["done"]})
            for t in ev["tickets"] if t.get("notify") and t["status"] == "done" and t.get("prev_status") != "done"]


def ahead_triggers(ev: Mapping[str, Any], mirror: Mirror, already: set[int], applied: bool = True) -> list[Trigger]:
    """"N ahead of you" for waiting tickets that have reached their queue's threshold.

    ``already`` holds tickets told once (or told their place on issue); it is updated here.
    An event the mirror had already seen (``applied`` false: a replay after a restart) is
    older than the mirror's places, so it only notes who was told their place on issue.
    """
    if ev["type"] in ("transferred", "requeued", "moved_back"):  # a new place in line: may be told again
        already.difference_update(int(t["id"]) for t in ev["tickets"])
    issued = {int(t["id"]) for t in ev["tickets"]} if ev["type"] == "issued" else set()
    out: list[Trigger] = []
    for qid in sorted(touched_queues(ev)):
        q = mirror.queues.get(qid)
        if q is None:
            continue
        limit = int(q["notify_ahead"])
        for rank, (_, tid) in enumerate(mirror.waiting.get(qid, [])[: limit + 1]):
            t = mirror.tickets[tid]
            if not t.get("notify") or tid in already or not (applied or tid in issued):
                continue
            already.add(tid)
            if tid in issued:
                continue  # its "issued" notice already says how many are ahead
            out.append(Trigger("ahead", t, int(ev["v"]), {"ahead": rank, "eta_min": _eta_min(mirror, qid, rank)},
                               {**_waiting_check(t), "max_ahead": limit}))
    return out


def pause_triggers(mirror: Mirror, queue: str, version: int) -> list[Trigger]:
    """Everyone waiting with notices on, once the queue has been paused long enough."""
    return [Trigger("paused", t, version, {}, {**_waiting_check(t), "paused_queue": queue})
            for t in (mirror.tickets[tid] for _, tid in mirror.waiting.get(queue, []))
            if t.get("notify")]


def finished(ev: Mapping[str, Any]) -> Iterable[int]:
    """Tickets an event took out of the queue for good (their caches can go)."""
    return (int(t["id"]) for t in ev["tickets"] if t["status"] in ("done", "no_show", "cancelled"))
