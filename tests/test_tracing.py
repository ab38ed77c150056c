"""OpenTelemetry spans: GenAI conventions, opt-in content, no-op without a provider."""

from __future__ import annotations

import contextvars
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from tamma_tools.events import CallRecord
from tamma_tools.function_tool import tool
from tamma_tools.manager import FunctionCallingManager
from tamma_tools.observability import TracingObserver
from tamma_tools.types import CallerContext

CTX = CallerContext(user_id="u")


def rec(call_id: str, tool: str, outcome: Any, **kw: Any) -> CallRecord:
    kw.setdefault("arguments", '{"q": "x"}')
    return CallRecord(call_id=call_id, tool=tool, outcome=outcome, context=CTX,
                      timestamp=time.time(), **kw)  # fmt: skip


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    p = TracerProvider()
    p.add_span_processor(SimpleSpanProcessor(exporter))
    return p


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = exporter.get_finished_spans()
    return span


def test_an_executed_call_gives_one_execute_tool_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = TracingObserver(tracer_provider=provider)
    tracer.on_call_started("call_1", "get_weather", CTX)
    assert exporter.get_finished_spans() == ()  # open while the tool runs
    tracer.on_call_finished(rec("call_1", "get_weather", "executed", isolation="process",
                                sandbox_layers=("rlimits", "seccomp"), result_size=17))  # fmt: skip
    span = only_span(exporter)
    assert span.name == "execute_tool get_weather"
    assert span.kind == trace.SpanKind.INTERNAL
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.operation.name"] == "execute_tool"
    assert attrs["gen_ai.tool.name"] == "get_weather"
    assert attrs["gen_ai.tool.call.id"] == "call_1"
    assert attrs["gen_ai.tool.type"] == "function"
    assert attrs["tamma.outcome"] == "executed"
    assert attrs["tamma.sandbox_layers"] == ("rlimits", "seccomp")
    assert "gen_ai.tool.call.arguments" not in attrs and "gen_ai.tool.call.result" not in attrs
    assert span.status.status_code == StatusCode.UNSET


def test_spans_nest_under_the_callers_current_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = TracingObserver(tracer_provider=provider)
    with provider.get_tracer("app").start_as_current_span("invoke_agent") as parent:
        tracer.on_call_started("call_1", "t", CTX)
        tracer.on_call_finished(rec("call_1", "t", "executed"))
    child = next(s for s in exporter.get_finished_spans() if s.name == "execute_tool t")
    assert child.parent is not None
    assert child.parent.span_id == parent.get_span_context().span_id


def test_a_denied_call_gets_an_error_span_covering_the_decision(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = TracingObserver(tracer_provider=provider)
    tracer.on_call_finished(rec("call_2", "read_file", "denied", rule="path.outside_roots",
                                error_code="path_denied", error="path is outside the allowed roots",
                                duration_ms=2.0))  # fmt: skip
    span = only_span(exporter)
    assert span.status.status_code == StatusCode.ERROR
    assert span.status.description == "path is outside the allowed roots"
    attrs = dict(span.attributes or {})
    assert attrs["error.type"] == "path_denied"
    assert attrs["tamma.rule"] == "path.outside_roots"
    assert span.end_time is not None and span.start_time is not None
    assert span.end_time - span.start_time == pytest.approx(2_000_000, abs=1000)


def test_repair_records_do_not_make_their_own_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = TracingObserver(tracer_provider=provider)
    tracer.on_call_finished(rec("c", "t", "repaired", repairs=("trailing_comma",)))
    tracer.on_call_started("c", "t", CTX)
    tracer.on_call_finished(rec("c", "t", "executed", repairs=("trailing_comma",)))
    span = only_span(exporter)
    assert dict(span.attributes or {})["tamma.repairs"] == ("trailing_comma",)


def test_arguments_and_results_only_when_opted_in_and_redacted(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = TracingObserver(tracer_provider=provider, capture_arguments=True, capture_results=True)
    tracer.on_call_started("c", "login", CTX)
    tracer.on_call_finished(rec("c", "login", "executed", arguments='{"user": "bob", "password": "hunter2!"}',
                                extra={"result": "session sk-abcdefghijklmnopqrstu ok"}))  # fmt: skip
    attrs = dict(only_span(exporter).attributes or {})
    assert attrs["gen_ai.tool.call.arguments"] == '{"user":"bob","password":"[REDACTED]"}'
    assert attrs["gen_ai.tool.call.result"] == "session [REDACTED] ok"


NO_OP_THEN_CONFIGURED = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {src!r})
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from tamma_tools.events import CallRecord
    from tamma_tools.observability import TracingObserver
    from tamma_tools.types import CallerContext

    ctx = CallerContext()
    def rec(cid):
        return CallRecord(call_id=cid, tool="t", outcome="executed", context=ctx,
                          arguments="{{}}", timestamp=time.time())
    tracer = TracingObserver(recheck_s=0.0)
    tracer.on_call_started("a", "t", ctx)
    tracer.on_call_finished(rec("a"))
    assert tracer._open == {{}}
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # the application configures OpenTelemetry later
    tracer.on_call_started("b", "t", ctx)
    tracer.on_call_finished(rec("b"))
    print(",".join(s.attributes["gen_ai.tool.call.id"] for s in exporter.get_finished_spans()))
    """
)


def test_no_op_until_opentelemetry_is_configured_then_picked_up() -> None:
    # A fresh interpreter: OpenTelemetry's global provider can be set only once per process.
    src = str(Path(__file__).resolve().parents[1] / "src")
    out = subprocess.run(
        [sys.executable, "-c", NO_OP_THEN_CONFIGURED.format(src=src)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "b"


def test_unfinished_spans_are_bounded(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    from tamma_tools.observability import tracing

    tracer = TracingObserver(tracer_provider=provider)
    for i in range(tracing._MAX_OPEN_SPANS + 5):
        tracer.on_call_started(f"c{i}", "t", CTX)
    assert len(tracer._open) == tracing._MAX_OPEN_SPANS
    assert len(exporter.get_finished_spans()) == 5


def test_an_approval_annotates_the_span_of_the_call_it_allowed(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = TracingObserver(tracer_provider=provider)
    tracer.on_call_finished(
        rec("c9", "wire_money", "pending_approval", error_code="approval_pending")
    )
    tracer.on_call_finished(rec("c9", "wire_money", "approved", approver="alice@ops"))
    tracer.on_call_started("c9", "wire_money", CTX)
    tracer.on_call_finished(rec("c9", "wire_money", "executed"))
    pending, executed = exporter.get_finished_spans()
    assert dict(pending.attributes or {})["tamma.outcome"] == "pending_approval"
    assert dict(executed.attributes or {})["tamma.approver"] == "alice@ops"
    assert tracer._approvers == {}


def _nesting_manager(provider: TracerProvider) -> FunctionCallingManager:
    inner = provider.get_tracer("tool-internals")

    @tool(isolation="in_process")
    async def fetch_async(url: str) -> str:
        """Stands in for an instrumented HTTP client."""
        with inner.start_as_current_span("GET async"):
            return url

    @tool(isolation="in_process")
    def fetch_sync(url: str) -> str:
        """The same from a sync tool, which runs on the manager's thread pool."""
        with inner.start_as_current_span("GET sync"):
            return url

    manager = FunctionCallingManager(observers=[TracingObserver(tracer_provider=provider)])
    manager.register_tool(fetch_async)
    manager.register_tool(fetch_sync)
    return manager


@pytest.mark.parametrize("name", ["fetch_async", "fetch_sync"])
async def test_what_a_tool_does_nests_under_its_execute_tool_span(
    provider: TracerProvider, exporter: InMemorySpanExporter, name: str
) -> None:
    manager = _nesting_manager(provider)
    with provider.get_tracer("app").start_as_current_span("invoke_agent") as agent:
        call = {"id": "call_n", "type": "function",
                "function": {"name": name, "arguments": '{"url": "https://example.com"}'}}  # fmt: skip
        result = await manager.execute_function_call(call)
        assert result.success, result.error
        # The caller's span is current again once the call is over.
        assert trace.get_current_span() is agent
    spans = {s.name: s for s in exporter.get_finished_spans()}
    tool_span, inner = spans[f"execute_tool {name}"], spans[f"GET {name.split('_')[1]}"]
    assert inner.parent is not None and tool_span.parent is not None
    assert inner.parent.span_id == tool_span.context.span_id
    assert tool_span.parent.span_id == agent.get_span_context().span_id
    manager.close()


async def test_sync_tools_see_the_callers_context_variables() -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

    @tool(isolation="in_process")
    def whoami() -> str:
        """Reads a context variable the caller set."""
        return request_id.get()

    manager = FunctionCallingManager()
    manager.register_tool(whoami)
    request_id.set("req-42")
    result = await manager.execute_function_call(
        {"id": "c", "type": "function", "function": {"name": "whoami", "arguments": "{}"}}
    )
    assert result.result == "req-42"
    manager.close()
