"""How a refused or failed call becomes a recorded outcome and a result the model can act on."""

from __future__ import annotations

from typing import Any

from tamma_tools.errors import (
    ApprovalRequired,
    ArgumentError,
    CallRejected,
    ExecutionCancelled,
    ExecutorMissing,
    LoopDetected,
    PolicyDenied,
    RateLimited,
    ResourceLimitExceeded,
    TammaToolsError,
    ToolCrashed,
    ToolDisabled,
    ToolNotFound,
    ToolTimeout,
)
from tamma_tools.events import Outcome

__all__ = ["EXCEPTION_TEXT_LIMIT", "crash_error", "failure_parts", "outcome_of", "timeout_error"]

EXCEPTION_TEXT_LIMIT = 500
"""Characters of a tool's own exception text the model sees (a traceback-sized message would
crowd its context and may leak internals)."""

# Which outcome each error family records.
_OUTCOMES: tuple[tuple[type[BaseException], Outcome], ...] = (
    (ToolNotFound, "unknown_tool"),
    (ToolDisabled, "unknown_tool"),
    (ExecutorMissing, "unknown_tool"),
    (LoopDetected, "denied"),
    (ArgumentError, "invalid_arguments"),
    (RateLimited, "rate_limited"),
    (ApprovalRequired, "pending_approval"),
    (CallRejected, "rejected"),
    (PolicyDenied, "denied"),
    (ToolTimeout, "timed_out"),
    (ResourceLimitExceeded, "resource_limit"),
    (ExecutionCancelled, "cancelled"),
)


def outcome_of(exc: BaseException) -> Outcome:
    for cls, outcome in _OUTCOMES:
        if isinstance(exc, cls):
            return outcome
    return "failed"


def timeout_error(tool: str, timeout_s: float) -> ToolTimeout:
    return ToolTimeout(
        f"tool {tool!r} did not finish within {timeout_s:g} s and was stopped; "
        "try a smaller request",
        timeout_s=timeout_s,
    )


def crash_error(tool: str | None, exc: Exception) -> ToolCrashed:
    """A tool raised: the model sees the exception type and a capped message, never a trace."""
    text = f"{type(exc).__name__}: {str(exc)[:EXCEPTION_TEXT_LIMIT]}"
    return ToolCrashed(f"tool {tool!r} failed: {text}" if tool is not None else text)


def failure_parts(exc: TammaToolsError) -> tuple[Outcome, dict[str, Any], str | None, str]:
    """(outcome, result details, deciding rule, isolation) of a failed call."""
    outcome = outcome_of(exc)
    details: dict[str, Any] = dict(exc.details)
    issues = getattr(exc, "issues", None)
    if issues:
        details["issues"] = [{"path": i.path, "message": i.message, "code": i.code} for i in issues]
    retry_after = getattr(exc, "retry_after_s", None)
    if retry_after is not None:
        details["retry_after_s"] = retry_after
    rule = getattr(exc, "rule", None) or None
    if outcome == "denied" and rule is None:
        rule = exc.code
    isolation = details.pop("isolation", "in_process")
    return outcome, details, rule, isolation
