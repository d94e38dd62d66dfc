"""Every Prometheus metric family of qtraq-live, declared once (the scrape-time queue figures:
``engine/queue_figures.py``).

Labels carry route templates, socket kinds, queue ids, channels and outcomes only: never a
token, a name or a contact. Under ``serve`` every process (HTTP, duties, RQ workers) writes
its samples to ``PROMETHEUS_MULTIPROC_DIR`` (set by the supervisor before any child starts,
see :func:`use_multiprocess_dir`), and ``/metrics`` sums them. This module imports no web
framework, so the engine and the store can count their errors here. Meanings:
``docs/observability.md``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
WAIT_BUCKETS = (60, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200, 10800)

# web layer
HTTP_REQUESTS = Counter("qtraq_http_requests", "HTTP requests answered", ["method", "route", "status"])
HTTP_SECONDS = Histogram("qtraq_http_request_seconds", "HTTP request handling time", ["route"],
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
PRESS_SECONDS = Histogram("qtraq_press_seconds", "Handling time of a 'next' press, request to answer",
                          buckets=LATENCY_BUCKETS)
TICKETS_ISSUED = Counter("qtraq_tickets_issued", "Tickets issued", ["via"])
QUEUE_WAIT = Histogram("qtraq_queue_wait_seconds", "Time a called ticket waited, issue to call", ["queue"],
                       buckets=WAIT_BUCKETS)

# hub
WS_CONNECTIONS = Gauge("qtraq_ws_connections", "Open WebSocket subscribers", ["kind"], multiprocess_mode="livesum")
WS_MESSAGES = Counter("qtraq_ws_messages_sent", "WebSocket messages sent", ["kind"])
WS_RESYNCS = Counter("qtraq_ws_resyncs", "Sockets that fell behind and were sent a fresh snapshot", ["kind"])
WS_KINDS = ("display", "patient", "reception")
WS_SENT = {kind: WS_MESSAGES.labels(kind) for kind in WS_KINDS}  # the hub's hot path: no label lookup
for _kind in WS_KINDS:  # every kind shows from the start, at 0
    WS_CONNECTIONS.labels(_kind)
    WS_RESYNCS.labels(_kind)
PRESS_TO_SEND = Histogram("qtraq_press_to_send_seconds",
                          "From a call's event time to its first message handed to a socket (per hub process)",
                          buckets=LATENCY_BUCKETS)

# notices (counted once, where the primary copies the delivery stream into SQLite)
NOTICES = Counter("qtraq_notices", "Notice outcomes by channel", ["channel", "outcome"])
NOTICE_OUTCOMES = {"sent": "sent", "failed": "failed", "retrying": "retried", "dropped": "dropped"}

# ABDM Scan & Share (qtraq_live/abdm/)
ABDM_SHARES = Counter("qtraq_abdm_shares", "ABHA profile shares received, by outcome: issued (a new ticket), "
                      "repeat (the same ticket again), refused (an on-share error), duplicate (a redelivered "
                      "request), rejected (bad caller or payload: no reply)", ["outcome"])
ABDM_REPLIES = Counter("qtraq_abdm_replies", "On-share replies to the gateway, by result: sent, retried, "
                       "failed (given up), unknown (a worker died mid-call: not sent again)", ["result"])
for _outcome in ("issued", "repeat", "refused", "duplicate", "rejected"):
    ABDM_SHARES.labels(_outcome)
for _result in ("sent", "retried", "failed", "unknown"):
    ABDM_REPLIES.labels(_result)

# backing stores
REDIS_ERRORS = Counter("qtraq_redis_errors", "Redis calls that failed (connection lost, timeout)")
SQLITE_ERRORS = Counter("qtraq_sqlite_errors", "SQLite operations that failed on the file or disk")

# stream consumers (runtime/stream_consumer.py): persist, notify, webhooks, audit, notify-log
STREAM_ENTRIES = Counter("qtraq_stream_entries", "Stream entries handled and acknowledged", ["group"])
STREAM_FAILURES = Counter("qtraq_stream_failures", "Failed stream-consumer steps (retried after a backoff)",
                          ["group"])


def observe_call(ticket: Mapping[str, Any] | None) -> None:
    """The wait of a ticket just called (API ticket: ISO times)."""
    if not ticket or not ticket.get("created_at") or not ticket.get("called_at"):
        return
    waited = datetime.fromisoformat(ticket["called_at"]) - datetime.fromisoformat(ticket["created_at"])
    QUEUE_WAIT.labels(ticket["queue"]).observe(max(0.0, waited.total_seconds()))


def observe_press_to_send(at_ms: int) -> None:
    PRESS_TO_SEND.observe(max(0.0, time.time() - at_ms / 1000))


def count_notices(entries: Iterable[tuple[str, Mapping[str, str]]]) -> None:
    """Delivery-stream entries (``state``, ``channel``) to outcome counts."""
    for _, fields in entries:
        outcome = NOTICE_OUTCOMES.get(fields.get("state", ""))
        if outcome is not None:
            NOTICES.labels(fields.get("channel") or "unknown", outcome).inc()


# -- processes --------------------------------------------------------------------------------

def use_multiprocess_dir(path: Path) -> None:
    """Point this process and every child started after it at ``path``, emptied first.

    Call it in the supervisor before any child starts: prometheus_client picks its storage
    when a child imports it, and an unlabelled metric opens its file at import time."""
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("*.db"):
        old.unlink()
    os.environ[MULTIPROC_ENV] = str(path)


# -- scrape -----------------------------------------------------------------------------------

class _Default:
    """The process's own registry (single-process mode), as a collector."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


class _Fixed:
    """Families computed just before this scrape."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def forget_dead_processes(path: Path) -> None:
    """Drop the live gauges (open sockets) of processes that are gone: uvicorn replaces an
    HTTP process that died, and the dead one's sockets must not stay in the sum."""
    for file in path.glob("gauge_live*_*.db"):
        pid = int(file.stem.rsplit("_", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]
        except PermissionError:  # alive, another user's
            pass


def exposition(extra: Sequence[Metric] = ()) -> bytes:
    """The text format: every process's samples (multiprocess mode) or this one's, plus ``extra``."""
    registry = CollectorRegistry(auto_describe=False)
    if directory := os.environ.get(MULTIPROC_ENV):
        forget_dead_processes(Path(directory))
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Default())
    registry.register(_Fixed(extra))
    return generate_latest(registry)
