"""Structured stdlib logging of decisions: one log record per decision, fields as ``extra``.

Nothing is printed; records go to the ``tamma_tools.observability.calls`` logger, and the
application's handlers decide where they end up. Levels: denials, timeouts and limit breaches
WARNING; other failures INFO; successful calls DEBUG. The level check comes first, so a disabled
level costs one call.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from tamma_tools.events import CallRecord
from tamma_tools.types import CallerContext

__all__ = ["CALL_LOGGER", "LogObserver"]

CALL_LOGGER = "tamma_tools.observability.calls"

_WARNING = frozenset({"denied", "timed_out", "resource_limit", "rejected"})
_DEBUG = frozenset({"executed", "dry_run", "approved", "repaired"})


class LogObserver:
    """A ``CallObserver`` writing one structured log record per decision."""

    observes_start: ClassVar[bool] = False

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger(CALL_LOGGER)

    def on_call_started(self, call_id: str, tool: str, context: CallerContext) -> None:
        return None

    def on_call_finished(self, record: CallRecord) -> None:
        outcome = record.outcome
        if outcome in _DEBUG:
            level = logging.DEBUG
        elif outcome in _WARNING:
            level = logging.WARNING
        else:
            level = logging.INFO
        if not self.logger.isEnabledFor(level):
            return
        # Arguments are never logged here: the audit log keeps a redacted preview.
        self.logger.log(
            level,
            "tool call %s %s: %s%s",
            record.call_id, record.tool, outcome,
            f" [{record.error_code}]" if record.error_code else "",
            extra={
                "call_id": record.call_id,
                "tool": record.tool,
                "outcome": outcome,
                "error_code": record.error_code,
                "rule": record.rule,
                "duration_ms": record.duration_ms,
                "user_id": record.context.user_id,
                "session_id": record.context.session_id,
            },
        )  # fmt: skip
