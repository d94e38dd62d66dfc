"""The hub's send paths against their fallbacks: CPU of the serving process per delivered message.

    python benchmarks/fastpaths_hub.py [--sockets 500] [--messages 200] [--rounds 3]

For each variant (``QTRAQ_FORCE_FALLBACKS`` naming what is off, :data:`VARIANTS`; ``hub_eager``
matters where the direct write does not apply, so it is measured with ``ws_write`` off too) a
child process serves ``--sockets`` WebSockets with uvicorn and
``ws_adapter.WS_IMPL`` and sends each of them ``--messages`` messages through the hub's
``hub_send.Outbox`` (the path of a press's fan-out), while a second process reads them all.
The serving process's own CPU time from the first message until every message was handed to
its transport, divided by the messages, is the figure: unlike latency it is hardly moved by
other load on the machine. Variants run in turn, ``--rounds`` times; the median is shown.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

import uvicorn  # noqa: E402
from starlette.websockets import WebSocket  # noqa: E402

from qtraq_live.realtime import ws_adapter  # noqa: E402
from qtraq_live.realtime.hub_send import Outbox, Subscriber  # noqa: E402

FORCE_ENV = "QTRAQ_FORCE_FALLBACKS"
VARIANTS = ["", "ws_write", "hub_eager", "ws_write,hub_eager", "ws_lean,ws_write", "ws_lean,ws_write,hub_eager"]
READER = """
import asyncio, sys
from websockets.asyncio.client import connect
async def one(url, n):
    async with connect(url, max_queue=None, compression=None) as ws:
        for _ in range(n):
            await ws.recv()
async def main(url, sockets, n):
    await asyncio.gather(*(one(url, n) for _ in range(sockets)))
asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""


async def serve(sockets: int, messages: int) -> dict[str, float]:
    subs: list[Subscriber] = []
    delivered = 0
    all_open = asyncio.Event()

    def sent(sub: Subscriber, version: int) -> None:
        nonlocal delivered
        delivered += 1

    outbox = Outbox(10_000, lambda sub: None, sent)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        ws = WebSocket(scope, receive, send)
        await ws.accept()
        sub = Subscriber(ws, send, "c", "display")
        sub.active = True
        subs.append(sub)
        if len(subs) == sockets:
            all_open.set()
        while (await receive())["type"] != "websocket.disconnect":
            pass

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, ws=ws_adapter.WS_IMPL, ws_per_message_deflate=False,
                                           lifespan="off", log_level="warning", loop="asyncio"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    reader = await asyncio.create_subprocess_exec(sys.executable, "-c", READER, f"ws://127.0.0.1:{port}/",
                                                  str(sockets), str(messages))
    await all_open.wait()
    body = json.dumps({"type": "update", "version": 0, "queues": [{"id": "gp", "waiting": ["A-001"] * 20}]})
    started = time.process_time()
    for v in range(1, messages + 1):
        for sub in subs:
            outbox.push(sub, v, body)
        await asyncio.sleep(0)  # a press at a time, as the hub's reader does
    while delivered < sockets * messages:
        await asyncio.sleep(0.001)
    cpu = time.process_time() - started
    await reader.wait()
    server.should_exit = True
    await task
    return {"cpu_us_per_message": cpu / (sockets * messages) * 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sockets", type=int, default=500)
    ap.add_argument("--messages", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(serve(args.sockets, args.messages))))
        return
    runs: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(args.rounds):
        for variant in VARIANTS:
            env = {**os.environ, FORCE_ENV: variant or "0", "PYTHONPATH": str(ROOT)}
            out = subprocess.run([sys.executable, __file__, "--child", "--sockets", str(args.sockets),
                                  "--messages", str(args.messages)], env=env, capture_output=True, text=True,
                                 check=True)
            runs[variant].append(json.loads(out.stdout.strip().splitlines()[-1])["cpu_us_per_message"])
    base = statistics.median(runs[""])
    print(f"hub sends: CPU µs of the serving process per delivered message, {args.sockets} sockets × "
          f"{args.messages} messages (median of {args.rounds})")
    for variant, figures in runs.items():
        median = statistics.median(figures)
        label = f"{variant} off" if variant else "none off (all fast)"
        print(f"{label:<26}{median:8.2f} µs  {(median / base - 1) * 100:+6.1f}%   runs: "
              + ", ".join(f"{f:.2f}" for f in figures))


if __name__ == "__main__":
    main()
