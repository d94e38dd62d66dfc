"""Who watches what in one clinic: the hub's subscribers indexed by queue and by ticket.

A change touches a few queues and tickets. The hub asks this index for exactly the sockets that
can see them, so a press in one department of a 100-department hospital visits that
department's sockets and no others (docs/fanout.md, "Cost follows change"):

- a screen (display or reception console) is filed under each queue it shows (``allowed``: a
  display's ``?queues=`` filter, a doctor's queues), or with the screens that show every queue;
- a patient socket is filed under its ticket, and the ticket under its queue, which follows the
  ticket when a transfer moves it.

An index, not a cache: it changes only when a socket comes or goes or a watched ticket moves,
never needs invalidating, and holds nothing a mirror holds. Pure bookkeeping: no asyncio, no
Redis.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Any

from .hub_send import Subscriber


class ClinicSubscribers:
    """The subscribers of one clinic in one hub process."""

    __slots__ = ("all", "everything", "screens", "tickets", "ticket_queue", "watched")

    def __init__(self) -> None:
        self.all: set[Subscriber] = set()
        self.everything: set[Subscriber] = set()  # screens that show every queue
        self.screens: dict[str, set[Subscriber]] = {}  # queue -> screens that show it
        self.tickets: dict[int, set[Subscriber]] = {}  # ticket -> patient sockets watching it
        self.ticket_queue: dict[int, str] = {}  # watched ticket -> its queue, once known
        self.watched: dict[str, set[int]] = {}  # queue -> watched tickets in it

    def __len__(self) -> int:
        return len(self.all)

    def __iter__(self) -> Iterator[Subscriber]:
        return iter(self.all)

    # -- coming and going ----------------------------------------------------------------

    def add(self, sub: Subscriber) -> None:
        """File a new socket. A patient is found by its ticket at once, by its queue once
        :meth:`place` (or an event naming its ticket) says which queue that is."""
        self.all.add(sub)
        if sub.kind == "patient":
            if sub.ticket_id is not None:
                self.tickets.setdefault(sub.ticket_id, set()).add(sub)
        elif sub.allowed is None:
            self.everything.add(sub)
        else:
            for q in sub.allowed:
                self.screens.setdefault(q, set()).add(sub)

    def remove(self, sub: Subscriber) -> None:
        if sub not in self.all:
            return
        self.all.discard(sub)
        if sub.kind == "patient":
            tid = sub.ticket_id
            if tid is None:
                return
            subs = self.tickets.get(tid)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self.tickets[tid]
                    self._unfile(tid)
        elif sub.allowed is None:
            self.everything.discard(sub)
        else:
            for q in sub.allowed:
                screens = self.screens.get(q)
                if screens is not None:
                    screens.discard(sub)
                    if not screens:
                        del self.screens[q]

    def place(self, tid: int, queue: str) -> None:
        """A watched ticket is (now) in ``queue``."""
        if tid not in self.tickets or self.ticket_queue.get(tid) == queue:
            return
        self._unfile(tid)
        self.ticket_queue[tid] = queue
        self.watched.setdefault(queue, set()).add(tid)

    def _unfile(self, tid: int) -> None:
        old = self.ticket_queue.pop(tid, None)
        if old is not None:
            in_old = self.watched.get(old)
            if in_old is not None:
                in_old.discard(tid)
                if not in_old:
                    del self.watched[old]

    def follow(self, tickets: Iterable[Mapping[str, Any]]) -> None:
        """An event's ticket states: watched tickets that changed queue are filed anew."""
        if not self.tickets:
            return
        for t in tickets:
            tid = int(t["id"])
            if tid in self.tickets:
                self.place(tid, t["queue"])

    def refile(self, tickets: Mapping[int, Mapping[str, Any]]) -> None:
        """A mirror was rebuilt (versions were skipped): file each watched ticket it knows
        under its queue now, as a transfer among the skipped events may have moved it."""
        for tid in list(self.tickets):
            t = tickets.get(tid)
            if t is not None:
                self.place(tid, t["queue"])

    # -- what a change reaches -------------------------------------------------------------

    def screens_for(self, queues: Collection[str]) -> list[Subscriber]:
        """The displays and reception consoles that show any of ``queues``, each once."""
        if len(queues) == 1:
            (q,) = queues
            shown = self.screens.get(q)
            return [*self.everything, *shown] if shown else list(self.everything)
        found: set[Subscriber] = set(self.everything)
        for q in queues:
            found.update(self.screens.get(q, ()))
        return list(found)

    def patients_for(self, queues: Collection[str], ticket_ids: Iterable[int]) -> list[Subscriber]:
        """The patient sockets whose view a change may alter: those watching a ticket it
        names or a ticket in a queue it touched, each once."""
        tids: set[int] = set()
        for q in queues:
            tids.update(self.watched.get(q, ()))
        tids.update(tid for tid in ticket_ids if tid in self.tickets)
        out: list[Subscriber] = []
        for tid in tids:
            out.extend(self.tickets[tid])
        return out

    def displays(self) -> list[Subscriber]:
        """Every display (their keys are re-checked now and then)."""
        found = set(self.everything)
        for shown in self.screens.values():
            found.update(shown)
        return [s for s in found if s.key_hash is not None]
