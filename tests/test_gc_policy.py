"""The garbage-collection policy freezes what survives a full collection and still frees
cycles on the hourly thaw."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref

from qtraq_live.runtime.gc_policy import freeze_survivors


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cycle collector frees it


async def frozen_by_policy(thaw_every_s: float) -> asyncio.Task[None]:
    gc.unfreeze()  # apps started by earlier tests in this process froze what they had
    gc.collect()
    task = asyncio.create_task(freeze_survivors(thaw_every_s=thaw_every_s))
    while gc.get_freeze_count() == 0:  # the freeze at start
        await asyncio.sleep(0.01)
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_a_full_collections_survivors_are_frozen_until_the_policy_stops() -> None:
    task = await frozen_by_policy(thaw_every_s=3600)
    try:
        node = Node()  # made after the freeze at start
        ref = weakref.ref(node)
        before = gc.get_freeze_count()
        gc.collect()  # node survives this full collection, so it is frozen with the rest...
        assert gc.get_referrers(node)  # ...on the loop's next turn, not before the caller looks
        await asyncio.sleep(0)
        assert gc.get_freeze_count() > before
        del node
        gc.collect()
        assert ref() is not None  # frozen: a full collection no longer walks it
    finally:
        await stop(task)
    assert not [hook for hook in gc.callbacks if hook.__module__ == "qtraq_live.runtime.gc_policy"]
    gc.unfreeze()
    gc.collect()
    assert ref() is None


async def test_frozen_cycles_are_freed_at_the_thaw() -> None:
    node = Node()
    ref = weakref.ref(node)
    task = await frozen_by_policy(thaw_every_s=3600)  # node is frozen now
    del node
    await stop(task)
    thaw = asyncio.create_task(freeze_survivors(thaw_every_s=0))
    try:
        for _ in range(200):
            if ref() is None:
                break
            await asyncio.sleep(0.01)
        assert ref() is None  # the thaw handed it back and collected it
    finally:
        await stop(thaw)
        gc.unfreeze()
