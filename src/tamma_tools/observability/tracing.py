"""OpenTelemetry spans for tool calls, following the GenAI semantic conventions.

One span ``execute_tool {tool}`` per call (``gen_ai.operation.name=execute_tool``,
``gen_ai.tool.name``, ``gen_ai.tool.call.id``, ``gen_ai.tool.type=function``), opened when the
call starts executing and closed with its outcome. While the tool runs the span is the current
one, so what an in-process tool does (an instrumented HTTP request, a database query) nests
under it: the manager starts and finishes a call in one task and runs sync tools in a copy of
its context. A decision that never reached execution (denied, rate limited, invalid arguments,
...) gets a span covering the time the decision took.
Arguments (redacted) and results are recorded only when the user opts in: the conventions mark
``gen_ai.tool.call.arguments`` / ``gen_ai.tool.call.result`` opt-in because they may hold
sensitive data.

When OpenTelemetry is not configured (no SDK tracer provider set), the observer does nothing.
Asking the API for the global provider costs ~0.8 µs, so the answer is cached and re-checked at
most once per ``recheck_s``: the no-op cost per call is one clock read and a comparison.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider

from tamma_tools.events import CallRecord
from tamma_tools.observability.redaction import Redactor
from tamma_tools.types import CallerContext

__all__ = ["TracingObserver"]

log = logging.getLogger(__name__)

_SCOPE = "tamma_tools"
_NOT_YET_RUN = frozenset({"repaired", "approved"})
"""Decisions recorded just before the call runs; they annotate the call's span instead of
getting their own (one span per call)."""
_SUCCESS = frozenset({"executed", "approved", "dry_run", "pending_approval"})
_MAX_OPEN_SPANS = 10_000


class TracingObserver:
    """A ``CallObserver`` that emits one ``execute_tool`` span per call."""

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        capture_arguments: bool = False,
        capture_results: bool = False,
        redactor: Redactor | None = None,
        recheck_s: float = 1.0,
    ) -> None:
        """``tracer_provider``: use this provider; by default the global one, when configured.

        ``capture_arguments`` records the redacted argument preview; ``capture_results`` records
        ``record.extra["result"]`` when the manager supplies it."""
        self.capture_arguments = capture_arguments
        self.capture_results = capture_results
        self.redactor = redactor or Redactor()
        self.recheck_s = recheck_s
        self._fixed = tracer_provider
        self._tracer: Tracer | None = (
            tracer_provider.get_tracer(_SCOPE) if tracer_provider is not None else None
        )
        self._next_check = float("-inf") if tracer_provider is None else float("inf")
        self._open: dict[str, tuple[Span, object]] = {}
        """Spans of calls running now, with the context token that made each current."""
        self._approvers: dict[str, str] = {}
        """Who approved a call, kept from the ``approved`` decision until its span opens."""

    def _current_tracer(self) -> Tracer | None:
        now = time.monotonic()
        if now < self._next_check:
            return self._tracer
        self._next_check = now + self.recheck_s
        provider = trace.get_tracer_provider()
        if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
            self._tracer = None
        else:
            self._tracer = provider.get_tracer(_SCOPE)
        return self._tracer

    # --- the call path ----------------------------------------------------------------------

    def on_call_started(self, call_id: str, tool: str, context: CallerContext) -> None:
        tracer = self._tracer
        if time.monotonic() >= self._next_check:
            tracer = self._current_tracer()
        if tracer is None:
            return
        if len(self._open) >= _MAX_OPEN_SPANS:
            # A call whose end was never reported: close it rather than grow without bound.
            stale, _ = self._open.pop(next(iter(self._open)))
            stale.end()  # its token belongs to a context that never finished: left alone
        attributes = _base_attributes(call_id, tool)
        if self._approvers:
            approver = self._approvers.pop(call_id, None)
            if approver is not None:
                attributes["tamma.approver"] = approver
        span = tracer.start_span(
            f"execute_tool {tool}", kind=SpanKind.INTERNAL, attributes=attributes
        )
        self._open[call_id] = (span, otel_context.attach(trace.set_span_in_context(span)))

    def on_call_finished(self, record: CallRecord) -> None:
        running = self._open.pop(record.call_id, None) if self._open else None
        if running is None:
            tracer = self._tracer
            if time.monotonic() >= self._next_check:
                tracer = self._current_tracer()
            if tracer is None:
                return
            if record.outcome in _NOT_YET_RUN:
                if record.approver is not None:
                    if len(self._approvers) >= _MAX_OPEN_SPANS:
                        self._approvers.pop(next(iter(self._approvers)))
                    self._approvers[record.call_id] = record.approver
                return
            end_ns = int(record.timestamp * 1e9)
            span = tracer.start_span(
                f"execute_tool {record.tool}",
                kind=SpanKind.INTERNAL,
                attributes=_base_attributes(record.call_id, record.tool),
                start_time=end_ns - int(record.duration_ms * 1e6),
            )
            self._finish(span, record)
            span.end(end_time=end_ns)
            return
        span, token = running
        otel_context.detach(token)  # type: ignore[arg-type]
        self._finish(span, record)
        span.end()

    def _finish(self, span: Span, record: CallRecord) -> None:
        if not span.is_recording():
            return
        attributes: dict[str, Any] = {"tamma.outcome": record.outcome}
        if record.rule:
            attributes["tamma.rule"] = record.rule
        if record.isolation:
            attributes["tamma.isolation"] = record.isolation
        if record.sandbox_layers:
            attributes["tamma.sandbox_layers"] = list(record.sandbox_layers)
        if record.repairs:
            attributes["tamma.repairs"] = list(record.repairs)
        if record.result_size:
            attributes["tamma.result_size"] = record.result_size
        if record.approver:
            attributes["tamma.approver"] = record.approver
        if self.capture_arguments:
            attributes["gen_ai.tool.call.arguments"] = self.redactor.preview(record.arguments)
        if self.capture_results:
            result = record.extra.get("result")
            if result is not None:
                text = result if isinstance(result, str) else str(result)
                attributes["gen_ai.tool.call.result"] = self.redactor.preview(text)
        if record.outcome not in _SUCCESS:
            attributes["error.type"] = record.error_code or record.outcome
            span.set_status(Status(StatusCode.ERROR, record.error or record.outcome))
        span.set_attributes(attributes)


def _base_attributes(call_id: str, tool: str) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": tool,
        "gen_ai.tool.call.id": call_id,
        "gen_ai.tool.type": "function",
    }
