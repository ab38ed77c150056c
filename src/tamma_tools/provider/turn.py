"""One model turn as the loop sees it, whichever API and transport produced it."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from tamma_tools.provider.events import StreamError, StreamEvent
from tamma_tools.types import FunctionCall

__all__ = ["Turn", "TurnOutcome"]


@dataclass(slots=True)
class TurnOutcome:
    """The end of one turn: the assistant message (Chat Completions shape) and its calls.

    ``error`` set means the turn failed (in-stream error, unreadable chunk, truncated stream):
    the message and calls are then diagnostics only and must not enter the history.
    """

    message: dict[str, Any]
    calls: list[FunctionCall]
    finish_reason: str | None
    usage: dict[str, Any] | None
    error: StreamError | None = None
    preamble: list[dict[str, Any]] = field(default_factory=list)
    """Provider items that go into the history right before ``message`` and only with it: a
    Responses turn with reasoning, verbatim (``responses_api``). The Responses body sends them
    instead of ``message``; Chat Completions bodies leave them out."""


Turn: TypeAlias = Callable[
    [dict[str, Any], bool], AsyncGenerator["list[StreamEvent] | TurnOutcome", None]
]
"""``turn(body, stream)``: the events of one request in batches (one per body piece, which
saves a generator hop per event), then exactly one ``TurnOutcome``."""
