"""Property: whatever the model asks for and wherever the caller stops reading, the history the
run leaves is valid to send (every tool call answered once, right after its assistant message),
and nothing of a turn in flight is in it. Over real HTTP, on both APIs."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tamma_tools.function_tool import tool
from tamma_tools.manager import FunctionCallingManager
from tamma_tools.provider import (
    FunctionCallingConfig,
    MessageRequest,
    OpenAIProvider,
    ProviderConfig,
)
from tests.support.openai_server import OpenAIServer, assert_history_valid, call, tool_messages


@tool(isolation="in_process")
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool(isolation="in_process")
async def nap(seconds: float) -> str:
    """Sleep briefly."""
    await asyncio.sleep(seconds)
    return "rested"


@tool(isolation="in_process")
async def boom() -> str:
    """Always fails."""
    raise RuntimeError("kaboom")


MANAGER = FunctionCallingManager()
for _tool in (add, nap, boom):
    MANAGER.register_tool(_tool)

one_call = st.sampled_from(
    [
        ("add", '{"a": 1, "b": 2}'),
        ("add", '{"a": "x"}'),  # schema violation
        ("add", '{"a": 1, "b"'),  # truncated JSON
        ("nap", '{"seconds": 0.02}'),
        ("nap", '{"seconds": 0.03}'),
        ("boom", "{}"),
        ("no_such_tool", "{}"),
    ]
)
turns = st.lists(st.lists(one_call, min_size=1, max_size=4), max_size=3)


def script_for(plan: list[list[tuple[str, str]]]) -> Any:
    def script(body: dict[str, Any]) -> dict[str, Any]:
        # Which turn this is follows from how many tool results the request carries.
        answered = len(tool_messages(body))
        index = 0
        seen = 0
        while index < len(plan) and seen + len(plan[index]) <= answered:
            seen += len(plan[index])
            index += 1
        if index >= len(plan):
            return {"content": "final answer"}
        return {
            "tool_calls": [
                call(f"t{index}c{i}", name, args) for i, (name, args) in enumerate(plan[index])
            ]
        }

    return script


async def run_once(
    plan: list[list[tuple[str, str]]], stop_after: tuple[str, int] | None, api: str, stream: bool
) -> None:
    with OpenAIServer(script_for(plan)) as server:
        config = ProviderConfig(
            api_key="sk-test",
            base_url=server.base_url,
            model="m",
            api=api,  # type: ignore[arg-type]
            max_retries=0,
            function_calling=FunctionCallingConfig(max_turns=10, loop_threshold=10),
        )
        provider = OpenAIProvider(config, manager=MANAGER)
        request = MessageRequest(messages=[{"role": "user", "content": "go"}])
        if not stream:
            result = await provider.complete(request)
            assert result.stop_reason == "final" and result.content == "final answer"
            assert_history_valid(result.messages)
            assert sum(1 for m in result.messages if m["role"] == "tool") == sum(map(len, plan))
            return
        events = provider.send_message(request)
        seen = 0
        async for event in events:
            if stop_after is not None and type(event).__name__ == stop_after[0]:
                seen += 1
                if seen >= stop_after[1]:
                    break
        await events.aclose()
        history = events.messages
        assert_history_valid(history)
        assert history[0] == {"role": "user", "content": "go"}
        if stop_after is None:
            assert history[-1] == {"role": "assistant", "content": "final answer"}
        await provider.aclose()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plan=turns,
    stop_after=st.none()
    | st.tuples(
        st.sampled_from(["ToolResult", "ToolCallDone", "ToolCallArgumentsDelta", "TurnFinished"]),
        st.integers(min_value=1, max_value=4),
    ),
    api=st.sampled_from(["chat", "responses"]),
    stream=st.booleans(),
)
@example(  # closed while a slow sibling still runs: its id must get a stub
    plan=[[("add", '{"a": 1, "b": 2}'), ("nap", '{"seconds": 0.03}')]],
    stop_after=("ToolResult", 1),
    api="chat",
    stream=True,
)
@example(
    plan=[[("nap", '{"seconds": 0.03}'), ("boom", "{}")], [("add", '{"a": 1, "b": 2}')]],
    stop_after=("ToolResult", 1),
    api="responses",
    stream=True,
)
def test_the_history_is_always_valid_to_send(
    plan: list[list[tuple[str, str]]], stop_after: tuple[str, int] | None, api: str, stream: bool
) -> None:
    asyncio.run(run_once(plan, stop_after, api, stream))
