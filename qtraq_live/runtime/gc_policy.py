"""Keep garbage-collection pauses short in long-running processes (HTTP/hub, duties).

A full collection walks every tracked object: with ten thousand open sockets one takes over
a second (docs/benchmarks.md) and holds back every screen for as long; even an idle server's
modules, routes and templates cost tens of milliseconds a pass, every second or so under load.
So what exists once start-up is over, and then whatever survives a full collection (sockets,
their tasks, the mirrors), is moved out of the collector's sight with ``gc.freeze()``; each
full collection then walks only what came since the one before. While 10,000 sockets connect
that keeps each pass to the newcomers (a freeze once a minute let passes grow again). Once an hour the frozen objects are handed back and collected in one
go, so the reference cycles of sockets closed since are still freed: one long pause an hour.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

THAW_EVERY_S = 3600.0


def freezer(loop: asyncio.AbstractEventLoop) -> Callable[[str, dict[str, Any]], None]:
    """A ``gc.callbacks`` entry: what survived a full collection is long-lived; freeze it on
    the loop's next turn, not inside the collection's caller (code that collects and then
    looks for an object's referrers, as Hypothesis does, must still find them: frozen
    objects are not searched)."""

    def after_collection(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 2:
            loop.call_soon_threadsafe(gc.freeze)

    return after_collection


async def freeze_survivors(thaw_every_s: float = THAW_EVERY_S) -> None:
    """Run for the life of the process (a task started once start-up is over)."""
    gc.collect()  # start-up garbage goes now, not into the frozen set
    gc.freeze()
    hook = freezer(asyncio.get_running_loop())
    gc.callbacks.append(hook)
    try:
        while True:
            await asyncio.sleep(thaw_every_s)
            gc.unfreeze()
            started = time.perf_counter()
            freed = gc.collect()  # its survivors are frozen again by the callback
            log.info("hourly full collection: %d objects freed in %.0f ms", freed,
                     (time.perf_counter() - started) * 1000)
    finally:
        gc.callbacks.remove(hook)
