"""Events of the provider loop, from a text fragment to the final message.

The stream accumulator produces the per-chunk events (text, refusal, reasoning, tool-call started /
arguments delta / done, stream errors); the provider loop adds tool results, turn ends and the final
message. Consumers match on the class (``match event: case ToolCallDone(call=call): ...``).

The classes are slotted but not frozen: a frozen dataclass costs about twice as much to build, and
one event is built per streamed chunk on the hot path. Treat them as read-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

from tamma_tools.types import FunctionCall, FunctionResult

__all__ = [
    "FinalMessage",
    "ReasoningDelta",
    "RefusalDelta",
    "StreamError",
    "StreamEvent",
    "TextDelta",
    "ToolCallArgumentsDelta",
    "ToolCallDone",
    "ToolCallStarted",
    "ToolResult",
    "TurnFinished",
]


@dataclass(slots=True)
class TextDelta:
    """A fragment of the assistant's visible text for one choice."""

    text: str
    choice_index: int = 0


@dataclass(slots=True)
class ReasoningDelta:
    """A fragment of reasoning text, kept apart from the content.

    DeepSeek, xAI and DashScope send ``reasoning_content``; Ollama, Groq, OpenRouter and vLLM send
    ``reasoning`` (QUIRKS B7). It is never part of the replayed message content.
    """

    text: str
    choice_index: int = 0


@dataclass(slots=True)
class RefusalDelta:
    """A fragment of a refusal of the primary choice (only non-empty refusals, QUIRKS B9)."""

    text: str


@dataclass(slots=True)
class ToolCallStarted:
    """A tool call of the primary choice got its name.

    ``index`` is the call's position in the turn (0, 1, ...), not the server's sparse ``index``
    hint (QUIRKS C4). ``id`` is the server's id, or a generated one while the server has sent none;
    the authoritative id is the one in :class:`ToolCallDone`.
    """

    index: int
    id: str
    name: str


@dataclass(slots=True)
class ToolCallArgumentsDelta:
    """A fragment of a tool call's JSON arguments, in arrival order."""

    index: int
    id: str
    delta: str


@dataclass(slots=True)
class ToolCallDone:
    """A finished tool call, ready to validate and run; only for a turn that ended cleanly."""

    call: FunctionCall


@dataclass(slots=True)
class ToolResult:
    """The outcome of executing one tool call (emitted by the provider loop)."""

    result: FunctionResult


@dataclass(slots=True)
class TurnFinished:
    """One model turn ended: the normalised finish reason, the usage if the server sent it."""

    finish_reason: str | None
    usage: dict[str, Any] | None
    turn: int


@dataclass(slots=True)
class FinalMessage:
    """The model's final assistant message of the run, in OpenAI shape."""

    message: dict[str, Any]
    finish_reason: str | None


@dataclass(slots=True)
class StreamError:
    """The turn failed although the HTTP status may have been 200.

    ``code`` is one of ours and stable (see ``tamma_tools.provider.accumulator``); the server's
    own error object, including Groq's ``failed_generation`` (QUIRKS A3), is in ``data``.
    """

    code: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


StreamEvent: TypeAlias = (
    TextDelta
    | ReasoningDelta
    | RefusalDelta
    | ToolCallStarted
    | ToolCallArgumentsDelta
    | ToolCallDone
    | ToolResult
    | TurnFinished
    | FinalMessage
    | StreamError
)
