"""Deadlines of in-process async tools: they stop the tool, and only they become timeouts."""

from __future__ import annotations

import asyncio
import time

import pytest

from tamma_tools.manager.deadline import watch_for


async def test_deadline_cancels_the_tool_and_reports_it_was_ours() -> None:
    watch = watch_for(asyncio.get_running_loop())
    deadline = watch.arm(0.05)
    started = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.sleep(5)
    assert watch.disarm(deadline) is True
    assert time.monotonic() - started < 1.0
    # The task is usable again: our cancellation was taken back.
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    await asyncio.sleep(0)


async def test_external_cancellation_is_not_mistaken_for_a_timeout() -> None:
    async def victim() -> bool:
        watch = watch_for(asyncio.get_running_loop())
        deadline = watch.arm(5)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            return watch.disarm(deadline)
        return False

    task = asyncio.create_task(victim())
    await asyncio.sleep(0.01)
    task.cancel()
    assert await task is False


async def test_an_earlier_deadline_armed_later_still_fires_on_time() -> None:
    watch = watch_for(asyncio.get_running_loop())

    async def sleeper(timeout_s: float) -> float:
        deadline = watch.arm(timeout_s)
        started = time.monotonic()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            assert watch.disarm(deadline)
        return time.monotonic() - started

    slow = asyncio.create_task(sleeper(0.6))
    await asyncio.sleep(0.01)
    fast = asyncio.create_task(sleeper(0.05))
    fast_took, slow_took = await asyncio.gather(fast, slow)
    assert fast_took < 0.4 and 0.5 < slow_took < 2.0


async def test_disarmed_deadlines_never_fire() -> None:
    watch = watch_for(asyncio.get_running_loop())
    for _ in range(100):
        watch.disarm(watch.arm(0.01))
    await asyncio.sleep(0.05)  # the timer fires, finds nothing due, and stops
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
