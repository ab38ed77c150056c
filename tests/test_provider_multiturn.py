"""A scripted multi-turn conversation, end to end: parallel tool calls executed through the
manager and the sandbox (a worker process per call), over real HTTP through the SDK, on both
APIs, streaming and not; it ends with the expected answer and exactly the expected history."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tamma_tools.function_tool import tool, tool_from_function
from tamma_tools.manager import FunctionCallingManager
from tamma_tools.provider import (
    FinalMessage,
    FunctionCallingConfig,
    MessageRequest,
    OpenAIProvider,
    ProviderConfig,
    ToolResult,
)
from tamma_tools.sandbox.config import SandboxConfig
from tamma_tools.types import CallerContext
from tests.support import isolated_tools
from tests.support.openai_server import (
    OpenAIServer,
    assert_history_valid,
    call,
    openai_fixture,
    tool_messages,
)

server = openai_fixture

QUESTION = [
    {"role": "system", "content": "You are a calculator with a gazetteer."},
    {"role": "user", "content": "What is (2+3) + (4+5), and which country is Oslo in?"},
]
FINAL = "(2+3) + (4+5) = 14, and Oslo is in Norway."


@tool(isolation="in_process", read_only=True)
async def country_of(city: str) -> str:
    """The country a city is in."""
    return {"Oslo": "Norway", "Lima": "Peru"}.get(city, "unknown")


def script(body: dict[str, Any]) -> dict[str, Any]:
    """Turn 1: three calls in parallel. Turn 2: add the two sums. Turn 3: answer."""
    results = {r["id"]: r["content"] for r in tool_messages(body)}
    if not results:
        return {
            "content": "Let me work that out.",
            "tool_calls": [
                call("call_sum_a", "add", {"a": 2, "b": 3}),
                call("call_sum_b", "add", {"a": 4, "b": 5}),
                call("call_country", "country_of", {"city": "Oslo"}),
            ],
        }
    if "call_total" not in results:
        a, b = int(results["call_sum_a"]), int(results["call_sum_b"])
        return {"tool_calls": [call("call_total", "add", {"a": a, "b": b})]}
    return {
        "content": f"(2+3) + (4+5) = {results['call_total']}, and Oslo is in {results['call_country']}."
    }


EXPECTED_HISTORY = [
    *QUESTION,
    {
        "role": "assistant",
        "content": "Let me work that out.",
        "tool_calls": [
            call("call_sum_a", "add", {"a": 2, "b": 3}),
            call("call_sum_b", "add", {"a": 4, "b": 5}),
            call("call_country", "country_of", {"city": "Oslo"}),
        ],
    },
    {"role": "tool", "tool_call_id": "call_sum_a", "content": "5"},
    {"role": "tool", "tool_call_id": "call_sum_b", "content": "9"},
    {"role": "tool", "tool_call_id": "call_country", "content": "Norway"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [call("call_total", "add", {"a": 5, "b": 9})],
    },
    {"role": "tool", "tool_call_id": "call_total", "content": "14"},
    {"role": "assistant", "content": FINAL},
]


@pytest.fixture(scope="module")
def manager() -> Iterator[FunctionCallingManager]:
    # The sandbox is what is under test here, not this kernel's feature set.
    mgr = FunctionCallingManager(sandbox_config=SandboxConfig(allow_weak_isolation=True))
    mgr.register_tool(tool_from_function(isolated_tools.add, isolation="process"))
    mgr.register_tool(country_of)
    yield mgr
    mgr.close()


def provider_for(
    server: OpenAIServer, manager: FunctionCallingManager, api: str, **fc: Any
) -> OpenAIProvider:
    config = ProviderConfig(
        api_key="sk-test",
        base_url=server.base_url,
        model="test-model",
        api=api,  # type: ignore[arg-type]
        max_retries=0,
        function_calling=FunctionCallingConfig(**fc),
    )
    return OpenAIProvider(config, manager=manager)


@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.parametrize("streaming", [True, False], ids=["send_message", "complete"])
async def test_conversation_ends_with_the_expected_answer_and_history(
    server: OpenAIServer, manager: FunctionCallingManager, api: str, streaming: bool
) -> None:
    server.script = script
    provider = provider_for(server, manager, api)
    request = MessageRequest(messages=list(QUESTION), id="conv-42")
    context = CallerContext(user_id="ana")
    if streaming:
        async with provider.send_message(request, context) as stream:
            events = [e async for e in stream]
        result = stream.result()
        assert isinstance(events[-1], FinalMessage) and events[-1].message["content"] == FINAL
        assert len([e for e in events if isinstance(e, ToolResult)]) == 4
    else:
        result = await provider.complete(request, context)
    assert result.stop_reason == "final" and result.content == FINAL
    assert result.messages == EXPECTED_HISTORY
    assert_history_valid(result.messages)
    assert result.turns == 3 and len(server.requests) == 3
    assert all(r.success for r in result.tool_results)
    assert sorted(r.tool_call_id for r in result.tool_results) == sorted(
        ["call_sum_a", "call_sum_b", "call_country", "call_total"]
    )
    # The process-isolated calls really ran in another process.
    sandboxed = [
        r for r in manager.history if r.tool == "add" and r.context.session_id == "conv-42"
    ]
    assert sandboxed and all(r.isolation == "process" for r in sandboxed)
    assert request.messages == QUESTION  # the caller's list is never changed


@tool(isolation="in_process")
async def nap(seconds: float) -> str:
    """Sleep, then say so."""
    await asyncio.sleep(seconds)
    return "rested"


@pytest.mark.parametrize(("cap", "lower", "upper"), [(4, 0.0, 0.75), (1, 1.0, 5.0)])
async def test_parallel_calls_run_concurrently_under_the_cap(
    server: OpenAIServer, cap: int, lower: float, upper: float
) -> None:
    server.script = lambda body: (
        {"content": "all rested"}
        if tool_messages(body)
        else {"tool_calls": [call(f"nap_{i}", "nap", {"seconds": 0.3}) for i in range(4)]}
    )
    mgr = FunctionCallingManager()
    mgr.register_tool(nap)
    provider = provider_for(server, mgr, "chat", max_concurrent_calls=cap)
    started = time.perf_counter()
    result = await provider.complete(MessageRequest(messages=list(QUESTION)))
    elapsed = time.perf_counter() - started
    assert result.content == "all rested" and len(result.tool_results) == 4
    # Four 0.3 s calls: about 0.3 s when all run at once, about 1.2 s one at a time.
    assert lower <= elapsed < upper
    assert [m["tool_call_id"] for m in result.messages if m["role"] == "tool"] == [
        f"nap_{i}" for i in range(4)
    ]
