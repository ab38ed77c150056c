"""Every recorded response replays over real HTTP, through the real SDK and the provider, to the
tool calls and finish reason its MANIFEST expects; error recordings end in typed errors.

Recordings: ``openai-recorded`` (live OpenAI API) and ``provider-quirks`` (other
OpenAI-compatible servers), served byte for byte by the loopback server. The provider runs with
``auto_execute=False`` so the calls come back unexecuted, exactly as the server sent them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tamma_tools.errors import (
    ProviderBadRequest,
    ProviderError,
    ProviderStreamError,
    StreamInterrupted,
)
from tamma_tools.provider import (
    FunctionCallingConfig,
    MessageRequest,
    OpenAIProvider,
    ProviderConfig,
    StreamError,
    ToolCallDone,
)
from tests.conftest import CONFORMANCE_DIR
from tests.support.openai_server import OpenAIServer, Reply, openai_fixture

RECORDED = CONFORMANCE_DIR / "openai-recorded"
QUIRKS = CONFORMANCE_DIR / "provider-quirks"

server = openai_fixture


def _entries(folder: Path) -> list[Any]:
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    return [pytest.param(folder, e, id=e["file"]) for e in manifest["entries"]]


def _reply(folder: Path, entry: dict[str, Any]) -> Reply:
    path = folder / entry["file"]
    raw = path.read_bytes()
    status = entry.get("http_status") or (
        400 if entry.get("kind") == "error" and not entry["streaming"] else 200
    )
    if path.suffix == ".sse":
        return Reply.sse(raw, status=status)
    if path.suffix == ".jsonl":
        # The capture kept parsed chunks only: frame each as an SSE event, and end complete
        # streams with [DONE] the way the servers did.
        chunks = [line.encode() for line in raw.decode().splitlines() if line.strip()]
        return Reply.events(chunks, done=entry.get("stream_complete", True), status=status)
    return Reply.json(raw, status=status)


def _provider(server: OpenAIServer) -> OpenAIProvider:
    config = ProviderConfig(
        api_key="sk-test",
        base_url=server.base_url,
        model="replay-model",
        max_retries=0,
        function_calling=FunctionCallingConfig(auto_execute=False),
    )
    return OpenAIProvider(config)


def _expected_choice(entry: dict[str, Any]) -> dict[str, Any] | None:
    choices: list[dict[str, Any]] = entry["expected"].get("choices", [])
    return next((c for c in choices if c["index"] == 0), None)


def _expected_finish(entry: dict[str, Any], choice: dict[str, Any] | None) -> str | None:
    if choice is None:
        return None
    return choice.get("effective_finish_reason", choice.get("finish_reason"))


def _assert_calls(got: list[dict[str, Any]], choice: dict[str, Any] | None) -> None:
    expected = [] if choice is None else choice.get("tool_calls", [])
    assert len(got) == len(expected)
    for call, want in zip(got, expected, strict=True):
        assert call["type"] == "function"
        assert call["function"]["name"] == want["name"]
        if want["arguments"] is None:
            # No arguments sent at all: replayed as an empty object (QUIRKS E5).
            assert call["function"]["arguments"] in ("{}", "")
        else:
            assert json.loads(call["function"]["arguments"]) == json.loads(want["arguments"])
        if want["id"]:
            assert call["id"] == want["id"]  # server ids come back unchanged, any length
        else:
            assert call["id"].startswith("call_") and len(call["id"]) <= 40


def _is_error(entry: dict[str, Any]) -> bool:
    return entry.get("kind") == "error" or entry.get("category") == "error"


def _is_truncated(entry: dict[str, Any]) -> bool:
    choice = _expected_choice(entry)
    return not entry.get("stream_complete", True) and (
        choice is None or choice.get("finish_reason") is None
    )


async def _replay(server: OpenAIServer, folder: Path, entry: dict[str, Any]) -> None:
    server.enqueue(_reply(folder, entry))
    provider = _provider(server)
    request = MessageRequest(messages=[{"role": "user", "content": "replay"}])
    choice = _expected_choice(entry)
    if not entry["streaming"]:
        if _is_error(entry):
            with pytest.raises(ProviderError) as caught:
                await provider.complete(request)
            assert isinstance(caught.value, ProviderBadRequest)
            assert caught.value.status == 400
            assert caught.value.body  # the server's own error object is kept as the cause
            return
        result = await provider.complete(request)
        assert result.stop_reason in ("final", "tool_calls")
        assert result.messages[-1] is result.message
        _assert_calls(result.message.get("tool_calls", []), choice)
        assert result.finish_reason == _expected_finish(entry, choice)
        return

    events = []
    async with provider.send_message(request) as stream:
        async for event in stream:
            events.append(event)
    if _is_error(entry) or _is_truncated(entry):
        assert isinstance(events[-1], StreamError)
        assert isinstance(
            stream.error, StreamInterrupted if _is_truncated(entry) else ProviderStreamError
        )
        assert not any(isinstance(e, ToolCallDone) for e in events)  # nothing half-built runs
        assert stream.messages == request.messages  # nothing of the failed turn in the history
        return
    result = stream.result()
    assert stream.error is None and result.message is not None
    calls = result.message.get("tool_calls", [])
    _assert_calls(calls, choice)
    done = [e.call.to_openai() for e in events if isinstance(e, ToolCallDone)]
    assert [c["id"] for c in done] == [c["id"] for c in calls]
    assert result.finish_reason == _expected_finish(entry, choice)
    if choice is not None and choice.get("content"):
        assert result.message["content"] == choice["content"]


@pytest.mark.parametrize(("folder", "entry"), _entries(RECORDED))
async def test_openai_recording_replays(
    server: OpenAIServer, folder: Path, entry: dict[str, Any]
) -> None:
    await _replay(server, folder, entry)


@pytest.mark.parametrize(("folder", "entry"), _entries(QUIRKS))
async def test_provider_quirk_replays(
    server: OpenAIServer, folder: Path, entry: dict[str, Any]
) -> None:
    await _replay(server, folder, entry)


async def test_every_replay_went_over_http_with_a_streaming_request(
    server: OpenAIServer,
) -> None:
    entry = next(e.values[1] for e in _entries(RECORDED) if e.values[1]["streaming"])
    await _replay(server, RECORDED, entry)
    (sent,) = server.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}
