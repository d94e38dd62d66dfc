"""The garbage-collection policy freezes survivors and still frees cycles on the hourly thaw."""

from __future__ import annotations

import asyncio
import gc
import weakref

from qtraq_live.gc_policy import freeze_survivors


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cycle collector frees it


async def test_frozen_cycles_are_freed_at_the_thaw() -> None:
    gc.unfreeze()  # apps started by earlier tests in this process froze what they had
    gc.collect()
    node = Node()
    ref = weakref.ref(node)
    task = asyncio.create_task(freeze_survivors(freeze_every_s=0.05, thaw_every_s=3600))
    try:
        while gc.get_freeze_count() == 0:  # the freeze at start takes everything alive, node too
            await asyncio.sleep(0.01)
        del node
        gc.collect()
        assert ref() is not None  # frozen: a full collection does not walk it
    finally:
        task.cancel()
    thaw = asyncio.create_task(freeze_survivors(freeze_every_s=0.05, thaw_every_s=0))
    try:
        for _ in range(200):
            if ref() is None:
                break
            await asyncio.sleep(0.01)
        assert ref() is None  # the thaw handed it back and collected it
    finally:
        thaw.cancel()
        gc.unfreeze()

