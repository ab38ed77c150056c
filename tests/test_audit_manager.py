"""Observability through the real manager: a mixed run of 1,000 calls, every decision recorded
once in the audit log, counted in the metrics, traced and alerted on."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tamma_tools import CallerContext, RateLimit, ToolDefinition
from tamma_tools.manager import FunctionCallingManager, ManagerConfig, Policy
from tamma_tools.observability import (
    Alert,
    AlertEngine,
    MetricsObserver,
    Observability,
    SQLiteAuditLog,
    TracingObserver,
)
from tamma_tools.observability.redaction import REDACTED, arguments_digest

RATE_LIMIT = 40


def definition(name: str, props: dict[str, Any], **meta: Any) -> ToolDefinition:
    return ToolDefinition.model_validate(
        {
            "function": {
                "name": name,
                "description": f"{name} tool",
                "parameters": {"type": "object", "properties": props, "required": list(props)},
            },
            "metadata": {"isolation": "in_process", **meta},
        }
    )


async def forecast(city: str, token: str) -> dict[str, Any]:
    return {"city": city, "high": 12}


async def flaky(n: int) -> int:
    raise ValueError(f"upstream said no to {n}")


async def slow(n: int) -> int:
    await asyncio.sleep(5)
    return n


async def admin_reset(n: int) -> str:
    return "reset"


async def wire_money(amount: int) -> str:
    return f"sent {amount}"


def build_manager(observers: list[Any]) -> FunctionCallingManager:
    mgr = FunctionCallingManager(
        config=ManagerConfig(max_concurrent_calls=10),
        policy=Policy({"analyst": ["weather:read"], "admin": ["admin:*"]}),
        observers=observers,
    )
    mgr.register_tool(
        definition("forecast", {"city": {"type": "string"}, "token": {"type": "string"}},
                   permissions=["weather:read"]),
        forecast,
    )  # fmt: skip
    mgr.register_tool(definition("flaky", {"n": {"type": "integer"}}), flaky)
    mgr.register_tool(definition("slow", {"n": {"type": "integer"}}, timeout_s=0.02), slow)
    mgr.register_tool(
        definition("admin_reset", {"n": {"type": "integer"}}, permissions=["admin:reset"]),
        admin_reset,
    )
    mgr.register_tool(
        definition("limited", {"n": {"type": "integer"}},
                   rate_limit=RateLimit(calls_per_minute=RATE_LIMIT)),
        admin_reset,
    )  # fmt: skip
    mgr.register_tool(
        definition("wire_money", {"amount": {"type": "integer"}}, requires_approval=True),
        wire_money,
    )
    return mgr


def plan(n: int = 1000) -> tuple[list[dict[str, Any]], list[str]]:
    """The calls of the mixed run and the outcome each one's first decision must record."""
    calls: list[dict[str, Any]] = []
    expected: list[str] = []
    limited_seen = 0
    for i in range(n):
        kind = i % 8
        cid = f"call_{i}"
        if kind == 0:
            name, args, outcome = (
                "forecast",
                {"city": "Oslo", "token": f"tok-{i}-secret"},
                "executed",
            )
        elif kind == 1:
            name, args, outcome = "flaky", {"n": i}, "failed"
        elif kind == 2:
            name, args, outcome = "admin_reset", {"n": i}, "denied"
        elif kind == 3:
            name, args = "limited", {"n": i}
            limited_seen += 1
            outcome = "executed" if limited_seen <= RATE_LIMIT else "rate_limited"
        elif kind == 4:
            name, args, outcome = "slow", {"n": i}, "timed_out"
        elif kind == 5:
            name, args, outcome = "forecast", {"city": 7}, "invalid_arguments"
        elif kind == 6:
            name, args, outcome = "no_such_tool", {"n": i}, "unknown_tool"
        else:
            name, args, outcome = "wire_money", {"amount": i}, "pending_approval"
        calls.append({"id": cid, "type": "function",
                      "function": {"name": name, "arguments": json.dumps(args)}})  # fmt: skip
        expected.append(outcome)
    return calls, expected


async def test_mixed_run_of_1000_calls_through_the_manager(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    alerts_seen: list[Alert] = []
    obs = Observability(
        audit=SQLiteAuditLog(tmp_path / "audit.db"),
        metrics=MetricsObserver(),
        tracing=TracingObserver(tracer_provider=provider),
        alerts=AlertEngine(),
        on_alert=alerts_seen.append,
    )
    mgr = build_manager(obs.observers)
    ctx = CallerContext(user_id="u-42", session_id="sess-9", roles=frozenset({"analyst"}))
    calls, expected = plan()
    results = []
    for start in range(0, len(calls), 50):
        results += await mgr.process_function_calls(calls[start : start + 50], ctx)
    assert [r.tool_call_id for r in results] == [c["id"] for c in calls]

    # Humans decide on the queued transfers: approve 5 (approved + executed), reject 3.
    pending = [c["id"] for c, e in zip(calls, expected, strict=True) if e == "pending_approval"]
    for cid in pending[:5]:
        assert (await mgr.approve(cid, approver="alice@ops")).success
    for cid in pending[5:8]:
        assert not mgr.reject(cid, "not today").success

    audit = obs.audit
    assert audit is not None
    rows = audit.query()
    decisions = Counter((r.call_id, r.outcome) for r in rows)
    want = Counter(zip((c["id"] for c in calls), expected, strict=True))
    want.update((cid, "approved") for cid in pending[:5])
    want.update((cid, "executed") for cid in pending[:5])
    want.update((cid, "rejected") for cid in pending[5:8])
    assert decisions == want  # exactly one row per decision, nothing extra, nothing lost
    assert len(rows) == 1000 + 13

    by_id = {(r.call_id, r.outcome): r for r in rows}
    call_by_id = {c["id"]: c for c in calls}
    for (cid, outcome), row in by_id.items():
        raw = call_by_id[cid]["function"]["arguments"]
        assert row.args_sha256 == arguments_digest(raw)
        assert (row.user_id, row.session_id, row.roles) == ("u-42", "sess-9", ("analyst",))
        assert row.tool == call_by_id[cid]["function"]["name"]
        assert row.duration_ms >= 0
        if outcome == "denied":
            assert row.rule == "permission"
        if outcome == "timed_out":
            assert row.duration_ms >= 15
        if outcome == "approved":
            assert row.approver == "alice@ops"
        if outcome == "executed" and row.tool == "forecast":
            assert "secret" not in row.args_preview and REDACTED in row.args_preview
            assert row.result_size == len('{"city":"Oslo","high":12}')
    assert audit.verify().ok
    counts = Counter(expected)
    counts.update({"approved": 5, "executed": 5, "rejected": 3})
    assert audit.summary() == dict(counts)

    # Metrics agree with the audit log.
    assert obs.metrics is not None
    reg = obs.metrics.registry
    for (tool, outcome), n in Counter((r.tool, r.outcome) for r in rows).items():
        label = "<unknown>" if outcome == "unknown_tool" else tool
        assert (
            reg.get_sample_value("tamma_tools_calls_total", {"tool": label, "outcome": outcome})
            == n
        )
    assert (
        reg.get_sample_value("tamma_tools_security_violations_total", {"kind": "permission"}) == 125
    )
    assert (
        reg.get_sample_value("tamma_tools_rate_limit_hits_total", {"tool": "limited"})
        == 125 - RATE_LIMIT
    )
    assert reg.get_sample_value("tamma_tools_timeouts_total", {"tool": "slow"}) == 125
    assert reg.get_sample_value("tamma_tools_active_executions") == 0
    assert reg.get_sample_value("tamma_tools_call_duration_seconds_count", {"tool": "slow"}) == 125

    # One span per call and model turn (an approval annotates the span of the call it allowed).
    spans = exporter.get_finished_spans()
    span_rows = [r for r in rows if r.outcome != "approved"]
    assert len(spans) == len(span_rows)
    span_ids = Counter(s.attributes["gen_ai.tool.call.id"] for s in spans)  # type: ignore[index]
    assert span_ids == Counter(r.call_id for r in span_rows)
    approved_spans = [s for s in spans if (s.attributes or {}).get("tamma.approver") == "alice@ops"]
    assert sorted(s.attributes["gen_ai.tool.call.id"] for s in approved_spans) == sorted(
        pending[:5]
    )  # type: ignore[index]
    assert all(s.attributes["gen_ai.operation.name"] == "execute_tool" for s in spans)  # type: ignore[index]

    # Alerts: failures, security violations and timeouts each started one episode.
    assert obs.alerts is not None
    fired = obs.alerts.evaluate()
    assert {(a.rule, a.key) for a in fired} >= {
        ("tool_failure_rate", "flaky"),
        ("tool_failure_rate", "slow"),
        ("security_violation", "permission"),
    }
    assert obs.alerts.evaluate() == []  # no storm: still firing, nothing new
    assert alerts_seen == fired
    obs.close()


@pytest.mark.parametrize("audit", [True, False])
def test_observability_facade_builds_the_observers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, audit: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    with Observability(audit=audit, alerts=True, logs=True) as obs:
        kinds = [type(o).__name__ for o in obs.observers]
        expected = ["MetricsObserver", "TracingObserver", "AlertEngine", "LogObserver"]
        assert kinds == (["AuditObserver", *expected] if audit else expected)
        server = obs.serve_metrics(0)
        import urllib.request

        body = urllib.request.urlopen(server.url, timeout=5).read().decode()
        assert "tamma_tools_active_executions 0.0" in body
    if audit:
        assert (tmp_path / "tamma-audit.db").exists() is False  # nothing recorded, nothing created


def test_fan_out_isolates_a_failing_observer_and_skips_idle_start_hooks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tamma_tools.observability import FanOut

    class Broken:
        def on_call_started(self, call_id: str, tool: str, context: CallerContext) -> None:
            raise RuntimeError("boom")

        def on_call_finished(self, record: Any) -> None:
            raise RuntimeError("boom")

    metrics = MetricsObserver()
    with SQLiteAuditLog(tmp_path / "a.db") as audit:
        fan = FanOut([Broken(), audit.observer(), metrics])
        assert len(fan._started) == 2  # the audit hand-off has no start hook
        mgr = build_manager([fan])
        ctx = CallerContext(roles=frozenset({"analyst"}))
        call = {"id": "c1", "type": "function",
                "function": {"name": "forecast", "arguments": '{"city": "Oslo", "token": "t"}'}}  # fmt: skip
        assert (await_result := asyncio.run(mgr.execute_function_call(call, ctx))).success, (
            await_result
        )
        assert [r.outcome for r in audit.query()] == ["executed"]
    assert (
        metrics.registry.get_sample_value(
            "tamma_tools_calls_total", {"tool": "forecast", "outcome": "executed"}
        )
        == 1
    )
    assert sum("observer failed" in r.getMessage() for r in caplog.records) == 2


def test_observability_from_the_configuration_file(tmp_path: Path) -> None:
    from tamma_tools.config import load_settings

    cfg = tmp_path / "tamma.toml"
    cfg.write_text('[audit]\npath = "logs/audit.db"\n')
    with Observability.from_settings(load_settings(cfg)) as obs:
        assert isinstance(obs.audit, SQLiteAuditLog)
        assert obs.audit.path == tmp_path / "logs" / "audit.db"
    cfg.write_text("[audit]\nenabled = false\n")
    with Observability.from_settings(load_settings(cfg)) as obs:
        assert obs.audit is None
