"""Streaming tool-call accumulator: chat-completion chunks in, events and finished tool calls out.

Pure (no I/O, no clock), so any chunking of the same stream gives the same calls, and so it can be
fed recorded traffic in tests. It absorbs the quirks of OpenAI-compatible servers listed in the
conformance folder's ``provider-quirks/QUIRKS.md``; each rule below cites its entry.

Decisions where servers disagree:

* **finish_reason.** ``finish_reason`` is the normalised value: when tool calls were accumulated and
  the server said ``stop``, ``""``, ``function_call`` or nothing at all, it is ``tool_calls`` (D1,
  D2, D4: Gemini compat, Snowflake, LiteLLM, and OpenAI itself at times). ``length`` and
  ``content_filter`` are kept, so a caller can refuse to run arguments cut off mid-way.
  ``raw_finish_reason`` is the last non-null value the server sent (A4, A8: it may repeat).
* **Choices.** Every choice is accumulated separately (``snapshot()``); ``message()``,
  ``tool_calls`` and the tool-call events are for the primary choice: 0 unless ``choice_index``
  says otherwise.
  ``fold_choices=True`` folds every choice index into the primary one, for servers that number
  choices per token although ``n`` was 1 (TGI before PR #1648, B5).
* **Failed turns.** An ``event: error`` frame, a chunk with a top-level ``error`` (A3, A4), a
  payload that is not a JSON object, or an end of input with neither ``[DONE]`` nor any
  ``finish_reason`` (A9) fail the turn: :attr:`StreamAccumulator.error` is set, a
  :class:`StreamError` is emitted once, and ``finish()`` emits no :class:`ToolCallDone`, so no
  half-built call runs. The calls stay readable through ``tool_calls`` for diagnostics.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson

from tamma_tools.provider._wire import (
    _KNOWN_CALL_KEYS,
    ERROR_EVENT_MESSAGE,
    _assistant_message,
    _effective_finish_reason,
    _error_detail,
    _function_calls,
    _loads_object,
    _sort_key,
    _text_of_parts,
    message_from_completion,
    new_call_id,
)
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
from tamma_tools.types import FunctionCall

__all__ = [
    "ERROR_EVENT",
    "INVALID_CHUNK",
    "STREAM_TRUNCATED",
    "StreamAccumulator",
    "message_from_completion",
    "new_call_id",
]

logger = logging.getLogger(__name__)

ERROR_EVENT = "provider_error_event"
"""StreamError code: the server reported an error inside a 200 stream (QUIRKS A3, A4)."""
INVALID_CHUNK = "invalid_chunk"
"""StreamError code: a payload was not a chat-completion chunk (not JSON, or not an object)."""
STREAM_TRUNCATED = "stream_truncated"
"""StreamError code: the input ended with neither ``[DONE]`` nor any ``finish_reason`` (A9)."""

TRUNCATED_MESSAGE = (
    "the stream ended without [DONE] and without a finish_reason; it was cut off, so its tool "
    "calls are incomplete and were not run"
)
INVALID_CHUNK_MESSAGE = "a stream payload is not a chat-completion chunk object: {detail}"
_DATA_OBJECT: dict[type, Any] = {str: "data: {", bytes: b"data: {"}


class _Call:
    """One tool call under construction: argument fragments are kept as a list, joined once."""

    __slots__ = (
        "extra",
        "generated_id",
        "name",
        "ordinal",
        "parts",
        "raw_id",
        "raw_index",
    )

    def __init__(self, ordinal: int, raw_index: Any) -> None:
        self.ordinal = ordinal
        self.raw_index = raw_index
        self.raw_id: str | None = None
        self.generated_id: str | None = None
        self.name: str | None = None
        self.parts: list[str] = []
        self.extra: dict[str, Any] | None = None

    def current_id(self, id_factory: Callable[[], str]) -> str:
        if self.raw_id is not None:
            return self.raw_id
        if self.generated_id is None:
            self.generated_id = id_factory()
        return self.generated_id

    def raw_arguments(self) -> str | None:
        return "".join(self.parts) or None


class _Choice:
    """Accumulated state of one choice index."""

    __slots__ = ("by_id", "by_index", "calls", "content", "finish_reason", "reasoning", "refusal")

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.refusal: list[str] = []
        self.calls: list[_Call] = []
        self.by_index: dict[Any, _Call] = {}
        self.by_id: dict[str, _Call] = {}
        self.finish_reason: str | None = None


class StreamAccumulator:
    """Turns one streamed chat completion into events, the assistant message and tool calls.

    Feed parsed chunks with :meth:`feed_chunk` or raw SSE lines with :meth:`feed_line` (or raw
    body pieces with :meth:`feed_text`), then call :meth:`finish` at end of input. ``[DONE]``
    finishes by itself; calling :meth:`finish` again is harmless. One accumulator per HTTP
    response: chunk ids are never used for grouping (LiteLLM changes them per chunk, B4).
    """

    __slots__ = (
        "_calls_cache",
        "_choices",
        "_closed",
        "_done",
        "_error",
        "_fold",
        "_id_factory",
        "_primary",
        "_sse",
        "_usage",
    )

    def __init__(
        self,
        *,
        choice_index: int = 0,
        fold_choices: bool = False,
        id_factory: Callable[[], str] = new_call_id,
    ) -> None:
        self._primary = choice_index
        self._fold = fold_choices
        self._id_factory = id_factory
        self._sse = SSEParser()
        self._choices: dict[Any, _Choice] = {}
        self._usage: dict[str, Any] | None = None
        self._error: StreamError | None = None
        self._done = False
        self._closed = False
        self._calls_cache: list[FunctionCall] | None = None

    # ------------------------------------------------------------------ input

    def feed_line(self, line: str | bytes) -> list[StreamEvent]:
        """Feed one SSE line (with or without its line terminator)."""
        sse = self._sse
        if not sse._data and not sse._event:
            if not line:
                return []  # the blank line after an event already handled below
            prefix = _DATA_OBJECT.get(line.__class__)
            if prefix is not None and line.startswith(prefix):
                # Hot path: a one-line event. Parsing it before its blank line arrives is what
                # the SSE rules give too: a complete JSON object followed by a further data line
                # can never be valid JSON, so the only possible continuation is whitespace.
                try:
                    chunk = orjson.loads(line[6:])
                except orjson.JSONDecodeError:
                    pass  # a multi-line event after all: let the parser collect it
                else:
                    if chunk.__class__ is dict:
                        return self.feed_chunk(chunk)
        message = sse.feed_line(line)
        if message is None:
            return []
        return self._feed_message(message)

    def feed_text(self, text: str | bytes) -> list[StreamEvent]:
        """Feed any piece of the raw SSE body; lines may be split anywhere."""
        events: list[StreamEvent] = []
        for message in self._sse.feed(text):
            events.extend(self._feed_message(message))
        return events

    def feed_chunk(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        """Feed one parsed ``chat.completion.chunk`` object."""
        if self._closed:
            return []
        events: list[StreamEvent] = []
        try:
            error = chunk.get("error")
            if error is not None:
                # A4: the error may ride in a normal chunk that also has choices and usage.
                self._fail(ERROR_EVENT, _error_detail(error), {"error": error}, events)
            usage = chunk.get("usage")
            if usage is not None and usage.__class__ is dict:
                self._usage = usage  # A5, A6: take usage from whichever chunk carries it.
            choices = chunk.get("choices")
            if choices:  # A5, B1, B3: choices may be [] anywhere in the stream.
                for choice in choices:
                    self._feed_choice(choice, events)
        except (AttributeError, TypeError, ValueError) as exc:
            self._fail(INVALID_CHUNK, f"malformed chunk ({exc})", {"chunk": chunk}, events)
        return events

    def finish(self) -> list[StreamEvent]:
        """End of input: emit a :class:`ToolCallDone` per call, or the reason the turn failed."""
        if self._closed:
            return []
        events: list[StreamEvent] = []
        pending = self._sse.flush()
        if pending is not None:
            events.extend(self._feed_message(pending))
            if self._closed:  # the pending message was [DONE]
                return events
        if (
            self._error is None
            and not self._done
            and all(state.finish_reason is None for state in self._choices.values())
        ):
            self._fail(STREAM_TRUNCATED, TRUNCATED_MESSAGE, {}, events)
        self._closed = True
        calls = self._build_calls()
        self._calls_cache = calls
        if self._error is None:
            events.extend(ToolCallDone(call) for call in calls)
        return events

    # ---------------------------------------------------------------- results

    @property
    def tool_calls(self) -> list[FunctionCall]:
        """The primary choice's tool calls, in order of first appearance, with ids filled in."""
        if self._calls_cache is not None:
            return list(self._calls_cache)
        return self._build_calls()

    @property
    def finish_reason(self) -> str | None:
        """The normalised finish reason of the primary choice (see the module docstring)."""
        state = self._choices.get(self._primary)
        if state is None:
            return None
        return _effective_finish_reason(state.finish_reason, bool(state.calls), self._closed)

    @property
    def raw_finish_reason(self) -> str | None:
        """The last non-null ``finish_reason`` the server sent for the primary choice."""
        state = self._choices.get(self._primary)
        return None if state is None else state.finish_reason

    @property
    def usage(self) -> dict[str, Any] | None:
        """The last ``usage`` object seen on any chunk."""
        return self._usage

    @property
    def error(self) -> StreamError | None:
        """Why the turn failed, or ``None``; check it before running ``tool_calls``."""
        return self._error

    @property
    def done(self) -> bool:
        """``True`` once the input is finished (``[DONE]`` or :meth:`finish`)."""
        return self._closed

    @property
    def reasoning(self) -> str | None:
        """The primary choice's reasoning text, kept out of ``message()`` (QUIRKS B7)."""
        state = self._choices.get(self._primary)
        return "".join(state.reasoning) or None if state is not None else None

    def message(self, *, normalize_arguments: bool = True) -> dict[str, Any]:
        """The assistant message in OpenAI shape, ready to append to the history.

        With ``normalize_arguments``, arguments that are not valid JSON are replayed as ``"{}"``:
        DashScope rejects the whole next request otherwise (QUIRKS F3); the tool message for that
        call carries the parse error to the model.
        """
        state = self._choices.get(self._primary)
        if state is None:
            return _assistant_message(None, None, [], normalize_arguments)
        return _assistant_message(
            "".join(state.content) or None,
            "".join(state.refusal) or None,
            self.tool_calls,
            normalize_arguments,
        )

    def snapshot(self) -> dict[str, Any]:
        """Every choice as accumulated, with the server's own ids and indexes (for diagnostics).

        The shape is the ``expected`` shape of the conformance manifests: raw ids (``None`` when
        the server sent none), ``arguments`` ``None`` when the server sent none.
        """
        choices = []
        for index in sorted(self._choices, key=_sort_key):
            state = self._choices[index]
            calls = []
            for call in state.calls:
                entry: dict[str, Any] = {
                    "index": call.ordinal if call.raw_index is None else call.raw_index,
                    "id": call.raw_id,
                    "type": "function",
                    "name": call.name,
                    "arguments": call.raw_arguments(),
                }
                if call.extra:
                    entry["extra"] = call.extra
                calls.append(entry)
            choices.append(
                {
                    "index": index,
                    "content": "".join(state.content) or None,
                    "reasoning": "".join(state.reasoning) or None,
                    "refusal": "".join(state.refusal) or None,
                    "tool_calls": calls,
                    "finish_reason": state.finish_reason,
                    "effective_finish_reason": _effective_finish_reason(
                        state.finish_reason, bool(state.calls), self._closed
                    ),
                }
            )
        return {"choices": choices}

    # -------------------------------------------------------------- internals

    def _feed_message(self, message: SSEMessage) -> list[StreamEvent]:
        if self._closed:
            return []
        data = message.data
        if message.event == "error":  # A3: Groq's failed stream, HTTP status 200.
            events: list[StreamEvent] = []
            payload = _loads_object(data)
            if payload is None:
                payload = {"data": data}
            error = payload.get("error", payload)
            self._fail(ERROR_EVENT, _error_detail(error), payload, events)
            return events
        if data == DONE:
            self._done = True
            return self.finish()
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return self._feed_unparsed(data)
        if chunk.__class__ is not dict:
            return self._invalid(f"expected a JSON object, got {type(chunk).__name__}", data)
        return self.feed_chunk(chunk)

    def _feed_unparsed(self, data: str) -> list[StreamEvent]:
        # Servers that drop the blank line between events make the SSE rules join several data
        # lines into one payload; when every line is a payload of its own, take them one by one.
        if "\n" in data:
            lines = data.split("\n")
            if all(line == DONE or _loads_object(line) is not None for line in lines):
                events: list[StreamEvent] = []
                for line in lines:
                    events.extend(self._feed_message(SSEMessage("", line)))
                return events
        return self._invalid("not valid JSON", data)

    def _invalid(self, detail: str, data: str) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        self._fail(INVALID_CHUNK, detail, {"data": data[:2000]}, events)
        return events

    def _fail(
        self, code: str, detail: str, data: dict[str, Any], events: list[StreamEvent]
    ) -> None:
        if self._error is not None:
            return
        if code == ERROR_EVENT:
            message = ERROR_EVENT_MESSAGE.format(detail=detail)
        elif code == INVALID_CHUNK:
            message = INVALID_CHUNK_MESSAGE.format(detail=detail)
        else:
            message = detail
        self._error = StreamError(code, message, data)
        events.append(self._error)

    def _feed_choice(self, choice: dict[str, Any], events: list[StreamEvent]) -> None:
        index = self._primary if self._fold else (choice.get("index") or 0)
        state = self._choices.get(index)
        if state is None:
            state = self._choices[index] = _Choice()
        primary = index == self._primary
        delta = choice.get("delta")  # B2: Azure's trailing filter chunks have no delta at all.
        if delta:
            tool_calls = delta.get("tool_calls")
            if tool_calls is None or len(delta) > 1:  # a delta of tool calls alone skips this
                self._feed_text(state, delta, index, primary, events)
            if tool_calls:
                for position, tool_call in enumerate(tool_calls):
                    # Fast path for the common continuation delta, {"index": i, "function":
                    # {"arguments": "..."}} at a known index: what the general path would do.
                    if len(tool_call) == 2:
                        call = state.by_index.get(tool_call.get("index"))
                        function = tool_call.get("function")
                        if call is not None and function and len(function) == 1:
                            arguments = function.get("arguments")
                            if arguments.__class__ is str:
                                if arguments:
                                    call.parts.append(arguments)
                                    if primary:
                                        events.append(
                                            ToolCallArgumentsDelta(
                                                call.ordinal,
                                                call.raw_id or call.current_id(self._id_factory),
                                                arguments,
                                            )
                                        )
                                continue
                    self._feed_tool_call(state, tool_call, position, primary, events)
            else:
                legacy = delta.get("function_call")
                if legacy and (legacy.get("name") or legacy.get("arguments")):  # E6: stubs
                    self._feed_tool_call(state, {"function": legacy}, 0, primary, events)
        finish_reason = choice.get("finish_reason")
        if finish_reason is not None:  # A7: a missing key is the same as null.
            if finish_reason.__class__ is not str:
                raise TypeError("finish_reason must be a string")
            state.finish_reason = finish_reason

    def _feed_text(
        self,
        state: _Choice,
        delta: dict[str, Any],
        index: Any,
        primary: bool,
        events: list[StreamEvent],
    ) -> None:
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning and reasoning.__class__ is str:
            state.reasoning.append(reasoning)
            events.append(ReasoningDelta(reasoning, index))
        content = delta.get("content")
        if content:  # B8: "" repeated on every delta is nothing.
            if content.__class__ is not str:
                content = _text_of_parts(content)  # B7: Mistral sends a list of parts.
            if content:
                state.content.append(content)
                events.append(TextDelta(content, index))
        refusal = delta.get("refusal")
        if refusal:  # B9: only a non-empty refusal is one.
            if refusal.__class__ is not str:
                raise TypeError("refusal must be a string")
            state.refusal.append(refusal)
            if primary:
                events.append(RefusalDelta(refusal))

    def _feed_tool_call(
        self,
        state: _Choice,
        delta: dict[str, Any],
        position: int,
        primary: bool,
        events: list[StreamEvent],
    ) -> None:
        raw_index = delta.get("index")
        raw_id = delta.get("id") or None  # C6: "" is no id.
        function = delta.get("function")
        if function:
            name = function.get("name") or None  # C10: "" is no name.
            arguments = function.get("arguments")
        else:
            name = arguments = None
        if not isinstance(raw_id, str | None) or not isinstance(name, str | None):
            raise TypeError("tool-call id and function name must be strings")

        # Which call does this delta belong to? By id first (C7), then by index (C1, C4), then,
        # with no index at all, the last open call (C2).
        call = state.by_id.get(raw_id) if raw_id is not None else None
        if call is None:
            if raw_index is not None:
                call = state.by_index.get(raw_index)
                # C3: a different id *with a name* at a known index is a new parallel call; a
                # different id without a name is the same call (C8: vLLM harmony sends new ids).
                if (
                    call is not None
                    and raw_id is not None
                    and call.raw_id is not None
                    and name is not None
                ):
                    call = None
            elif position == 0 and state.calls:
                last = state.calls[-1]
                if raw_id is None or (last.raw_id is None and name in (None, last.name)):
                    call = last

        if call is not None and name is not None and call.name is not None:
            current = call.name
            if name == current:  # C9: an identical repeated name is not appended.
                name = None
            elif name.startswith(current):
                call.name, name = name, None  # a server resending the growing name
            elif call.parts:
                call = None  # C3: a second call glued onto the first one's index
            else:
                call.name, name = current + name, None  # a name streamed in fragments

        if call is None:
            call = _Call(len(state.calls), raw_index)
            state.calls.append(call)
            if raw_index is not None:
                state.by_index[raw_index] = call
        # C6, C7: the first non-empty id wins; an id already taken by another call of this
        # turn is not reused, so every tool message still matches exactly one call.
        if raw_id is not None and call.raw_id is None and raw_id not in state.by_id:
            call.raw_id = raw_id
            state.by_id[raw_id] = call
        if len(delta) > 2:
            for key in delta:
                if key not in _KNOWN_CALL_KEYS:
                    if call.extra is None:
                        call.extra = {}
                    call.extra[key] = delta[key]
        if name is not None and call.name is None:
            call.name = name
            if primary:
                events.append(
                    ToolCallStarted(call.ordinal, call.current_id(self._id_factory), name)
                )
        if arguments is not None:
            if arguments.__class__ is not str:
                # Ollama and older vLLM send the arguments as an object.
                arguments = orjson.dumps(arguments).decode()
            if arguments:  # C12: a trailing "" is harmless and is not a new call.
                call.parts.append(arguments)
                if primary:
                    events.append(
                        ToolCallArgumentsDelta(
                            call.ordinal, call.current_id(self._id_factory), arguments
                        )
                    )

    def _build_calls(self) -> list[FunctionCall]:
        state = self._choices.get(self._primary)
        if state is None:
            return []
        calls: list[FunctionCall] = []
        for call in state.calls:
            calls.extend(
                _function_calls(
                    call.current_id(self._id_factory),
                    call.name or "",
                    call.raw_arguments(),
                    call.extra,
                    self._id_factory,
                )
            )
        return calls
