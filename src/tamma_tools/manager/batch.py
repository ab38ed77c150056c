"""Batch planning (idempotent duplicates run once) and running coroutines from sync code."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from tamma_tools.manager.calls import unpack_call
from tamma_tools.types import FunctionResult

if TYPE_CHECKING:
    from tamma_tools.registry import ToolRegistry

__all__ = ["plan_batch", "run_sync", "share_duplicates"]

T = TypeVar("T")

BatchPlan = list[tuple[Any, int | None]]
"""Each call with the index of the earlier identical call it shares a result with, if any."""


def plan_batch(calls: list[Any], registry: ToolRegistry) -> BatchPlan:
    """Identical calls (same tool, same arguments string) of an ``idempotent`` tool run once."""
    unique: dict[tuple[str, str], int] = {}
    plan: BatchPlan = []
    for call in calls:
        try:
            _, name, raw = unpack_call(call)
        except (ValueError, TypeError):
            plan.append((call, None))
            continue
        entry = registry.find(name)
        if entry is not None and entry.definition.metadata.idempotent:
            first = unique.get((name, raw))
            if first is not None:
                plan.append((call, first))
                continue
            unique[(name, raw)] = len(plan)
        plan.append((call, None))
    return plan


def share_duplicates(plan: BatchPlan, results: list[FunctionResult | None]) -> None:
    """Fill the duplicates' slots with the shared result under their own call ids."""
    for i, (call, dup) in enumerate(plan):
        if dup is not None:
            original = results[dup]
            assert original is not None
            results[i] = replace(
                original,
                tool_call_id=unpack_call(call)[0],
                details={"shared_with": original.tool_call_id},
            )


def run_sync(loops: threading.local, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on this thread's private event loop (made on first use)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        coro.close()
        raise RuntimeError(
            "the *_sync methods cannot run inside an event loop; await the async method instead"
        )
    loop: asyncio.AbstractEventLoop | None = getattr(loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        loops.loop = loop
    return loop.run_until_complete(coro)
