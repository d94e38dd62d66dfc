"""Clinic and queue definitions for the public pages, with no work that grows with a queue.

A process that holds sockets of a clinic keeps that clinic's mirror current from its event
stream (:mod:`qtraq_live.hub`); the pages read names, flags and waiting counts from it, so an
anonymous ``/join`` or ``/display`` request asks Redis nothing about the clinic. There is
nothing to invalidate: the mirror is the very state the clinic's screens show. A clinic with
no socket in this process costs one read that touches no ticket
(``engine.queue_definition`` / ``engine.clinic_info``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request

from ..queue_engine import QueueEngine
from ..realtime.mirror import Mirror

Json = dict[str, Any]


def _mirrors(request: Request) -> Mapping[str, Mirror]:
    hub = getattr(request.app.state, "hub", None)
    return hub.mirrors if hub is not None else {}


def _engine(request: Request) -> QueueEngine:
    engine: QueueEngine = request.app.state.engine
    return engine


async def clinic_info(request: Request, clinic_id: str) -> Json | None:
    """The clinic's own fields (``id, name, timezone, mask_names, lang``), None if unknown."""
    m = _mirrors(request).get(clinic_id)
    if m is not None:
        return dict(m.clinic)
    return await _engine(request).clinic_info(clinic_id)


async def queue_ids(request: Request, clinic_id: str) -> set[str]:
    """The ids of the clinic's queues (none if the clinic is unknown)."""
    m = _mirrors(request).get(clinic_id)
    if m is not None:
        return set(m.queues)
    clinic = await _engine(request).get_clinic(clinic_id)
    return {q["id"] for q in clinic["queues"]} if clinic else set()


async def queue_definition(request: Request, queue_id: str) -> tuple[Json, Json] | None:
    """(the queue's fields with ``n_waiting``, its clinic's fields), None if unknown."""
    for m in _mirrors(request).values():
        q = m.queues.get(queue_id)
        if q is not None:
            return {**q, "n_waiting": len(m.waiting.get(queue_id, ()))}, dict(m.clinic)
    return await _engine(request).queue_definition(queue_id)
