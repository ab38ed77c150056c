"""The function-calling loop: send, collect tool calls, execute them through the manager, repeat.

Invariant: ``messages`` is valid to send at every moment a caller can look at it. A turn's
assistant message enters the history only once the turn ended cleanly, and it is always followed
by one tool message per call id: the real result, or a stub saying why the call did not run
(stopped by a rule below, cancelled because the caller closed the stream, denied, ...). The API
rejects the next request with HTTP 400 otherwise.

Stop rules, in the order they are checked after each turn: a failed turn (error event, HTTP error,
cut stream); no tool calls (the final answer); ``auto_execute`` off (the calls are returned);
loop detection (a tool called with the same arguments ``loop_threshold`` times in the run); the
turn limit (``max_turns`` model requests).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import orjson

from tamma_tools.errors import (
    LoopDetected,
    MaxTurnsExceeded,
    ProviderError,
    ProviderStreamError,
    StreamInterrupted,
    TammaToolsError,
)
from tamma_tools.provider.accumulator import STREAM_TRUNCATED
from tamma_tools.provider.config import FunctionCallingConfig, ToolChoice
from tamma_tools.provider.events import (
    FinalMessage,
    StreamError,
    StreamEvent,
    ToolResult,
    TurnFinished,
)
from tamma_tools.provider.request import MessageRequest, is_forced
from tamma_tools.provider.turn import Turn, TurnOutcome
from tamma_tools.types import CallerContext, FunctionCall, FunctionResult

if TYPE_CHECKING:
    from tamma_tools.manager import FunctionCallingManager

__all__ = [
    "LOOP_STUB",
    "MAX_TURNS_STUB",
    "TRUNCATED_STUB",
    "CompletionResult",
    "MessageStream",
    "StopReason",
    "run_loop",
    "session_context",
]

StopReason: TypeAlias = Literal[
    "final", "tool_calls", "max_turns", "loop_detected", "error", "cancelled"
]
"""``final`` (an answer), ``tool_calls`` (returned unexecuted), ``max_turns``, ``loop_detected``,
``error`` (the turn failed; ``error`` says why) or ``cancelled`` (the caller closed the stream)."""

LOOP_STUB = (
    "Error [loop_detected]: this tool call was not executed: tool {name!r} was called with the "
    "same arguments in {count} turns of this conversation, so the run was stopped."
)
MAX_TURNS_STUB = (
    "Error [max_turns_exceeded]: this tool call was not executed: the conversation reached its "
    "limit of {max_turns} model turns."
)
TRUNCATED_STUB = (
    "Error [arguments_truncated]: this tool call was not executed: the model's output was cut off "
    "(finish_reason={reason!r}) before its arguments were complete. Send shorter arguments."
)
CANCELLED_STUB = (
    "Error [cancelled]: this tool call was not executed or did not finish: the run was stopped "
    "before its result arrived. Do not assume it had any effect."
)
LOOP_MESSAGE = (
    "tool {name!r} was called with the same arguments in {count} turns; the run was stopped "
    "(FunctionCallingConfig.loop_threshold={threshold})"
)
MAX_TURNS_MESSAGE = (
    "the run reached FunctionCallingConfig.max_turns={max_turns} model turns without a final "
    "answer; the last turn's tool calls were not executed"
)


@dataclass
class CompletionResult:
    """What a run produced: the last assistant message, every tool result, the whole history."""

    message: dict[str, Any] | None
    """The last assistant message (the answer, or the calls when they were not executed)."""
    finish_reason: str | None
    stop_reason: StopReason
    messages: list[dict[str, Any]]
    """The request's messages followed by everything the run added; valid to send again."""
    tool_results: list[FunctionResult] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    """Token counts summed over the run's turns."""
    turns: int = 0
    error: TammaToolsError | None = None

    @property
    def content(self) -> str | None:
        return None if self.message is None else self.message.get("content")

    @property
    def tool_calls(self) -> list[FunctionCall]:
        """The last message's tool calls (unexecuted ones when ``stop_reason == "tool_calls"``)."""
        raw = (self.message or {}).get("tool_calls") or []
        return [FunctionCall.model_validate(c) for c in raw]


def _canonical(arguments: str) -> str:
    """Arguments compared by meaning: key order and whitespace do not make a call new."""
    try:
        return orjson.dumps(orjson.loads(arguments), option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONDecodeError:
        return arguments


def _stub(call: FunctionCall, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call.id, "content": content}


def _add_usage(total: dict[str, int], usage: dict[str, Any] | None) -> None:
    if not usage:
        return
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = usage.get(key)
        if isinstance(value, int):
            total[key] = total.get(key, 0) + value


def _turn_error(error: StreamError) -> ProviderError:
    cls = StreamInterrupted if error.code == STREAM_TRUNCATED else ProviderStreamError
    return cls(error.message, body=error.data or None, stream_code=error.code)


BodyBuilder = Callable[[list[dict[str, Any]], "ToolChoice | None", bool], dict[str, Any]]
"""``build(messages, tool_choice, stream)``: the request body of the next turn."""


class _Run:
    """State of one run; ``events()`` drives it."""

    def __init__(
        self,
        *,
        turn: Turn,
        build: BodyBuilder,
        manager: FunctionCallingManager | None,
        request: MessageRequest,
        context: CallerContext,
        fc: FunctionCallingConfig,
        tool_choice: ToolChoice | None,
        stream: bool,
    ) -> None:
        self.turn = turn
        self.build = build
        self.manager = manager
        self.context = context
        self.fc = fc
        self.tool_choice = tool_choice
        self.stream = stream
        self.messages: list[dict[str, Any]] = list(request.messages)
        self.tool_results: list[FunctionResult] = []
        self.usage: dict[str, int] = {}
        self.turns = 0
        self.message: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.stop_reason: StopReason = "cancelled"
        self.error: TammaToolsError | None = None
        self._repeats: dict[tuple[str, str], int] = {}

    def result(self) -> CompletionResult:
        return CompletionResult(
            message=self.message,
            finish_reason=self.finish_reason,
            stop_reason=self.stop_reason,
            messages=self.messages,
            tool_results=self.tool_results,
            usage=self.usage,
            turns=self.turns,
            error=self.error,
        )

    async def events(self) -> AsyncGenerator[StreamEvent, None]:
        while True:
            self.turns += 1
            body = self.build(self.messages, self.tool_choice, self.stream)
            outcome: TurnOutcome | None = None
            reported = False  # whether the turn already yielded its StreamError
            try:
                async with contextlib.aclosing(self.turn(body, self.stream)) as items:
                    async for item in items:
                        if isinstance(item, TurnOutcome):
                            outcome = item
                        else:
                            for event in item:
                                reported = reported or isinstance(event, StreamError)
                                yield event
            except ProviderError as exc:
                self.error, self.stop_reason = exc, "error"
                yield StreamError(exc.code, exc.message, {"status": exc.status, "body": exc.body})
                return
            assert outcome is not None, "a turn must end with a TurnOutcome"
            _add_usage(self.usage, outcome.usage)
            if outcome.error is not None:
                self.error, self.stop_reason = _turn_error(outcome.error), "error"
                if not reported:  # a failed JSON body: no accumulator event was streamed
                    yield outcome.error
                return
            self.message, self.finish_reason = outcome.message, outcome.finish_reason
            yield TurnFinished(outcome.finish_reason, outcome.usage, self.turns)
            calls = outcome.calls
            if not calls or not self.fc.auto_execute or self.manager is None:
                self._append_turn(outcome)
                self.stop_reason = "tool_calls" if calls else "final"
                yield FinalMessage(outcome.message, outcome.finish_reason)
                return
            if is_forced(self.tool_choice):
                # Honoured once; left forced, the model would call tools forever.
                self.tool_choice = "auto"
            stop = self._stop_rule(outcome, calls)
            if stop is not None:
                yield stop
                return
            if outcome.finish_reason in ("length", "content_filter"):
                # Arguments cut off mid-way never run; the model is told and may retry.
                self._append_turn(outcome)
                text = TRUNCATED_STUB.format(reason=outcome.finish_reason)
                self.messages.extend(_stub(call, text) for call in calls)
                continue
            # aclosing: closing the run must reach the tool calls still running.
            async with contextlib.aclosing(self._execute(outcome, calls)) as results:
                async for event in results:
                    yield event

    def _stop_rule(self, outcome: TurnOutcome, calls: list[FunctionCall]) -> StreamError | None:
        """Loop detection, then the turn limit; either answers every call with a stub."""
        worst: tuple[int, str] = (0, "")
        # Counted once per turn: identical calls side by side in one turn are a batch (the
        # manager may share one result among them), a loop is the same call turn after turn.
        for key in {(call.name, _canonical(call.arguments)) for call in calls}:
            count = self._repeats.get(key, 0) + 1
            self._repeats[key] = count
            worst = max(worst, (count, key[0]))
        if worst[0] >= self.fc.loop_threshold:
            count, name = worst
            text = LOOP_MESSAGE.format(name=name, count=count, threshold=self.fc.loop_threshold)
            self.error = LoopDetected(text, tool=name)
            self.stop_reason = "loop_detected"
            stub = LOOP_STUB.format(name=name, count=count)
        elif self.turns >= self.fc.max_turns:
            self.error = MaxTurnsExceeded(MAX_TURNS_MESSAGE.format(max_turns=self.fc.max_turns))
            self.stop_reason = "max_turns"
            stub = MAX_TURNS_STUB.format(max_turns=self.fc.max_turns)
        else:
            return None
        self._append_turn(outcome)
        self.messages.extend(_stub(call, stub) for call in calls)
        return StreamError(self.error.code, self.error.message, {"turn": self.turns})

    def _append_turn(self, outcome: TurnOutcome) -> None:
        """The assistant message, with the provider items that must precede it."""
        if outcome.preamble:
            self.messages.extend(outcome.preamble)
        self.messages.append(outcome.message)

    async def _execute(
        self, outcome: TurnOutcome, calls: list[FunctionCall]
    ) -> AsyncGenerator[StreamEvent, None]:
        """Run the calls concurrently under the cap; results as they finish, history in call
        order. Closing the run here cancels the calls still running and stubs their ids."""
        manager = self.manager
        assert manager is not None
        context = self.context
        if len(calls) == 1:  # the common case: no tasks, no semaphore
            result: FunctionResult | None = None
            try:
                result = await manager.execute_function_call(calls[0], context)
            finally:
                self._append_turn(outcome)
                if result is None:
                    self.messages.append(_stub(calls[0], CANCELLED_STUB))
                else:
                    self.messages.append(result.to_message())
            self.tool_results.append(result)
            yield ToolResult(result)
            return
        cap = min(self.fc.max_concurrent_calls, manager.config.max_concurrent_calls)
        semaphore = asyncio.Semaphore(cap)

        async def one(call: FunctionCall) -> FunctionResult:
            async with semaphore:
                return await manager.execute_function_call(call, context)

        tasks = [asyncio.ensure_future(one(call)) for call in calls]
        try:
            for next_done in asyncio.as_completed(tasks):
                result = await next_done
                self.tool_results.append(result)
                yield ToolResult(result)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # The assistant message and its answers enter the history together.
            self._append_turn(outcome)
            for call, task in zip(calls, tasks, strict=True):
                if task.cancelled() or task.exception() is not None:
                    self.messages.append(_stub(call, CANCELLED_STUB))
                else:
                    self.messages.append(task.result().to_message())


def session_context(context: CallerContext | None, request: MessageRequest) -> CallerContext:
    """The caller the run's tool calls execute as (and whose tools are offered): the given
    context, or one made from ``request.user_id``; ``request.id`` is its session when unset."""
    if context is None:
        return CallerContext(user_id=request.user_id or "anonymous", session_id=request.id)
    if context.session_id is None and request.id is not None:
        return replace(context, session_id=request.id)
    return context


class MessageStream:
    """The events of one run: ``async for event in stream``; ``result()`` once it ended.

    ``aclose()`` (or leaving ``async with``) stops the HTTP stream and the running tool calls
    and leaves ``messages`` valid to send.
    """

    def __init__(self, run: _Run) -> None:
        self._run = run
        self._events = run.events()

    def __aiter__(self) -> MessageStream:
        return self

    async def __anext__(self) -> StreamEvent:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        await self._events.aclose()

    async def __aenter__(self) -> MessageStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The history so far; valid to send at any moment (see the module docstring)."""
        return self._run.messages

    @property
    def error(self) -> TammaToolsError | None:
        return self._run.error

    def result(self) -> CompletionResult:
        return self._run.result()


def run_loop(
    *,
    turn: Turn,
    build: BodyBuilder,
    manager: FunctionCallingManager | None,
    request: MessageRequest,
    context: CallerContext | None,
    fc: FunctionCallingConfig,
    stream: bool,
) -> MessageStream:
    tool_choice = request.tool_choice if request.tool_choice is not None else fc.tool_choice
    run = _Run(
        turn=turn,
        build=build,
        manager=manager,
        request=request,
        context=session_context(context, request),
        fc=fc,
        tool_choice=tool_choice,
        stream=stream,
    )
    return MessageStream(run)
