"""Prometheus metrics: values after a scripted run, bounded labels, own registry, /metrics."""

from __future__ import annotations

import threading
import time
import urllib.request
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from tamma_tools.events import CallRecord
from tamma_tools.observability import MetricsObserver, start_metrics_server
from tamma_tools.types import CallerContext

CTX = CallerContext(user_id="u")


def rec(call_id: str, tool: str, outcome: Any, duration_ms: float = 1.0, **kw: Any) -> CallRecord:
    return CallRecord(call_id=call_id, tool=tool, outcome=outcome, context=CTX, arguments="{}",
                      timestamp=time.time(), duration_ms=duration_ms, **kw)  # fmt: skip


def scripted_run(m: MetricsObserver) -> None:
    for i in range(10):  # 10 successes of 3 ms, 2 of them still running at one point
        m.on_call_started(f"ok{i}", "search", CTX)
        m.on_call_finished(rec(f"ok{i}", "search", "executed", 3.0))
    for i in range(4):
        m.on_call_started(f"f{i}", "search", CTX)
        m.on_call_finished(rec(f"f{i}", "search", "failed", 200.0, error_code="tool_crashed"))
    for i in range(3):
        m.on_call_started(f"t{i}", "fetch", CTX)
        m.on_call_finished(rec(f"t{i}", "fetch", "timed_out", 30_000.0, error_code="tool_timeout"))
    m.on_call_started("mem", "fetch", CTX)
    m.on_call_finished(rec("mem", "fetch", "resource_limit", 50.0, error_code="memory_limit"))
    for rule in (
        "path.outside_roots",
        "path.outside_roots",
        "network.private_address",
        "permission",
    ):
        m.on_call_finished(rec("d", "read_file", "denied", 0.01, rule=rule))
    for i in range(5):
        m.on_call_finished(rec(f"r{i}", "fetch", "rate_limited", 0.01))
    m.on_call_finished(rec("x", "read_file", "invalid_arguments", 0.01))


def test_metric_values_after_a_scripted_run() -> None:
    m = MetricsObserver()
    scripted_run(m)
    v = m.registry.get_sample_value
    assert v("tamma_tools_calls_total", {"tool": "search", "outcome": "executed"}) == 10
    assert v("tamma_tools_calls_total", {"tool": "search", "outcome": "failed"}) == 4
    assert v("tamma_tools_calls_total", {"tool": "fetch", "outcome": "timed_out"}) == 3
    assert v("tamma_tools_calls_total", {"tool": "fetch", "outcome": "rate_limited"}) == 5
    assert v("tamma_tools_calls_total", {"tool": "read_file", "outcome": "denied"}) == 4
    assert v("tamma_tools_calls_total", {"tool": "read_file", "outcome": "invalid_arguments"}) == 1
    # Duration histogram: only calls that ran; 3 ms lands in le=0.005, 200 ms in le=0.25.
    assert v("tamma_tools_call_duration_seconds_count", {"tool": "search"}) == 14
    assert v("tamma_tools_call_duration_seconds_bucket", {"tool": "search", "le": "0.0025"}) == 0
    assert v("tamma_tools_call_duration_seconds_bucket", {"tool": "search", "le": "0.005"}) == 10
    assert v("tamma_tools_call_duration_seconds_bucket", {"tool": "search", "le": "0.1"}) == 10
    assert v("tamma_tools_call_duration_seconds_bucket", {"tool": "search", "le": "0.25"}) == 14
    assert v("tamma_tools_call_duration_seconds_sum", {"tool": "search"}) == pytest.approx(0.83)
    assert v("tamma_tools_call_duration_seconds_bucket", {"tool": "fetch", "le": "+Inf"}) == 4
    assert v("tamma_tools_call_duration_seconds_count", {"tool": "read_file"}) is None
    assert v("tamma_tools_security_violations_total", {"kind": "path.outside_roots"}) == 2
    assert v("tamma_tools_security_violations_total", {"kind": "network.private_address"}) == 1
    assert v("tamma_tools_security_violations_total", {"kind": "permission"}) == 1
    assert v("tamma_tools_rate_limit_hits_total", {"tool": "fetch"}) == 5
    assert v("tamma_tools_timeouts_total", {"tool": "fetch"}) == 3
    assert v("tamma_tools_limit_breaches_total", {"tool": "fetch", "kind": "memory_limit"}) == 1
    assert v("tamma_tools_active_executions") == 0


def test_active_executions_counts_calls_between_start_and_finish() -> None:
    m = MetricsObserver()
    for i in range(3):
        m.on_call_started(f"c{i}", "t", CTX)
    assert m.registry.get_sample_value("tamma_tools_active_executions") == 3
    m.on_call_finished(rec("c1", "t", "executed"))
    m.on_call_finished(rec("never-started", "t", "denied", rule="permission"))
    assert m.registry.get_sample_value("tamma_tools_active_executions") == 2


def test_metrics_live_in_their_own_registry() -> None:
    m = MetricsObserver()
    scripted_run(m)
    assert (
        REGISTRY.get_sample_value(
            "tamma_tools_calls_total", {"tool": "search", "outcome": "executed"}
        )
        is None
    )
    assert m.registry is not REGISTRY


def test_two_observers_cannot_share_a_registry_silently() -> None:
    registry = CollectorRegistry()
    first = MetricsObserver(registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        MetricsObserver(registry)
    first.close()
    MetricsObserver(registry)  # after close() the names are free again


def test_model_chosen_tool_names_cannot_blow_up_label_cardinality() -> None:
    m = MetricsObserver(max_tools=3)
    for i in range(2000):  # a model inventing tool names
        m.on_call_finished(rec(f"u{i}", f"tool_{i}", "unknown_tool"))
    for name in ("a", "b", "c", "d", "e"):
        m.on_call_finished(rec("k", name, "executed"))
    families = {f.name: f for f in m.registry.collect()}
    tools = {s.labels["tool"] for s in families["tamma_tools_calls"].samples}
    assert tools == {"<unknown>", "a", "b", "c", "<other>"}
    assert (
        m.registry.get_sample_value(
            "tamma_tools_calls_total", {"tool": "<unknown>", "outcome": "unknown_tool"}
        )
        == 2000
    )
    assert (
        m.registry.get_sample_value(
            "tamma_tools_calls_total", {"tool": "<other>", "outcome": "executed"}
        )
        == 2
    )


def test_concurrent_threads_lose_no_increment() -> None:
    m = MetricsObserver()
    r = rec("c", "t", "executed")

    def hammer() -> None:
        for _ in range(20_000):
            m.on_call_finished(r)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (
        m.registry.get_sample_value("tamma_tools_calls_total", {"tool": "t", "outcome": "executed"})
        == 80_000
    )
    assert (
        m.registry.get_sample_value("tamma_tools_call_duration_seconds_count", {"tool": "t"})
        == 80_000
    )


def test_metrics_endpoint_serves_the_registry_on_loopback() -> None:
    m = MetricsObserver()
    scripted_run(m)
    server = start_metrics_server(0, registry=m.registry)
    try:
        assert server.host == "127.0.0.1"
        with urllib.request.urlopen(server.url, timeout=5) as resp:
            assert resp.status == 200
            body = resp.read().decode()
        families = {f.name: f for f in text_string_to_metric_families(body)}
        calls = families["tamma_tools_calls"]
        got = {
            (s.labels["tool"], s.labels["outcome"]): s.value
            for s in calls.samples
            if s.name.endswith("_total")
        }
        assert got[("search", "executed")] == 10
        assert "tamma_tools_call_duration_seconds" in families
    finally:
        server.close()


def test_start_metrics_server_requires_an_explicit_registry() -> None:
    with pytest.raises(ValueError, match="registry"):
        start_metrics_server(0)


def test_bad_buckets_are_refused() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        MetricsObserver(buckets_s=(1.0, 0.5))
