"""User tools run isolated by default: the manager routes them through the sandbox."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from tamma_tools.function_tool import tool
from tamma_tools.manager import FunctionCallingManager
from tamma_tools.sandbox import SandboxConfig


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@tool(timeout_s=1)
def spin() -> None:
    """Spin forever."""
    while True:
        pass


@pytest.fixture
async def manager() -> AsyncIterator[FunctionCallingManager]:
    mgr = FunctionCallingManager(sandbox_config=SandboxConfig())
    mgr.register_tool(add)
    mgr.register_tool(spin)
    async with mgr:
        yield mgr


def call(name: str, arguments: str, call_id: str) -> dict[str, object]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


async def test_user_tools_default_to_process_isolation(manager: FunctionCallingManager) -> None:
    result = await manager.execute_function_call(call("add", '{"a": 2, "b": 3}', "c1"))
    assert result.success and result.result == 5
    record = manager.history[-1]
    assert record.isolation == "process" and "rlimits" in record.sandbox_layers


async def test_a_spinning_tool_is_killed_at_its_deadline(manager: FunctionCallingManager) -> None:
    started = time.monotonic()
    result = await manager.execute_function_call(call("spin", "{}", "c2"))
    assert result.error_code == "timeout"
    assert time.monotonic() - started < 1 + 1.0
    assert manager.history[-1].outcome == "timed_out"
    assert manager.history[-1].isolation == "process"
    # The same sandbox serves the next call.
    assert (await manager.execute_function_call(call("add", '{"a": 1, "b": 1}', "c3"))).result == 2
