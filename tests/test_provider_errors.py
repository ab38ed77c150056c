"""Every way a model server fails ends in a typed error with the cause, never a hang, never a
half-written history: HTTP 400/401/403/429/5xx, a stream cut mid-arguments, a stream that just
stops, an in-stream error event, a malformed chunk, an error in a 200 body, a silent server."""

from __future__ import annotations

import socket
import time
from typing import Any

import orjson
import pytest

from tamma_tools.errors import (
    ProviderAuthError,
    ProviderBadRequest,
    ProviderError,
    ProviderRateLimited,
    ProviderStreamError,
    ProviderUnavailable,
    StreamInterrupted,
)
from tamma_tools.function_tool import tool
from tamma_tools.manager import FunctionCallingManager
from tamma_tools.provider import (
    FunctionCallingConfig,
    MessageRequest,
    OpenAIProvider,
    ProviderConfig,
    StreamError,
    ToolCallArgumentsDelta,
    ToolCallDone,
)
from tamma_tools.provider.transport import INTERRUPTED_MESSAGE
from tests.support.openai_server import (
    OpenAIServer,
    Reply,
    assert_history_valid,
    call,
    chat_chunks,
    openai_fixture,
    sse_body,
    tool_messages,
)

server = openai_fixture
USER = [{"role": "user", "content": "Weather in Oslo?"}]
executed: list[str] = []


@tool(isolation="in_process")
async def weather(city: str) -> str:
    """Current weather for a city."""
    executed.append(city)
    return f"sunny in {city}"


@pytest.fixture(autouse=True)
def _clear() -> None:
    executed.clear()


def provider_for(
    server: OpenAIServer, *, retries: int = 0, timeout_s: float = 30.0
) -> OpenAIProvider:
    mgr = FunctionCallingManager()
    mgr.register_tool(weather)
    config = ProviderConfig(
        api_key="sk-test",
        base_url=server.base_url,
        model="test-model",
        max_retries=retries,
        timeout_s=timeout_s,
        function_calling=FunctionCallingConfig(),
    )
    return OpenAIProvider(config, manager=mgr)


def error_body(message: str, code: str = "bad") -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "code": code}}


WEATHER_CALL = {"tool_calls": [call("call_w", "weather", {"city": "Oslo"})]}


async def run_stream(provider: OpenAIProvider) -> tuple[list[Any], Any]:
    request = MessageRequest(messages=list(USER))
    async with provider.send_message(request) as stream:
        events = [e async for e in stream]
    return events, stream


@pytest.mark.parametrize(
    ("status", "error_cls", "code"),
    [
        (400, ProviderBadRequest, "provider_bad_request"),
        (404, ProviderBadRequest, "provider_bad_request"),
        (401, ProviderAuthError, "provider_auth"),
        (403, ProviderAuthError, "provider_auth"),
        (429, ProviderRateLimited, "provider_rate_limited"),
        (500, ProviderUnavailable, "provider_unavailable"),
        (503, ProviderUnavailable, "provider_unavailable"),
    ],
)
async def test_http_errors_raise_typed_errors_with_status_and_server_message(
    server: OpenAIServer, status: int, error_cls: type[ProviderError], code: str
) -> None:
    server.enqueue(Reply.json(error_body(f"server says {status}"), status=status))
    with pytest.raises(error_cls) as caught:
        await provider_for(server).complete(MessageRequest(messages=USER))
    error = caught.value
    assert error.code == code and error.status == status
    assert f"server says {status}" in error.message and f"HTTP {status}" in error.message
    assert error.body["message"] == f"server says {status}"


async def test_http_errors_end_a_stream_with_an_error_event(server: OpenAIServer) -> None:
    server.enqueue(Reply.json(error_body("Invalid API key", "invalid_api_key"), status=401))
    events, stream = await run_stream(provider_for(server))
    assert len(events) == 1 and isinstance(events[0], StreamError)
    assert events[0].code == "provider_auth" and events[0].data["status"] == 401
    assert isinstance(stream.error, ProviderAuthError) and stream.messages == USER


async def test_the_sdk_retries_429_and_5xx_before_giving_up(server: OpenAIServer) -> None:
    fast = {"retry-after-ms": "1"}
    server.enqueue(
        Reply.json(error_body("slow down"), status=429, headers=fast),
        Reply.json(error_body("overloaded"), status=503, headers=fast),
    )
    server.script = lambda body: {"content": "third time lucky"}
    result = await provider_for(server, retries=2).complete(MessageRequest(messages=USER))
    assert result.content == "third time lucky" and len(server.requests) == 3


async def test_a_stream_cut_mid_arguments_is_interrupted_and_runs_nothing(
    server: OpenAIServer,
) -> None:
    body = sse_body(chat_chunks(WEATHER_CALL, fragment=3))
    cut = body.index(b'"Os')  # inside the arguments of the only call
    server.enqueue(Reply.sse(body, cut_after=cut))
    events, stream = await run_stream(provider_for(server))
    assert any(isinstance(e, ToolCallArgumentsDelta) for e in events)
    assert not any(isinstance(e, ToolCallDone) for e in events)
    assert isinstance(events[-1], StreamError) and events[-1].code == "stream_interrupted"
    assert isinstance(stream.error, StreamInterrupted)
    assert stream.error.message.startswith(INTERRUPTED_MESSAGE.split("(")[0])
    assert executed == [] and stream.messages == USER


async def test_a_stream_that_stops_without_finish_or_done_is_interrupted(
    server: OpenAIServer,
) -> None:
    chunks = chat_chunks(WEATHER_CALL)[:-2]  # no finish_reason chunk, no usage, no [DONE]
    server.enqueue(Reply.events(chunks, done=False))
    events, stream = await run_stream(provider_for(server))
    assert isinstance(events[-1], StreamError) and events[-1].code == "stream_truncated"
    assert isinstance(stream.error, StreamInterrupted) and stream.error.code == "stream_interrupted"
    assert executed == [] and stream.messages == USER


async def test_an_in_stream_error_event_is_a_stream_error_with_the_cause(
    server: OpenAIServer,
) -> None:
    head = sse_body(chat_chunks(WEATHER_CALL)[:3], done=False)
    failure = {"error": {"message": "tool call validation failed", "failed_generation": "{bad"}}
    tail = b"event: error\ndata: " + orjson.dumps(failure) + b"\n\n"
    server.enqueue(Reply.sse(head + tail))
    events, stream = await run_stream(provider_for(server))
    assert isinstance(events[-1], StreamError) and events[-1].code == "provider_error_event"
    assert "tool call validation failed" in events[-1].message
    assert isinstance(stream.error, ProviderStreamError)
    assert stream.error.body["error"]["failed_generation"] == "{bad"
    assert executed == [] and stream.messages == USER


async def test_a_malformed_chunk_fails_the_turn(server: OpenAIServer) -> None:
    head = sse_body(chat_chunks(WEATHER_CALL)[:2], done=False)
    server.enqueue(Reply.sse(head + b'data: {"choices": [{"delta": \n\n' + b"data: [DONE]\n\n"))
    events, stream = await run_stream(provider_for(server))
    assert isinstance(events[-1], StreamError) and events[-1].code == "invalid_chunk"
    assert isinstance(stream.error, ProviderStreamError) and executed == []


async def test_an_error_in_a_200_json_body_raises(server: OpenAIServer) -> None:
    server.enqueue(Reply.json(error_body("upstream provider failed")))
    with pytest.raises(ProviderStreamError, match="upstream provider failed") as caught:
        await provider_for(server).complete(MessageRequest(messages=USER))
    assert caught.value.status == 200


async def test_a_non_json_body_raises(server: OpenAIServer) -> None:
    server.enqueue(Reply(status=200, body=b"<html>Bad gateway</html>", content_type="text/html"))
    with pytest.raises(ProviderStreamError, match="not a JSON object") as caught:
        await provider_for(server).complete(MessageRequest(messages=USER))
    assert "Bad gateway" in caught.value.body


async def test_a_silent_server_times_out_instead_of_hanging(server: OpenAIServer) -> None:
    server.enqueue(Reply(stall_s=3.0, body=b"{}"))
    started = time.perf_counter()
    with pytest.raises(ProviderUnavailable, match=r"did not answer within 0\.3 s"):
        await provider_for(server, timeout_s=0.3).complete(MessageRequest(messages=USER))
    assert time.perf_counter() - started < 2.5


async def test_a_stream_that_goes_quiet_is_interrupted(server: OpenAIServer) -> None:
    reply = Reply.events(chat_chunks(WEATHER_CALL))
    reply.pauses = {2: 3.0}  # silence after two events: the read timeout fires mid-stream
    server.enqueue(reply)
    started = time.perf_counter()
    events, stream = await run_stream(provider_for(server, timeout_s=0.4))
    assert time.perf_counter() - started < 2.5
    assert (
        isinstance(stream.error, StreamInterrupted) and "no data for 0.4 s" in stream.error.message
    )
    assert isinstance(events[-1], StreamError) and stream.messages == USER and executed == []


async def test_an_unreachable_server_is_unavailable(server: OpenAIServer) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = ProviderConfig(
        api_key="k", base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=0
    )
    with pytest.raises(ProviderUnavailable, match="could not be reached"):
        await OpenAIProvider(config, manager=FunctionCallingManager()).complete(
            MessageRequest(messages=USER)
        )


async def test_a_failure_after_tools_ran_keeps_the_completed_turns(server: OpenAIServer) -> None:
    server.enqueue(Reply.events(chat_chunks(WEATHER_CALL)))
    server.enqueue(Reply.json(error_body("context too long"), status=400))
    events, stream = await run_stream(provider_for(server))
    assert executed == ["Oslo"] and isinstance(events[-1], StreamError)
    assert (
        isinstance(stream.error, ProviderBadRequest) and "context too long" in stream.error.message
    )
    history = stream.messages
    assert len(history) == 3 and history[-1] == {
        "role": "tool",
        "tool_call_id": "call_w",
        "content": "sunny in Oslo",
    }
    assert_history_valid(history)
    assert tool_messages(server.bodies[1]) == [{"id": "call_w", "content": "sunny in Oslo"}]


async def test_complete_keeps_the_history_on_the_error(server: OpenAIServer) -> None:
    server.enqueue(
        Reply.json(
            {
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", **WEATHER_CALL},
                        "finish_reason": "tool_calls",
                    }
                ]
            }
        )
    )
    server.enqueue(Reply.json(error_body("boom"), status=500))
    with pytest.raises(ProviderUnavailable) as caught:
        await provider_for(server).complete(MessageRequest(messages=USER))
    result = caught.value.details["result"]
    assert result.stop_reason == "error" and len(result.messages) == 3
    assert_history_valid(result.messages)


async def test_a_json_error_body_answering_a_stream_request_is_a_stream_error(
    server: OpenAIServer,
) -> None:
    server.enqueue(Reply.json(error_body("Upstream model is overloaded")))  # HTTP 200, JSON
    events, stream = await run_stream(provider_for(server))
    assert isinstance(events[-1], StreamError) and events[-1].code == "provider_stream_error"
    assert isinstance(stream.error, ProviderStreamError)
    assert "Upstream model is overloaded" in stream.error.message and stream.error.status == 200
    assert stream.messages == USER
