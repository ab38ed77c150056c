"""``api="responses"``: the same loop over the Responses API, streaming and not, with
``function_call`` items out and ``function_call_output`` items back."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tamma_tools.errors import ProviderBadRequest, ProviderStreamError, StreamInterrupted
from tamma_tools.function_tool import tool
from tamma_tools.manager import FunctionCallingManager
from tamma_tools.provider import (
    FunctionCallingConfig,
    MessageRequest,
    OpenAIProvider,
    ProviderConfig,
    StreamError,
    TextDelta,
    ToolCallDone,
    ToolCallStarted,
)
from tamma_tools.provider.loop import TRUNCATED_STUB
from tamma_tools.provider.request import responses_input
from tamma_tools.provider.responses_api import ResponsesAccumulator
from tests.support.openai_server import (
    OpenAIServer,
    Reply,
    call,
    openai_fixture,
    responses_events,
    responses_object,
    sse_body,
    tool_messages,
)

server = openai_fixture
USER = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2 + 3?"}]


@tool(isolation="in_process")
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def provider_for(server: OpenAIServer, **fc: Any) -> OpenAIProvider:
    mgr = FunctionCallingManager()
    mgr.register_tool(add)
    config = ProviderConfig(
        api_key="sk-test",
        base_url=server.base_url,
        model="test-model",
        api="responses",
        max_retries=0,
        function_calling=FunctionCallingConfig(**fc),
    )
    return OpenAIProvider(config, manager=mgr)


def add_then_answer(body: dict[str, Any]) -> dict[str, Any]:
    results = tool_messages(body)
    if not results:
        return {"tool_calls": [call("call_add", "add", {"a": 2, "b": 3})]}
    return {"content": f"It is {results[0]['content']}."}


async def test_request_bodies_use_items_flat_tools_and_output_tokens(server: OpenAIServer) -> None:
    server.script = add_then_answer
    request = MessageRequest(
        messages=USER, max_tokens=64, tool_choice={"type": "function", "function": {"name": "add"}}
    )
    result = await provider_for(server).complete(request)
    assert result.content == "It is 5." and result.turns == 2
    assert [r.path for r in server.requests] == ["/v1/responses", "/v1/responses"]
    first, second = server.bodies
    assert first["input"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "2 + 3?"},
    ]
    assert first["tools"][0]["type"] == "function" and first["tools"][0]["name"] == "add"
    assert "function" not in first["tools"][0]
    assert first["tool_choice"] == {"type": "function", "name": "add"}
    assert second["tool_choice"] == "auto"
    assert first["max_output_tokens"] == 64 and "max_tokens" not in first and "stream" not in first
    assert second["input"][2:] == [
        {
            "type": "function_call",
            "call_id": "call_add",
            "name": "add",
            "arguments": '{"a":2,"b":3}',
        },
        {"type": "function_call_output", "call_id": "call_add", "output": "5"},
    ]
    assert result.usage == {"prompt_tokens": 100, "completion_tokens": 40, "total_tokens": 140}


async def test_streaming_gives_the_same_events_as_chat(server: OpenAIServer) -> None:
    server.script = lambda body: (
        {"content": "It is 5."}
        if tool_messages(body)
        else {"content": "Adding.", "tool_calls": [call("call_add", "add", {"a": 2, "b": 3})]}
    )
    async with provider_for(server).send_message(MessageRequest(messages=USER)) as stream:
        events = [e async for e in stream]
    assert server.bodies[0]["stream"] is True
    assert [e.id for e in events if isinstance(e, ToolCallStarted)] == ["call_add"]
    (done,) = [e for e in events if isinstance(e, ToolCallDone)]
    assert done.call.arguments == '{"a":2,"b":3}'
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Adding.It is 5."
    assert stream.result().content == "It is 5."


async def test_a_failed_response_event_is_a_stream_error(server: OpenAIServer) -> None:
    events = responses_events({"tool_calls": [call("c1", "add", {"a": 1, "b": 2})]})[:3]
    failed = {
        "type": "response.failed",
        "response": {
            "status": "failed",
            "error": {"code": "server_error", "message": "model crashed"},
        },
    }
    server.enqueue(Reply.sse(sse_body([*events, failed], done=False, event_names=True)))
    async with provider_for(server).send_message(MessageRequest(messages=USER)) as stream:
        got = [e async for e in stream]
    assert isinstance(got[-1], StreamError) and "model crashed" in got[-1].message
    assert isinstance(stream.error, ProviderStreamError) and stream.messages == USER


async def test_a_stream_without_completed_is_interrupted(server: OpenAIServer) -> None:
    events = responses_events({"tool_calls": [call("c1", "add", {"a": 1, "b": 2})]})[:-1]
    server.enqueue(Reply.sse(sse_body(events, done=False, event_names=True)))
    async with provider_for(server).send_message(MessageRequest(messages=USER)) as stream:
        got = [e async for e in stream]
    assert not any(isinstance(e, ToolCallDone) for e in got)
    assert isinstance(stream.error, StreamInterrupted) and stream.messages == USER


async def test_a_failed_body_raises_and_http_errors_are_typed(server: OpenAIServer) -> None:
    server.enqueue(Reply.json({"status": "failed", "error": {"message": "quota"}, "output": []}))
    with pytest.raises(ProviderStreamError, match="quota"):
        await provider_for(server).complete(MessageRequest(messages=USER))
    server.enqueue(Reply.json({"error": {"message": "Unknown parameter: 'foo'."}}, status=400))
    with pytest.raises(ProviderBadRequest, match="Unknown parameter"):
        await provider_for(server).complete(MessageRequest(messages=USER))


async def test_calls_cut_by_the_output_limit_are_not_run(server: OpenAIServer) -> None:
    body = responses_object({"tool_calls": [call("c1", "add", '{"a": 1, "b"')]})
    body |= {"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}}
    server.enqueue(Reply.json(body))
    server.script = lambda body: {"content": "sorry"}
    result = await provider_for(server).complete(MessageRequest(messages=USER))
    assert result.content == "sorry"
    assert result.messages[3] == {
        "role": "tool",
        "tool_call_id": "c1",
        "content": TRUNCATED_STUB.format(reason="length"),
    }
    assert result.tool_results == []


# --- the pure parts -----------------------------------------------------------------------

arguments = st.dictionaries(
    st.text(min_size=1, max_size=8),
    st.integers(min_value=-(2**53), max_value=2**53) | st.text(max_size=20),
    max_size=4,
)


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(max_size=60),
    calls=st.lists(st.tuples(st.sampled_from(["add", "read_file", "x"]), arguments), max_size=4),
    fragment=st.integers(min_value=1, max_value=12),
)
def test_any_fragmenting_of_a_responses_stream_gives_the_same_message(
    text: str, calls: list[tuple[str, dict[str, Any]]], fragment: int
) -> None:
    message: dict[str, Any] = {"content": text or None}
    if calls:
        message["tool_calls"] = [
            call(f"call_{i}", name, args) for i, (name, args) in enumerate(calls)
        ]
    acc = ResponsesAccumulator()
    for line in (
        sse_body(responses_events(message, fragment=fragment), done=False, event_names=True)
        .decode()
        .split("\n")
    ):
        acc.feed_line(line)
    acc.finish()
    assert acc.error is None
    got = acc.message()
    assert got.get("content") == (text or None)
    assert got.get("tool_calls", []) == message.get("tool_calls", [])
    assert acc.finish_reason == ("tool_calls" if calls else "stop")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["add", "lookup"]), arguments, st.text(max_size=30)), max_size=4
    )
)
def test_history_to_items_keeps_every_call_and_its_output_in_order(
    turns: list[tuple[str, dict[str, Any], str]],
) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "go"}]
    for i, (name, args, output) in enumerate(turns):
        messages.append(
            {"role": "assistant", "content": None, "tool_calls": [call(f"c{i}", name, args)]}
        )
        messages.append({"role": "tool", "tool_call_id": f"c{i}", "content": output})
    items = responses_input(messages)
    assert items[0] == {"role": "user", "content": "go"}
    pairs = list(zip(items[1::2], items[2::2], strict=True))
    assert len(pairs) == len(turns)
    for (item, out), (i, (name, args, output)) in zip(pairs, enumerate(turns), strict=True):
        assert item == {
            "type": "function_call",
            "call_id": f"c{i}",
            "name": name,
            "arguments": orjson.dumps(args).decode(),
        }
        assert out == {"type": "function_call_output", "call_id": f"c{i}", "output": output}


def test_content_parts_are_converted_to_input_parts() -> None:
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/cat.png", "detail": "low"},
                },
            ],
        },
        {"role": "assistant", "content": None, "tool_calls": [call("c1", "add", {"a": 1, "b": 2})]},
        {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "3"}]},
    ]
    assert responses_input(messages) == [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is in this picture?"},
                {
                    "type": "input_image",
                    "image_url": "https://example.com/cat.png",
                    "detail": "low",
                },
            ],
        },
        {"type": "function_call", "call_id": "c1", "name": "add", "arguments": '{"a":1,"b":2}'},
        {"type": "function_call_output", "call_id": "c1", "output": "3"},
    ]


def test_a_stream_with_only_the_completed_event_still_gives_text_and_calls() -> None:
    final = responses_object(
        {"content": "Adding.", "tool_calls": [call("c9", "add", {"a": 4, "b": 5})]}
    )
    acc = ResponsesAccumulator()
    events = acc.feed_text(
        sse_body([{"type": "response.completed", "response": final}], done=False)
    )
    assert [e.call.id for e in events if isinstance(e, ToolCallDone)] == ["c9"]
    assert acc.message() == {
        "role": "assistant",
        "content": "Adding.",
        "tool_calls": [call("c9", "add", {"a": 4, "b": 5})],
    }
    assert acc.finish_reason == "tool_calls" and acc.error is None


# --- reasoning models: their reasoning goes back with the calls it led to ------------------------


def _openai_pairing_error(body: dict[str, Any]) -> str | None:
    """OpenAI's rule for reasoning models, as its API enforces it: a reasoning item must be
    followed by the item it led to (same turn, item id kept), and a function call carrying the
    item id of a reasoning turn must come with that reasoning. Returns the 400 message."""
    items = body["input"]
    for i, item in enumerate(items):
        following = items[i + 1] if i + 1 < len(items) else {}
        if item.get("type") == "reasoning" and not str(following.get("id", "")).startswith(
            ("fc_", "msg_", "rs_")
        ):
            return (
                f"Item {item['id']!r} of type 'reasoning' was provided without its required "
                "following item."
            )
        if (
            item.get("type") == "function_call"
            and item.get("id")
            and not any(x.get("type") == "reasoning" for x in items[:i])
        ):
            return (
                f"Item {item['id']!r} of type 'function_call' was provided without its required "
                "'reasoning' item."
            )
    return None


def reasoning_then_answer(body: dict[str, Any]) -> Any:
    from tests.support.openai_server import Reply

    problem = _openai_pairing_error(body)
    if problem is not None:
        return Reply.json({"error": {"message": problem, "type": "invalid_request_error"}}, 400)
    results = tool_messages(body)
    if not results:
        return {
            "reasoning": ["The user wants a sum; use the add tool."],
            "encrypted_reasoning": body.get("store") is False,
            "tool_calls": [call("call_add", "add", {"a": 2, "b": 3})],
        }
    return {"content": f"It is {results[0]['content']}."}


@pytest.mark.parametrize("stream", [False, True])
async def test_reasoning_items_are_sent_back_with_their_calls(
    server: OpenAIServer, stream: bool
) -> None:
    server.script = reasoning_then_answer
    provider = provider_for(server)
    if stream:
        async with provider.send_message(MessageRequest(messages=USER)) as run:
            _ = [e async for e in run]
        result = run.result()
    else:
        result = await provider.complete(MessageRequest(messages=USER))
    assert result.content == "It is 5." and result.error is None
    second = server.bodies[1]["input"]
    kinds = [item.get("type") or item.get("role") for item in second]
    assert kinds == ["system", "user", "reasoning", "function_call", "function_call_output"]
    assert second[2]["id"] == "rs_scripted_0"
    assert second[3]["id"] == "fc_call_add" and second[3]["call_id"] == "call_add"
    # The history keeps the verbatim items right before the assistant message they belong to.
    roles = [m.get("role") or m.get("type") for m in result.messages]
    assert roles == ["system", "user", "reasoning", "function_call", "assistant", "tool",
                     "assistant"]  # fmt: skip


async def test_without_store_only_encrypted_reasoning_is_replayed(server: OpenAIServer) -> None:
    server.script = reasoning_then_answer
    request = MessageRequest(messages=USER, extra={"store": False})
    result = await provider_for(server).complete(request)
    assert result.content == "It is 5."
    assert server.bodies[1]["input"][2]["encrypted_content"] == "gAAA-opaque-0"

    # Reasoning without its encrypted state cannot be looked up when nothing is stored: the
    # turn goes back without reasoning and without item ids, which the API accepts.
    def unencrypted(body: dict[str, Any]) -> Any:
        answer = reasoning_then_answer(body)
        if isinstance(answer, dict):
            answer.pop("encrypted_reasoning", None)
        return answer

    server.script = unencrypted
    before = len(server.bodies)
    result = await provider_for(server).complete(request)
    assert result.content == "It is 5."
    second = server.bodies[before + 1]["input"]
    assert [i.get("type") for i in second[2:]] == ["function_call", "function_call_output"]
    assert "id" not in second[2]


async def test_a_responses_history_with_reasoning_can_be_sent_to_chat(
    server: OpenAIServer,
) -> None:
    server.script = reasoning_then_answer
    result = await provider_for(server).complete(MessageRequest(messages=USER))
    server.script = lambda body: {"content": "Still 5."}
    chat = OpenAIProvider(
        ProviderConfig(api_key="sk-test", base_url=server.base_url, model="test-model",
                       max_retries=0),
        manager=FunctionCallingManager(),
    )  # fmt: skip
    follow_up = [*result.messages, {"role": "user", "content": "Sure?"}]
    again = await chat.complete(MessageRequest(messages=follow_up))
    assert again.content == "Still 5."
    sent = server.bodies[-1]["messages"]
    assert all("type" not in m for m in sent)
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "assistant",
                                         "user"]  # fmt: skip
