"""``run_eagerly``, the hub's inline send: a coroutine runs now, and only what has to wait
becomes a task. Its outcomes with real asyncio primitives (the sockets are in test_hub.py)."""

from __future__ import annotations

import asyncio

import pytest

from qtraq_live.realtime.hub_send import message, run_eagerly


async def test_a_coroutine_that_never_waits_completes_inline() -> None:
    done: list[str] = []

    async def send() -> None:
        ready = asyncio.Event()
        ready.set()
        await ready.wait()  # what uvicorn's send does on a writable transport: no suspension
        done.append("sent")

    assert run_eagerly(send(), "t") is None
    assert done == ["sent"]  # before the caller gave the loop a turn


async def test_a_coroutine_that_suspends_is_finished_by_a_task() -> None:
    writable = asyncio.Event()
    steps: list[str] = []

    async def send() -> None:
        steps.append("started")
        await writable.wait()  # a paused transport
        steps.append("written")
        await asyncio.sleep(0)  # a bare yield is driven too
        steps.append("after a bare yield")

    task = run_eagerly(send(), "t")
    assert task is not None and steps == ["started"]
    await asyncio.sleep(0.01)
    assert not task.done() and steps == ["started"]
    writable.set()
    await asyncio.wait_for(task, 5)
    assert steps == ["started", "written", "after a bare yield"]


async def test_a_coroutine_that_suspends_then_fails_fails_its_task() -> None:
    failing: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def send() -> None:
        try:
            await failing
        except ConnectionResetError:
            seen.append("caught inside")
            raise

    task = run_eagerly(send(), "t")
    assert task is not None
    failing.set_exception(ConnectionResetError("client gone"))
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(task, 5)
    assert seen == ["caught inside"]  # the coroutine itself saw the error, as under a task


async def test_cancelling_the_task_closes_the_coroutine() -> None:
    never = asyncio.Event()
    cleaned: list[str] = []

    async def send() -> None:
        try:
            await never.wait()
        finally:
            cleaned.append("closed")

    task = run_eagerly(send(), "t")
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["closed"] and not never._waiters  # nothing left waiting on the event


async def test_an_error_before_any_suspension_reaches_the_caller() -> None:
    async def send() -> None:
        raise OSError("broken pipe")

    with pytest.raises(OSError, match="broken pipe"):
        run_eagerly(send(), "t")


def test_message_splices_a_serialised_body() -> None:
    assert message("update", 7, '{"label":"A-1","position":2}') == \
        '{"type":"update","version":7,"label":"A-1","position":2}'
    assert message("snapshot", 3, "{}") == '{"type":"snapshot","version":3}'
