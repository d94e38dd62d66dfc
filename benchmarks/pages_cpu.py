"""CPU time of one anonymous page GET, in process: what the public pages cost the server itself.

    python benchmarks/pages_cpu.py                          # 100 queues x 20 waiting, 400 GETs a page
    python benchmarks/pages_cpu.py --waiting 200 --gets 1000
    PYTHONPATH=/path/to/an/older/tree python benchmarks/pages_cpu.py   # that tree's pages

The app (``create_app``, its real lifespan: Redis client, SQLite, hub) on a real redis-server,
one clinic of ``--queues`` self check-in queues with ``--waiting`` tickets each, and one socket
of the clinic in the hub (as in the hospital benchmark, where the hub holds the clinic's
mirror). Each page is called ``--gets`` times straight through the ASGI app (no HTTP client,
no network: the figure is the server's own work) and timed with the process's CPU clock
(``time.process_time``: on a shared box that is what stays comparable between runs); the
Redis commands each GET sends are counted from the server's ``INFO stats``. The pages are
those of the anonymous load of ``benchmarks/fanout.py --anon-rate``: ``/join/{q}``,
``/display/{clinic}?key=…`` and ``/t/{token}``, each in the clinic's language and with
``?lang=hi`` (a patient who picked Hindi); meanwhile a real ``next`` press on a random queue
every ``--press-every`` GETs (untimed: the benchmark's mix of 20 presses/s and 200 GETs/s), so
pages that change with their queue are counted as they change.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout_servers import Redis  # noqa: E402

from qtraq_live.config import load_settings  # noqa: E402
from qtraq_live.realtime.hub_send import Subscriber  # noqa: E402
from qtraq_live.record import access  # noqa: E402
from qtraq_live.web.app import create_app  # noqa: E402

CLINIC = "hosp"


async def nothing(message: Any) -> None:
    """The held socket's send: never used (no press happens)."""


def asgi_get(app: Any, path: str) -> Callable[[], Any]:
    """A coroutine function that GETs ``path`` through the app and returns the status."""
    raw_path, _, query = path.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": raw_path, "raw_path": raw_path.encode(), "root_path": "",
             "query_string": query.encode(), "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000),
             "headers": [(b"host", b"127.0.0.1:8000"), (b"accept", b"text/html")]}

    async def get() -> int:
        status = 0

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(dict(scope), receive, send)
        return status

    return get


async def run(args: argparse.Namespace, redis_url: str) -> None:
    settings = load_settings({"QTRAQ_REDIS_URL": redis_url, "QTRAQ_DATA_DIR": tempfile.mkdtemp()})
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        engine, redis = app.state.engine, app.state.redis
        await engine.create_clinic(CLINIC, "District Hospital", timezone="Asia/Kolkata")
        queues = [f"opd{i}" for i in range(args.queues)]
        tokens = []
        for q in queues:
            await engine.create_queue(CLINIC, q, f"OPD {q}", "A", self_checkin=True)
            for _ in range(args.waiting):
                tokens.append((await engine.issue(q, name="Ramesh Kumar"))["token"])
        key = await access.create_display_key(app.state.store, redis, CLINIC)
        hub = app.state.hub
        held = Subscriber(None, nothing, CLINIC, "display", key_hash="bench")  # type: ignore[arg-type]
        hub.join(held)
        await hub.mirror(CLINIC)
        pages = {
            "/join/{q}": lambda: f"/join/{random.choice(queues)}",
            "/display/{clinic}?key=": lambda: f"/display/{CLINIC}?key={key}",
            "/t/{token}": lambda: f"/t/{random.choice(tokens)}",
        }
        print(f"{args.queues} queues x {args.waiting} waiting, {args.gets} GETs a page (after {args.warm} to warm up), "
              f"a press before every {args.press_every or 'no'}-th GET")
        for name, pick in pages.items():
            for lang in ("", "lang=hi"):
                def path() -> str:
                    p = pick()
                    return p + ("&" if "?" in p else "?") + lang if lang else p
                label = name + ("&" if "?" in name else "?") + lang if lang else name
                for _ in range(args.warm):
                    await asgi_get(app, path())()
                cpu: list[float] = []
                statuses = set()
                commands = 0
                for i in range(args.gets):
                    if args.press_every and i % args.press_every == 0:  # as the desk presses meanwhile
                        await engine.next(random.choice(queues), "1")
                        await hub.caught_up(CLINIC, await engine.version(CLINIC))
                    call = asgi_get(app, path())
                    before = int((await redis.info("stats"))["total_commands_processed"])
                    began = time.process_time()
                    statuses.add(await call())
                    cpu.append((time.process_time() - began) * 1e6)
                    commands += int((await redis.info("stats"))["total_commands_processed"]) - before - 1
                cpu.sort()
                print(f"  {label:32} CPU per GET: p50 {statistics.median(cpu):6.0f} µs, "
                      f"mean {statistics.fmean(cpu):6.0f} µs; Redis commands per GET "
                      f"{commands / args.gets:.1f}; status {sorted(statuses)}")
        hub.leave(held)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queues", type=int, default=100)
    parser.add_argument("--waiting", type=int, default=20, help="waiting tickets per queue")
    parser.add_argument("--gets", type=int, default=400, help="GETs timed per page and language")
    parser.add_argument("--warm", type=int, default=50)
    parser.add_argument("--press-every", type=int, default=10,
                        help="a 'next' press on a random queue before every N-th GET (0: none); "
                             "10 is the benchmark's 20 presses/s beside 200 GETs/s")
    args = parser.parse_args()
    random.seed(17)
    redis = Redis(Path(tempfile.mkdtemp(prefix="qtraq-pages-")))
    try:
        asyncio.run(run(args, redis.url))
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
