"""The record of one decision about one tool call, shared by the manager and its observers.

The manager builds a ``CallRecord`` for every decision it makes (executed, denied, rate limited,
...) and hands it to each registered ``CallObserver``: the audit log, metrics, tracing and alerts
all consume the same record, so they cannot disagree about what happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeAlias

from tamma_tools.types import CallerContext

__all__ = ["CallObserver", "CallRecord", "Outcome"]

Outcome: TypeAlias = Literal[
    "executed",
    "failed",
    "invalid_arguments",
    "unknown_tool",
    "denied",
    "rate_limited",
    "timed_out",
    "resource_limit",
    "pending_approval",
    "approved",
    "rejected",
    "repaired",
    "cancelled",
    "dry_run",
]
"""What was decided. ``denied`` records name the deciding rule in ``rule``."""


@dataclass(slots=True)
class CallRecord:
    """One decision about one call; everything an audit row, a metric or a span needs."""

    call_id: str
    tool: str
    outcome: Outcome
    context: CallerContext
    arguments: str
    """The raw arguments string as the model sent it (observers redact before storing)."""
    timestamp: float
    duration_ms: float = 0.0
    error_code: str | None = None
    error: str | None = None
    rule: str | None = None
    """For denials, the deciding rule (``permission``, ``path.outside_roots``, ...)."""
    result_size: int = 0
    isolation: str = "in_process"
    sandbox_layers: tuple[str, ...] = ()
    repairs: tuple[str, ...] = ()
    approver: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class CallObserver(Protocol):
    """Receives every decision. Must be fast and must not raise: it runs on the call path.

    An observer with a class attribute ``observes_start = False`` is not sent
    ``on_call_started`` (the manager skips the call entirely).
    """

    def on_call_started(self, call_id: str, tool: str, context: CallerContext) -> None: ...

    def on_call_finished(self, record: CallRecord) -> None: ...
