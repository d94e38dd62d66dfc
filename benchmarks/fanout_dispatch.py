"""CPU time of the hub's fan-out per press, in process: what a change costs the hub itself.

    python benchmarks/fanout_dispatch.py                       # hospital: 100 queues x 100 patients
    python benchmarks/fanout_dispatch.py --queues 100 --patients 360 --presses 300
    PYTHONPATH=/path/to/an/older/tree python benchmarks/fanout_dispatch.py   # that tree's hub

One clinic of ``--queues`` queues, each with ``--patients`` watching patients (plus tickets
ahead that the presses call), 20 displays showing 5 queues each and 10 reception consoles, all
as the hub's subscribers, each written to as the lean WebSocket protocol writes (the frame is
made) through a transport that sends nothing (no system call, no event loop turn). Each
press is a real ``engine.next`` on a real redis-server; its event is read back from the
stream and handed to ``Hub._dispatch``, timed with the process's CPU clock (less disturbed by
other processes than a wall clock: on a shared box that is what makes this comparable between
runs), and counted: how many messages the fan-out wrote. ``docs/benchmarks.md`` has the
figures. An older tree runs the same way if it has ``ws_protocol.text_frame`` (#17's last round).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout_servers import Redis  # noqa: E402

from qtraq_live.config import load_settings  # noqa: E402
from qtraq_live.hub import Hub  # noqa: E402
from qtraq_live.queue_engine import QueueEngine  # noqa: E402
from qtraq_live.realtime.hub_send import Subscriber  # noqa: E402
from qtraq_live.realtime.mirror import Mirror  # noqa: E402
from qtraq_live.realtime.ws_protocol import text_frame  # noqa: E402

DISPLAYS, QUEUES_PER_DISPLAY, RECEPTIONS = 20, 5, 10


async def nothing(message: Any) -> None:
    """A send that a socket keeping up would do: completes without suspending."""


SENT = [0]  # messages written, all sockets together


def lean_write(text: str) -> bool:
    """What the lean protocol's ``write_text`` does on a socket that keeps up, but the system
    call: the frame is made and handed to a transport that keeps nothing."""
    sink(text_frame(text.encode()))
    SENT[0] += 1
    return True


def sink(data: bytes) -> None:
    """A transport's ``write`` that sends nowhere."""


def subscriber(clinic: str, kind: str, ticket: int | None = None, shows: frozenset[str] | None = None) -> Subscriber:
    sub = Subscriber(None, nothing, clinic, kind, ticket_id=ticket,  # type: ignore[arg-type]
                     key_hash="bench" if kind == "display" else None, allowed=shows)
    sub.write = lean_write  # as under the lean protocol, the server's default
    sub.active = True
    return sub


async def run(args: argparse.Namespace, redis_url: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url, decode_responses=True)
    engine = QueueEngine(client)
    clinic = "hosp"
    queues = [f"hosp-q{i}" for i in range(args.queues)]
    await engine.create_clinic(clinic, "District Hospital", timezone="UTC")
    lead = args.presses // args.queues * 2 + 10
    watched: dict[str, list[dict[str, Any]]] = {}
    for q in queues:
        await engine.create_queue(clinic, q, f"OPD {q}", "A")
        for _ in range(lead):
            await engine.issue(q)
        watched[q] = [await engine.issue(q) for _ in range(args.patients)]
    settings = load_settings({"QTRAQ_REDIS_URL": redis_url, "QTRAQ_DATA_DIR": tempfile.mkdtemp()})
    hub = Hub(engine, settings)
    m = Mirror(await engine.clinic_state(clinic))
    hub.mirrors[clinic] = m
    place = getattr(hub, "place", None)  # a hub without the index files nothing by queue
    subs = []
    for q in queues:
        for t in watched[q]:
            sub = subscriber(clinic, "patient", t["id"])
            hub.join(sub)
            if place is not None:
                place(sub, q)
            subs.append(sub)
    for i in range(DISPLAYS):
        shown = frozenset(queues[(i * QUEUES_PER_DISPLAY + k) % len(queues)] for k in range(QUEUES_PER_DISPLAY))
        subs.append(subscriber(clinic, "display", shows=shown))
        hub.join(subs[-1])
    for _ in range(RECEPTIONS):
        subs.append(subscriber(clinic, "reception"))
        hub.join(subs[-1])

    cpu_ms, reached = [], []
    for _ in range(args.presses):
        q = random.choice(queues)
        await engine.next(q, "1")
        (_, fields), = await client.xrange(f"qt:c:{clinic}:events", min=f"{m.version + 1}-0", count=1)
        SENT[0] = 0
        began = time.process_time()
        hub._dispatch(clinic, fields["e"])
        cpu_ms.append((time.process_time() - began) * 1000)
        reached.append(SENT[0])
    await client.aclose()
    cpu_ms.sort()
    print(f"{args.queues} queues x {args.patients} patients + {DISPLAYS} displays + {RECEPTIONS} consoles "
          f"= {len(subs)} subscribers; {args.presses} presses")
    print(f"fan-out CPU per press: p50 {statistics.median(cpu_ms):.2f} ms, "
          f"p90 {cpu_ms[int(len(cpu_ms) * 0.9)]:.2f} ms, mean {statistics.fmean(cpu_ms):.2f} ms; "
          f"messages per press: {statistics.fmean(reached):.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queues", type=int, default=100)
    parser.add_argument("--patients", type=int, default=100, help="watching patients per queue")
    parser.add_argument("--presses", type=int, default=200)
    args = parser.parse_args()
    random.seed(17)
    redis = Redis(Path(tempfile.mkdtemp(prefix="qtraq-dispatch-")))
    try:
        asyncio.run(run(args, redis.url))
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
