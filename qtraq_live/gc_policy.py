"""Keep garbage-collection pauses short in long-running processes (HTTP/hub, duties).

A full collection walks every tracked object: with 10,000 open sockets one took 1.2 s in the
fan-out benchmark (docs/benchmarks.md) and held back every screen for as long; even an idle
server's modules, routes and templates cost 30-40 ms a pass, every second or so under load.
So what exists once start-up is over, and then once a minute everything that has survived
until then (sockets, their tasks, the mirrors), is moved out of the collector's sight with
``gc.freeze()``; collections then walk only what is new. Once an hour the frozen objects are
handed back and collected in one go, so the reference cycles of sockets closed since are still
freed: one pause an hour, instead of one every few seconds.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

log = logging.getLogger(__name__)

FREEZE_EVERY_S = 60.0
THAW_EVERY_S = 3600.0


async def freeze_survivors(freeze_every_s: float = FREEZE_EVERY_S, thaw_every_s: float = THAW_EVERY_S) -> None:
    """Run for the life of the process (a task started once start-up is over)."""
    gc.collect()  # start-up garbage goes now, not into the frozen set
    gc.freeze()
    thawed_at = time.monotonic()
    while True:
        await asyncio.sleep(freeze_every_s)
        if time.monotonic() - thawed_at >= thaw_every_s:
            gc.unfreeze()
            started = time.perf_counter()
            freed = gc.collect()
            thawed_at = time.monotonic()
            log.info("hourly full collection: %d objects freed in %.0f ms", freed,
                     (time.perf_counter() - started) * 1000)
        gc.freeze()
