"""Responses API turns: ``/responses``, with ``function_call`` items out and
``function_call_output`` items back (the input side is built in ``request.py``).

The loop keeps one history in Chat Completions shape, so a turn's output items are folded into
one assistant message: output text becomes ``content``, each ``function_call`` a tool call whose
id is the item's ``call_id`` (the id ``function_call_output`` must answer). ``ResponsesAccumulator``
is pure, like the chat accumulator: it is fed SSE messages and emits the same events.

When a turn has ``reasoning`` items, its output items are kept verbatim
(``TurnOutcome.preamble``) and sent back as they came: OpenAI pairs a reasoning item with the
``function_call`` or message item that follows it by item id, and rejects a call whose reasoning
is missing (and reasoning whose following item is). With ``store: false`` the server cannot look
items up, so they are replayed only when every reasoning item carries ``encrypted_content``;
otherwise the turn is sent back rebuilt from the assistant message, without item ids.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import orjson

from tamma_tools.provider.accumulator import new_call_id
from tamma_tools.provider.events import (
    ReasoningDelta,
    RefusalDelta,
    StreamError,
    StreamEvent,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallDone,
    ToolCallStarted,
)
from tamma_tools.provider.sse import DONE, SSEMessage, SSEParser
from tamma_tools.provider.transport import RawTransport
from tamma_tools.provider.turn import TurnOutcome
from tamma_tools.types import FunctionCall, FunctionCallFunction

__all__ = [
    "RESPONSE_ERROR",
    "RESPONSE_TRUNCATED",
    "ResponsesAccumulator",
    "ResponsesTurns",
    "outcome_from_response",
]

PATH = "/responses"

RESPONSE_ERROR = "provider_error_event"
"""StreamError code: ``error`` / ``response.failed`` event, or a failed response body."""
RESPONSE_TRUNCATED = "stream_truncated"
"""StreamError code: the stream ended before ``response.completed`` (or incomplete/failed)."""
RESPONSE_TRUNCATED_MESSAGE = (
    "the Responses stream ended before response.completed; it was cut off, so its function "
    "calls are incomplete and were not run"
)
INVALID_EVENT_MESSAGE = "a Responses stream payload is not a JSON object: {detail}"

_INCOMPLETE_FINISH = {"max_output_tokens": "length", "content_filter": "content_filter"}


class _Call:
    __slots__ = ("arguments", "call_id", "name", "ordinal")

    def __init__(self, ordinal: int, call_id: str, name: str, arguments: str) -> None:
        self.ordinal = ordinal
        self.call_id = call_id
        self.name = name
        self.arguments = [arguments] if arguments else []


def _usage(raw: Any) -> dict[str, Any] | None:
    """Responses usage in the Chat Completions keys, so totals add up across APIs."""
    if not isinstance(raw, dict):
        return None
    prompt = raw.get("input_tokens", 0) or 0
    completion = raw.get("output_tokens", 0) or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": raw.get("total_tokens", prompt + completion) or 0,
    }


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error.get("code") or error)
    return str(error)


class ResponsesAccumulator:
    """Responses API stream events in, our stream events and one assistant message out."""

    def __init__(self, *, store: bool = True) -> None:
        """``store``: the request's ``store`` flag (False: keep only self-contained reasoning)."""
        self._store = store
        self._items: list[dict[str, Any]] = []
        """Finished output items, in order (``response.output_item.done``)."""
        self._sse = SSEParser()
        self._text: list[str] = []
        self._refusal: list[str] = []
        self._calls: list[_Call] = []
        self._by_item: dict[Any, _Call] = {}
        self._status: str | None = None
        self._incomplete_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.error: StreamError | None = None
        self.done = False

    def feed_line(self, line: str) -> list[StreamEvent]:
        message = self._sse.feed_line(line)
        return [] if message is None else self.feed_message(message)

    def feed_text(self, text: str | bytes) -> list[StreamEvent]:
        """Any piece of the raw body; lines and UTF-8 characters may be split anywhere."""
        events: list[StreamEvent] = []
        for message in self._sse.feed(text):
            events.extend(self.feed_message(message))
        return events

    def feed_message(self, message: SSEMessage) -> list[StreamEvent]:
        if self.done or message.data == DONE:
            return []
        try:
            event = orjson.loads(message.data)
        except orjson.JSONDecodeError as exc:
            return self._fail(INVALID_EVENT_MESSAGE.format(detail=exc), {"data": message.data})
        if not isinstance(event, dict):
            return self._fail(
                INVALID_EVENT_MESSAGE.format(detail=type(event).__name__), {"data": message.data}
            )
        return self.feed_event(event, message.event)

    def feed_event(self, event: dict[str, Any], name: str = "") -> list[StreamEvent]:
        kind = event.get("type") or name
        if kind == "response.output_text.delta":
            delta = event.get("delta") or ""
            self._text.append(delta)
            return [TextDelta(delta)] if delta else []
        if kind == "response.function_call_arguments.delta":
            call = self._by_item.get(event.get("item_id")) or self._by_item.get(
                event.get("output_index")
            )
            delta = event.get("delta") or ""
            if call is None or not delta:
                return []
            call.arguments.append(delta)
            return [ToolCallArgumentsDelta(call.ordinal, call.call_id, delta)]
        if kind == "response.output_item.added":
            return self._item_added(event)
        if kind == "response.output_item.done":
            self._item_done(event.get("item"))
            return []
        if kind == "response.refusal.delta":
            delta = event.get("delta") or ""
            self._refusal.append(delta)
            return [RefusalDelta(delta)] if delta else []
        if kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            return [ReasoningDelta(event.get("delta") or "")]
        if kind in ("response.completed", "response.incomplete"):
            return self._completed(event.get("response") or {})
        if kind in ("response.failed", "error"):
            response = event.get("response")
            error = response.get("error") if isinstance(response, dict) else event.get("error")
            error = error or {k: v for k, v in event.items() if k != "type"}
            return self._fail(f"the server reported an error: {_error_text(error)}", event)
        return []

    def finish(self) -> list[StreamEvent]:
        """End of input: a stream without ``response.completed`` failed the turn."""
        events: list[StreamEvent] = []
        pending = self._sse.flush()
        if pending is not None:
            events.extend(self.feed_message(pending))
        if not self.done:
            events.extend(self._fail(RESPONSE_TRUNCATED_MESSAGE, {}, code=RESPONSE_TRUNCATED))
        return events

    def _item_added(self, event: dict[str, Any]) -> list[StreamEvent]:
        item = event.get("item")
        if not isinstance(item, dict) or item.get("type") != "function_call":
            return []
        call = _Call(
            len(self._calls),
            str(item.get("call_id") or new_call_id()),
            str(item.get("name") or ""),
            str(item.get("arguments") or ""),
        )
        self._calls.append(call)
        self._by_item[item.get("id")] = call
        self._by_item[event.get("output_index")] = call
        return [ToolCallStarted(call.ordinal, call.call_id, call.name)]

    def _item_done(self, item: Any) -> None:
        # The finished item is authoritative: its arguments replace the concatenated deltas.
        if isinstance(item, dict):
            self._items.append(item)
        if not isinstance(item, dict) or item.get("type") != "function_call":
            return
        call = self._by_item.get(item.get("id"))
        if call is not None and isinstance(item.get("arguments"), str):
            call.arguments = [item["arguments"]]

    def _read_output(self, output: Any) -> None:
        """Take text and calls from finished output items (a body, or a stream whose server
        sent ``response.completed`` without the item and delta events)."""
        for item in output if isinstance(output, list) else []:
            if not isinstance(item, dict):
                continue
            if item.get("type") == "function_call":
                self._item_added({"item": item, "output_index": None})
            elif item.get("type") == "message":
                for part in item.get("content") or []:
                    if isinstance(part, dict) and part.get("type") == "output_text":
                        self._text.append(str(part.get("text") or ""))
                    elif isinstance(part, dict) and part.get("type") == "refusal":
                        self._refusal.append(str(part.get("refusal") or ""))

    def _completed(self, response: dict[str, Any]) -> list[StreamEvent]:
        output = response.get("output")
        if not (self._calls or self._text or self._refusal):
            self._read_output(output)
        if isinstance(output, list) and output:  # the final items are authoritative
            self._items = [item for item in output if isinstance(item, dict)]
        self._status = response.get("status")
        details = response.get("incomplete_details")
        if isinstance(details, dict):
            self._incomplete_reason = details.get("reason")
        self.usage = _usage(response.get("usage"))
        self.done = True
        return [ToolCallDone(call) for call in self.tool_calls]

    def _fail(
        self, text: str, data: dict[str, Any], *, code: str = RESPONSE_ERROR
    ) -> list[StreamEvent]:
        self.done = True
        if self.error is not None:
            return []
        self.error = StreamError(code, text, data)
        return [self.error]

    @property
    def tool_calls(self) -> list[FunctionCall]:
        return [
            FunctionCall(
                id=c.call_id,
                function=FunctionCallFunction(name=c.name, arguments="".join(c.arguments)),
            )
            for c in self._calls
        ]

    @property
    def finish_reason(self) -> str | None:
        if self._status == "incomplete":
            return _INCOMPLETE_FINISH.get(self._incomplete_reason or "", "length")
        if self._calls:
            return "tool_calls"
        return "stop" if self._status is not None else None

    @property
    def preamble(self) -> list[dict[str, Any]]:
        """The turn's output items when they must be replayed as they are (see the module
        docstring); empty when the assistant message alone says everything."""
        reasoning = [item for item in self._items if item.get("type") == "reasoning"]
        if not reasoning:
            return []
        if not self._store and not all(item.get("encrypted_content") for item in reasoning):
            return []
        return list(self._items)

    def message(self) -> dict[str, Any]:
        return _assistant(
            "".join(self._text) or None, "".join(self._refusal) or None, self.tool_calls
        )


def _assistant(
    content: str | None, refusal: str | None, calls: list[FunctionCall]
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if refusal:
        message["refusal"] = refusal
    if calls:
        message["tool_calls"] = [c.to_openai() for c in calls]
    return message


def outcome_from_response(body: dict[str, Any], *, store: bool = True) -> TurnOutcome:
    """A non-streamed Responses API body as the turn's outcome."""
    acc = ResponsesAccumulator(store=store)
    if body.get("error") or body.get("status") == "failed":
        acc._read_output(body.get("output"))
        acc._fail(f"the server reported an error: {_error_text(body.get('error'))}", body)
    else:
        acc._completed(body)
    return _outcome(acc)


def _outcome(acc: ResponsesAccumulator) -> TurnOutcome:
    return TurnOutcome(acc.message(), acc.tool_calls, acc.finish_reason, acc.usage, acc.error,
                       acc.preamble)  # fmt: skip


class ResponsesTurns:
    """``turn(body, stream)`` for the Responses API over one transport."""

    __slots__ = ("transport",)

    def __init__(self, transport: RawTransport) -> None:
        self.transport = transport

    async def __call__(
        self, body: dict[str, Any], stream: bool
    ) -> AsyncGenerator[list[StreamEvent] | TurnOutcome, None]:
        store = body.get("store") is not False
        if not stream:
            yield outcome_from_response(await self.transport.post_json(PATH, body), store=store)
            return
        acc = ResponsesAccumulator(store=store)
        pieces = self.transport.stream_bytes(PATH, body)
        try:
            async for piece in pieces:
                events = acc.feed_text(piece)
                if events:
                    yield events
                if acc.done:
                    break
        finally:
            await pieces.aclose()
        events = acc.finish()
        if events:
            yield events
        yield _outcome(acc)
