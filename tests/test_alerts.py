"""Alert rules: each fires once per episode and clears; the shipped Prometheus rules and
Grafana dashboard use the metrics the library exposes."""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tamma_tools.events import CallRecord
from tamma_tools.observability import (
    Alert,
    AlertEngine,
    FailureRateRule,
    LatencyBaselineRule,
    LatencyThresholdRule,
    MetricsObserver,
    ResourceLimitRule,
    SecurityViolationRule,
    default_rules,
)
from tamma_tools.observability.alerts import AlertRule, p95
from tamma_tools.types import CallerContext

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
T0 = 1_700_000_000.0
CTX = CallerContext()


def rec(ts: float, tool: str, outcome: Any, duration_ms: float = 1.0, **kw: Any) -> CallRecord:
    return CallRecord(call_id=f"c{ts}", tool=tool, outcome=outcome, context=CTX, arguments="{}",
                      timestamp=ts, duration_ms=duration_ms, **kw)  # fmt: skip


class Episode:
    """Drives one rule through: quiet, breach (several evaluations), quiet again."""

    def __init__(self, rule: Any) -> None:
        self.seen: list[Alert] = []
        self.engine = AlertEngine(rules=[rule], callbacks=[self.seen.append])

    def feed(self, records: list[CallRecord]) -> None:
        for r in records:
            self.engine.on_call_finished(r)

    def statuses(self) -> list[tuple[str, str, str]]:
        return [(a.rule, a.key, a.status) for a in self.seen]


def test_failure_rate_fires_once_per_episode_and_clears() -> None:
    ep = Episode(FailureRateRule(threshold=0.25, window_s=60, min_calls=20))
    ep.feed([rec(T0 + i, "search", "executed") for i in range(30)])
    ep.engine.evaluate(T0 + 30)
    assert ep.seen == []
    ep.feed(
        [rec(T0 + 30 + i * 0.5, "search", "failed" if i % 2 else "executed") for i in range(40)]
    )
    for t in range(50, 60):  # breaching on every evaluation: still one alert
        ep.engine.evaluate(T0 + t)
    assert ep.statuses() == [("tool_failure_rate", "search", "firing")]
    assert ep.seen[0].value > 0.25
    assert "search" in ep.seen[0].message and "threshold 25%" in ep.seen[0].message
    ep.feed([rec(T0 + 100 + i, "search", "executed") for i in range(30)])
    ep.engine.evaluate(T0 + 131)  # the failures left the 60 s window
    ep.engine.evaluate(T0 + 132)
    assert ep.statuses() == [("tool_failure_rate", "search", "firing"),
                             ("tool_failure_rate", "search", "resolved")]  # fmt: skip


def test_failure_rate_needs_enough_calls() -> None:
    ep = Episode(FailureRateRule(threshold=0.25, window_s=60, min_calls=20))
    ep.feed([rec(T0 + i, "rare", "failed") for i in range(5)])
    assert ep.engine.evaluate(T0 + 10) == []


def test_any_security_violation_fires_per_rule_kind_and_clears() -> None:
    ep = Episode(SecurityViolationRule(window_s=60))
    ep.feed([rec(T0, "read_file", "denied", rule="path.outside_roots")])
    ep.feed([rec(T0 + 1, "http_request", "denied", rule="network.private_address")])
    ep.feed([rec(T0 + 2, "read_file", "denied", rule="path.outside_roots")])
    ep.feed([rec(T0 + 3, "x", "rate_limited"), rec(T0 + 3, "x", "rejected", rule="approval")])
    ep.engine.evaluate(T0 + 5)
    ep.engine.evaluate(T0 + 6)
    assert sorted(ep.statuses()) == [("security_violation", "network.private_address", "firing"),
                                     ("security_violation", "path.outside_roots", "firing")]  # fmt: skip
    ep.engine.evaluate(T0 + 70)
    assert [s for s in ep.statuses() if s[2] == "resolved"] == [
        ("security_violation", "path.outside_roots", "resolved"),
        ("security_violation", "network.private_address", "resolved"),
    ]
    assert ep.engine.firing == []


def test_resource_limit_breach_fires_and_clears() -> None:
    ep = Episode(ResourceLimitRule(window_s=60))
    ep.feed([rec(T0 + i, "convert", "executed") for i in range(10)])
    ep.engine.evaluate(T0 + 10)
    ep.feed([rec(T0 + 11, "convert", "resource_limit", error_code="memory_limit")])
    ep.engine.evaluate(T0 + 12)
    ep.engine.evaluate(T0 + 13)
    ep.engine.evaluate(T0 + 80)
    assert ep.statuses() == [("resource_limit_breach", "convert", "firing"),
                             ("resource_limit_breach", "convert", "resolved")]  # fmt: skip


def test_p95_latency_threshold_fires_and_clears() -> None:
    ep = Episode(LatencyThresholdRule(threshold=500, window_s=60, min_calls=20))
    # 100 calls: 94 fast, 6 slow -> p95 is slow.
    ep.feed(
        [
            rec(T0 + i * 0.1, "render", "executed", 2000.0 if i % 16 == 0 else 10.0)
            for i in range(100)
        ]
    )
    ep.engine.evaluate(T0 + 20)
    ep.engine.evaluate(T0 + 21)
    assert ep.statuses() == [("latency_p95_high", "render", "firing")]
    assert ep.seen[0].value == 2000.0
    ep.feed([rec(T0 + 100 + i * 0.1, "render", "executed", 10.0) for i in range(100)])
    ep.engine.evaluate(T0 + 120)
    assert ep.statuses()[-1] == ("latency_p95_high", "render", "resolved")


def test_latency_degraded_against_its_own_baseline_fires_and_clears() -> None:
    ep = Episode(LatencyBaselineRule(threshold=2.0, window_s=60, baseline_s=600, min_calls=20))
    ep.feed(
        [rec(T0 + i, "db_query", "executed", 20.0 + i % 5) for i in range(600)]
    )  # baseline ~24 ms
    ep.engine.evaluate(T0 + 600)
    assert ep.seen == []  # steady state: the window is like its baseline
    ep.feed([rec(T0 + 600 + i, "db_query", "executed", 80.0) for i in range(60)])
    ep.engine.evaluate(T0 + 660)
    ep.engine.evaluate(T0 + 661)
    assert ep.statuses() == [("latency_degraded", "db_query", "firing")]
    assert ep.seen[0].value == pytest.approx(80 / 24)
    ep.feed([rec(T0 + 661 + i, "db_query", "executed", 22.0) for i in range(60)])
    ep.engine.evaluate(T0 + 721)
    assert ep.statuses()[-1] == ("latency_degraded", "db_query", "resolved")


def test_fast_tools_do_not_alert_on_relative_noise() -> None:
    ep = Episode(LatencyBaselineRule(threshold=2.0, window_s=60, baseline_s=600, min_calls=20))
    ep.feed([rec(T0 + i, "add", "executed", 0.05) for i in range(600)])
    ep.feed([rec(T0 + 600 + i, "add", "executed", 0.3) for i in range(60)])
    assert ep.engine.evaluate(T0 + 660) == []


def test_alerts_go_to_the_log_and_a_failing_callback_does_not_stop_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    got: list[Alert] = []

    def broken(alert: Alert) -> None:
        raise RuntimeError("pager down")

    engine = AlertEngine(rules=[SecurityViolationRule(window_s=60)], callbacks=[broken, got.append])
    engine.on_call_finished(rec(T0, "t", "denied", rule="permission"))
    with caplog.at_level(logging.INFO, logger="tamma_tools.observability.alerts"):
        engine.evaluate(T0 + 1)
        engine.evaluate(T0 + 100)
    assert [a.status for a in got] == ["firing", "resolved"]
    firing = [r for r in caplog.records if "firing" in r.getMessage()]
    assert firing and firing[0].levelno == logging.WARNING
    assert firing[0].alert_rule == "security_violation"  # type: ignore[attr-defined]
    assert any("alert callback" in r.getMessage() for r in caplog.records)


def test_background_evaluation_fires_without_being_asked() -> None:
    got: list[Alert] = []
    engine = AlertEngine(rules=[SecurityViolationRule()], callbacks=[got.append], interval_s=0.02)
    engine.start()
    try:
        engine.on_call_finished(rec(time.time(), "t", "denied", rule="permission"))
        deadline = time.time() + 5
        while not got and time.time() < deadline:
            time.sleep(0.01)
    finally:
        engine.close()
    assert [(a.rule, a.status) for a in got] == [("security_violation", "firing")]


def test_memory_is_bounded() -> None:
    engine = AlertEngine(max_events=1000)
    for i in range(5000):
        engine.on_call_finished(rec(T0 + i, "t", "executed"))
    assert len(engine._events) == 1000


def test_p95_is_nearest_rank() -> None:
    assert p95([float(i) for i in range(1, 101)]) == 95.0
    assert p95([5.0]) == 5.0
    assert p95([1.0] * 19 + [100.0]) == 1.0
    assert p95([1.0] * 18 + [100.0, 100.0]) == 100.0


# --- the shipped Prometheus rules and Grafana dashboard ---------------------------------------


def exposed_metric_names() -> set[str]:
    m = MetricsObserver()
    for outcome in ("executed", "denied", "rate_limited", "timed_out", "resource_limit"):
        m.on_call_finished(rec(T0, "t", outcome, rule="permission"))
    names: set[str] = set()
    for family in m.registry.collect():
        names |= {s.name for s in family.samples}
    return names


METRIC_REF = re.compile(r"\btamma_tools_[a-z_]+")


def test_prometheus_rules_match_the_in_process_rules_and_metrics() -> None:
    doc = yaml.safe_load((DEPLOY / "prometheus" / "tamma-tools-alerts.yml").read_text())
    rules = [r for g in doc["groups"] for r in g["rules"]]
    assert {r["labels"]["rule"] for r in rules} == {r.name for r in default_rules()}
    names = exposed_metric_names()
    for r in rules:
        assert set(r) >= {"alert", "expr", "labels", "annotations"}
        assert r["labels"]["severity"] in ("warning", "critical")
        refs = set(METRIC_REF.findall(r["expr"]))
        assert refs and refs <= names, (r["alert"], refs - names)


def test_grafana_dashboard_queries_only_exposed_metrics() -> None:
    dash = json.loads((DEPLOY / "grafana" / "tamma-tools-dashboard.json").read_text())
    names = exposed_metric_names()
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 6
    for expr in exprs:
        refs = set(METRIC_REF.findall(expr))
        assert refs and refs <= names, (expr, refs - names)
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])


def test_a_custom_rule_must_say_what_breaches() -> None:
    class Incomplete(AlertRule):
        name = "incomplete"

    with pytest.raises(TypeError, match="breaches"):
        Incomplete()  # type: ignore[abstract]
