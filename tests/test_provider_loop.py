"""The function-calling loop over real HTTP: what is sent each turn, when it stops, and that the
history is always valid to send, streaming (``send_message``) and not (``complete``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tamma_tools.errors import LoopDetected, MaxTurnsExceeded
from tamma_tools.function_tool import tool
from tamma_tools.manager import FunctionCallingManager
from tamma_tools.provider import (
    AzureConfig,
    FinalMessage,
    FunctionCallingConfig,
    MessageRequest,
    OpenAIProvider,
    ProviderConfig,
    StreamError,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallDone,
    ToolCallStarted,
    ToolResult,
    TurnFinished,
)
from tamma_tools.provider.loop import CANCELLED_STUB, LOOP_STUB, MAX_TURNS_STUB
from tamma_tools.types import CallerContext
from tests.support.openai_server import (
    OpenAIServer,
    Reply,
    assert_history_valid,
    call,
    chat_chunks,
    openai_fixture,
    tool_messages,
)

server = openai_fixture
USER = [{"role": "user", "content": "What is 2 + 3?"}]


@tool(isolation="in_process")
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool(isolation="in_process", permissions=["secrets:read"])
async def read_secret(name: str) -> str:
    """Read a named secret."""
    return f"secret-{name}"


def manager_with(*tools: Any) -> FunctionCallingManager:
    mgr = FunctionCallingManager()
    for t in tools:
        mgr.register_tool(t)
    return mgr


def provider_for(
    server: OpenAIServer, manager: FunctionCallingManager | None = None, **fc: Any
) -> OpenAIProvider:
    config = ProviderConfig(
        api_key="sk-test",
        base_url=server.base_url,
        model="test-model",
        max_retries=0,
        function_calling=FunctionCallingConfig(**fc),
    )
    return OpenAIProvider(config, manager=manager or manager_with(add))


def add_then_answer(body: dict[str, Any]) -> dict[str, Any]:
    results = tool_messages(body)
    if not results:
        return {"content": None, "tool_calls": [call("call_add", "add", {"a": 2, "b": 3})]}
    return {"content": f"The sum is {results[0]['content']}."}


async def test_complete_answers_without_tools(server: OpenAIServer) -> None:
    server.script = lambda body: {"content": "Hello."}
    provider = provider_for(server, manager=FunctionCallingManager())
    request = MessageRequest(
        messages=USER, temperature=0.2, max_tokens=50, extra={"seed": 7, "top_p": 0.5}
    )
    result = await provider.complete(request)
    assert (result.content, result.stop_reason, result.finish_reason) == ("Hello.", "final", "stop")
    assert result.messages == [*USER, {"role": "assistant", "content": "Hello."}]
    assert result.turns == 1 and result.usage["total_tokens"] == 70
    (body,) = server.bodies
    assert body == {
        "seed": 7,
        "top_p": 0.5,
        "model": "test-model",
        "messages": USER,
        "temperature": 0.2,
        "max_tokens": 50,
    }  # no tools when none are registered, no stream flag without streaming


async def test_complete_runs_the_tool_and_sends_its_result_back(server: OpenAIServer) -> None:
    server.script = add_then_answer
    result = await provider_for(server).complete(MessageRequest(messages=USER))
    assert result.content == "The sum is 5."
    assert [r.result for r in result.tool_results] == [5]
    assert result.turns == 2 and result.usage["total_tokens"] == 140
    first, second = server.bodies
    assert first["tools"][0]["function"]["name"] == "add"
    assert second["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [call("call_add", "add", {"a": 2, "b": 3})],
        },
        {"role": "tool", "tool_call_id": "call_add", "content": "5"},
    ]
    assert result.messages == [
        *second["messages"],
        {"role": "assistant", "content": "The sum is 5."},
    ]


async def test_request_tools_are_merged_with_the_managers_and_win_on_a_name_clash(
    server: OpenAIServer,
) -> None:
    server.script = lambda body: {"content": "ok"}
    own = {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Request's own add.",
            "parameters": {"type": "object"},
        },
        "metadata": {"category": "math"},
    }
    extra = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    await provider_for(server).complete(MessageRequest(messages=USER, tools=[own, extra]))
    tools = server.bodies[0]["tools"]
    assert [t["function"]["name"] for t in tools] == ["add", "lookup"]
    assert tools[0] == {k: v for k, v in own.items() if k != "metadata"}  # metadata never sent


async def test_a_forced_tool_choice_is_reset_to_auto_once_honoured(server: OpenAIServer) -> None:
    server.script = add_then_answer
    forced = {"type": "function", "function": {"name": "add"}}
    provider = provider_for(server, parallel_tool_calls=False)
    await provider.complete(MessageRequest(messages=USER, tool_choice=forced))
    first, second = server.bodies
    assert first["tool_choice"] == forced and second["tool_choice"] == "auto"
    assert first["parallel_tool_calls"] is False and second["parallel_tool_calls"] is False


async def test_without_auto_execute_the_calls_come_back_unexecuted(server: OpenAIServer) -> None:
    server.script = add_then_answer
    executed: list[int] = []
    mgr = manager_with(add)
    mgr.on("*", lambda record: executed.append(1))
    result = await provider_for(server, manager=mgr, auto_execute=False).complete(
        MessageRequest(messages=USER)
    )
    assert result.stop_reason == "tool_calls" and result.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == [
        ("call_add", "add", '{"a":2,"b":3}')
    ]
    assert executed == [] and len(server.bodies) == 1
    assert result.messages[-1] is result.message


async def test_disabled_function_calling_sends_no_tools(server: OpenAIServer) -> None:
    server.script = lambda body: {"content": "plain"}
    await provider_for(server, enabled=False).complete(
        MessageRequest(messages=USER, tool_choice="required")
    )
    assert "tools" not in server.bodies[0] and "tool_choice" not in server.bodies[0]


async def test_long_server_ids_are_passed_back_unchanged(server: OpenAIServer) -> None:
    long_id = "toolu_vrtx_" + "x" * 60  # over OpenAI's 40, but this server made it
    server.script = lambda body: (
        {"content": "done"}
        if tool_messages(body)
        else {"tool_calls": [call(long_id, "add", {"a": 1, "b": 1})]}
    )
    result = await provider_for(server).complete(MessageRequest(messages=USER))
    assert tool_messages(server.bodies[1]) == [{"id": long_id, "content": "2"}]
    assert result.messages[1]["tool_calls"][0]["id"] == long_id


async def test_the_callers_context_reaches_the_manager(server: OpenAIServer) -> None:
    server.script = lambda body: (
        {"content": "done"}
        if tool_messages(body)
        else {"tool_calls": [call("c1", "read_secret", {"name": "db"})]}
    )
    mgr = manager_with(read_secret)
    allowed = CallerContext(user_id="ana", permissions=frozenset({"secrets:read"}))
    await provider_for(server, manager=mgr).complete(MessageRequest(messages=USER), allowed)
    assert tool_messages(server.bodies[1])[0]["content"] == "secret-db"
    await provider_for(server, manager=mgr).complete(
        MessageRequest(messages=USER, tools=[]), CallerContext(user_id="bob")
    )
    denied = tool_messages(server.bodies[-1])[0]["content"]
    assert denied.startswith("Error [permission_denied]")
    assert [t["function"]["name"] for t in server.bodies[2].get("tools", [])] == []  # not offered


async def test_a_repeated_call_stops_the_run_with_a_clear_final_error(server: OpenAIServer) -> None:
    server.script = lambda body: {
        "tool_calls": [call(f"c{len(body['messages'])}", "add", {"b": 3, "a": 2})]
    }
    stream = provider_for(server, loop_threshold=3).send_message(MessageRequest(messages=USER))
    events = [e async for e in stream]
    assert isinstance(events[-1], StreamError) and events[-1].code == "loop_detected"
    result = stream.result()
    assert result.stop_reason == "loop_detected" and isinstance(result.error, LoopDetected)
    assert len(server.bodies) == 3 and len(result.tool_results) == 2
    assert result.messages[-1]["content"] == LOOP_STUB.format(name="add", count=3)
    assert_history_valid(result.messages)


async def test_max_turns_stops_the_run_and_leaves_the_last_calls_unexecuted(
    server: OpenAIServer,
) -> None:
    server.script = lambda body: {
        "tool_calls": [
            call(f"c{len(body['messages'])}", "add", {"a": len(body["messages"]), "b": 0})
        ]
    }
    result = await provider_for(server, max_turns=2).complete(MessageRequest(messages=USER))
    assert result.stop_reason == "max_turns" and isinstance(result.error, MaxTurnsExceeded)
    assert len(server.bodies) == 2 and len(result.tool_results) == 1
    assert result.messages[-1]["content"] == MAX_TURNS_STUB.format(max_turns=2)
    assert_history_valid(result.messages)


async def test_send_message_streams_every_event_in_order(server: OpenAIServer) -> None:
    def script(body: dict[str, Any]) -> dict[str, Any]:
        if tool_messages(body):
            return {"content": "Both sums are ready: 5 and 9."}
        return {
            "content": "Adding.",
            "tool_calls": [
                call("c1", "add", {"a": 2, "b": 3}),
                call("c2", "add", {"a": 4, "b": 5}),
            ],
        }

    server.script = script
    async with provider_for(server).send_message(MessageRequest(messages=USER)) as stream:
        events = [e async for e in stream]
    kinds = [type(e).__name__ for e in events]
    first_turn = kinds[: kinds.index("TurnFinished")]
    assert first_turn[0] == "TextDelta"
    assert (
        first_turn.index("ToolCallStarted")
        < first_turn.index("ToolCallArgumentsDelta")
        < first_turn.index("ToolCallDone")
    )
    assert kinds.count("ToolCallDone") == 2 and kinds.count("ToolResult") == 2
    assert kinds.index("ToolResult") > kinds.index("TurnFinished")
    assert (
        isinstance(events[-1], FinalMessage)
        and events[-1].message["content"] == "Both sums are ready: 5 and 9."
    )
    for index, wanted in ((0, '{"a":2,"b":3}'), (1, '{"a":4,"b":5}')):
        pieces = [
            e.delta for e in events if isinstance(e, ToolCallArgumentsDelta) and e.index == index
        ]
        assert len(pieces) > 1 and "".join(pieces) == wanted
    assert [e.name for e in events if isinstance(e, ToolCallStarted)] == ["add", "add"]
    assert sorted(e.result.result for e in events if isinstance(e, ToolResult)) == [5, 9]
    turns = [e for e in events if isinstance(e, TurnFinished)]
    assert [(t.turn, t.finish_reason) for t in turns] == [(1, "tool_calls"), (2, "stop")]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)).startswith("Adding.")
    assert server.bodies[0]["stream"] is True
    assert_history_valid(stream.messages)


async def test_closing_mid_stream_stops_the_http_stream_and_keeps_the_history(
    server: OpenAIServer,
) -> None:
    slow = chat_chunks({"content": "x" * 2000}, fragment=4)
    server.enqueue(Reply.events(slow, delay_s=0.05))  # about 10 s if read to the end
    request = MessageRequest(messages=USER)
    started = time.perf_counter()
    stream = provider_for(server).send_message(request)
    async for event in stream:
        if isinstance(event, TextDelta):
            break
    await stream.aclose()
    assert time.perf_counter() - started < 3
    assert stream.messages == USER and stream.result().stop_reason == "cancelled"
    # The server saw the client go away: its next write failed.
    assert await asyncio.to_thread(server.closed_early.wait, 5)


async def test_closing_while_tools_run_cancels_them_and_stubs_their_ids(
    server: OpenAIServer,
) -> None:
    cancelled = asyncio.Event()

    @tool(isolation="in_process")
    async def slow(seconds: float) -> str:
        """Sleep for a while."""
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "slept"

    server.script = lambda body: {
        "tool_calls": [
            call("fast", "add", {"a": 1, "b": 2}),
            call("sleepy", "slow", {"seconds": 30}),
        ]
    }
    stream = provider_for(server, manager=manager_with(add, slow)).send_message(
        MessageRequest(messages=USER)
    )
    started = time.perf_counter()
    async for event in stream:
        if isinstance(event, ToolResult):
            assert event.result.tool_call_id == "fast"
            break
    await stream.aclose()
    assert time.perf_counter() - started < 5 and cancelled.is_set()
    history = stream.messages
    assert_history_valid(history)
    assert history[-2:] == [
        {"role": "tool", "tool_call_id": "fast", "content": "3"},
        {"role": "tool", "tool_call_id": "sleepy", "content": CANCELLED_STUB},
    ]


async def test_a_session_id_comes_from_the_request_id(server: OpenAIServer) -> None:
    server.script = add_then_answer
    seen: list[CallerContext] = []
    mgr = manager_with(add)
    mgr.on("executed", lambda record: seen.append(record.context))
    await provider_for(server, manager=mgr).complete(
        MessageRequest(messages=USER, id="conv-1", user_id="ana")
    )
    assert [(c.user_id, c.session_id) for c in seen] == [("ana", "conv-1")]


async def test_azure_routes_by_deployment_and_sends_the_api_key_header(
    server: OpenAIServer,
) -> None:
    server.script = lambda body: {"content": "from azure"}
    root = server.base_url.removesuffix("/v1")
    config = ProviderConfig(
        api_key="azure-key",
        model="gpt-4o-deploy",
        max_retries=0,
        azure=AzureConfig(endpoint=root, api_version="2024-10-21"),
    )
    result = await OpenAIProvider(config, manager=FunctionCallingManager()).complete(
        MessageRequest(messages=USER)
    )
    assert result.content == "from azure"
    (sent,) = server.requests
    assert sent.path == "/openai/deployments/gpt-4o-deploy/chat/completions?api-version=2024-10-21"
    assert sent.headers["api-key"] == "azure-key"


async def test_a_missing_model_is_a_config_error(server: OpenAIServer) -> None:
    from tamma_tools.errors import ConfigError

    provider = OpenAIProvider(ProviderConfig(api_key="k", base_url=server.base_url))
    with pytest.raises(ConfigError, match="no model given"):
        await provider.complete(MessageRequest(messages=USER))
    assert server.requests == []


async def test_text_and_done_events_carry_the_same_call_the_history_gets(
    server: OpenAIServer,
) -> None:
    server.script = add_then_answer
    async with provider_for(server, auto_execute=False).send_message(
        MessageRequest(messages=USER)
    ) as stream:
        done = [e.call.to_openai() async for e in stream if isinstance(e, ToolCallDone)]
    assert done == stream.messages[-1]["tool_calls"] == [call("call_add", "add", {"a": 2, "b": 3})]


async def test_cancelling_complete_cancels_the_running_tools(server: OpenAIServer) -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    @tool(isolation="in_process")
    async def wait_forever(label: str) -> str:
        """Wait until cancelled."""
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return label

    server.script = lambda body: {
        "tool_calls": [
            call("w1", "wait_forever", {"label": "a"}),
            call("w2", "wait_forever", {"label": "b"}),
        ]
    }
    provider = provider_for(server, manager=manager_with(wait_forever))
    task = asyncio.ensure_future(provider.complete(MessageRequest(messages=USER)))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set() and len(server.requests) == 1


async def test_the_whole_loop_also_runs_through_the_sdks_own_request_pipeline(
    server: OpenAIServer,
) -> None:
    server.script = add_then_answer
    config = ProviderConfig(
        api_key="sk-test",
        base_url=server.base_url,
        model="test-model",
        max_retries=0,
        lean_requests=False,
    )
    result = await OpenAIProvider(config, manager=manager_with(add)).complete(
        MessageRequest(messages=USER)
    )
    assert result.content == "The sum is 5."
    # Only the SDK's pipeline adds its per-attempt header.
    assert all(r.headers.get("x-stainless-retry-count") == "0" for r in server.requests)
