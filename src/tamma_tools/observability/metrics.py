"""Prometheus metrics for tool calls, in a registry of their own.

The call path only bumps plain counters under one uncontended lock (~0.4 µs); the Prometheus
metric families are built from them when the registry is scraped (a custom collector, the
pattern ``prometheus_client`` documents for values kept elsewhere). Its labelled ``Counter``
would cost ~1.2 µs per ``labels().inc()`` and the histogram another ~0.7 µs.

Tool names come from the model (an unknown name is a decision too), so label values are bounded:
``unknown_tool`` decisions are counted under ``tool="<unknown>"`` and at most ``max_tools``
distinct names get their own series; the rest share ``tool="<other>"``.
"""

from __future__ import annotations

import contextlib
import threading
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from tamma_tools.events import CallRecord
from tamma_tools.types import CallerContext

__all__ = [
    "DEFAULT_BUCKETS_S",
    "METRIC_NAMES",
    "MetricsObserver",
    "MetricsServer",
    "start_metrics_server",
]

DEFAULT_BUCKETS_S: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
)  # fmt: skip
"""Call duration buckets (seconds): built-ins run in well under 1 ms, isolated tools in ms."""

EXECUTED_OUTCOMES = frozenset({"executed", "failed", "timed_out", "resource_limit", "cancelled"})
"""Outcomes of calls that ran; only these feed the duration histogram."""

METRIC_NAMES: dict[str, str] = {
    "calls": "calls_total",
    "duration": "call_duration_seconds",
    "violations": "security_violations_total",
    "rate_limited": "rate_limit_hits_total",
    "timeouts": "timeouts_total",
    "breaches": "limit_breaches_total",
    "active": "active_executions",
}
"""Series names without the namespace prefix (``tamma_tools_`` by default)."""

UNKNOWN_TOOL = "<unknown>"
OTHER_TOOL = "<other>"


class MetricsObserver:
    """A ``CallObserver`` that keeps call metrics and exposes them through ``registry``."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        namespace: str = "tamma_tools",
        buckets_s: tuple[float, ...] = DEFAULT_BUCKETS_S,
        max_tools: int = 1000,
    ) -> None:
        if list(buckets_s) != sorted(set(buckets_s)) or not buckets_s:
            raise ValueError("buckets_s must be strictly increasing and not empty")
        self.registry = registry if registry is not None else CollectorRegistry()
        """Our own registry unless one is given: an embedding app's default registry stays clean."""
        self.namespace = namespace
        self.buckets_s = tuple(buckets_s)
        self.max_tools = max_tools
        self._lock = threading.Lock()
        self._calls: dict[tuple[str, str], int] = {}
        self._hist: dict[str, list[float]] = {}
        """Per tool: one count per bucket, one for +Inf, then the sum of observed seconds."""
        self._violations: dict[str, int] = {}
        self._rate_limited: dict[str, int] = {}
        self._timeouts: dict[str, int] = {}
        self._breaches: dict[tuple[str, str], int] = {}
        self._active: dict[str, int] = {}
        self._tools: set[str] = set()
        self._collector = _Collector(self)
        self.registry.register(self._collector)

    # --- the call path ----------------------------------------------------------------------

    def on_call_started(self, call_id: str, tool: str, context: CallerContext) -> None:
        with self._lock:
            self._active[call_id] = self._active.get(call_id, 0) + 1

    def on_call_finished(self, record: CallRecord) -> None:
        outcome = record.outcome
        tool = record.tool
        key: tuple[str, str]
        if outcome == "executed":
            # The common case, for a tool seen before: two dict hits and a bisect.
            key = (tool, outcome)
            hist = self._hist.get(tool)
            if hist is not None and key in self._calls:
                seconds = record.duration_ms / 1000.0
                with self._lock:
                    self._calls[key] += 1
                    hist[bisect_left(self.buckets_s, seconds)] += 1
                    hist[-1] += seconds
                    if self._active:
                        self._finish_active(record.call_id)
                return
        with self._lock:
            if outcome == "unknown_tool":
                tool = UNKNOWN_TOOL
            elif tool not in self._tools:
                if len(self._tools) >= self.max_tools:
                    tool = OTHER_TOOL
                else:
                    self._tools.add(tool)
            key = (tool, outcome)
            self._calls[key] = self._calls.get(key, 0) + 1
            if outcome in EXECUTED_OUTCOMES:
                seconds = record.duration_ms / 1000.0
                hist = self._hist.get(tool)
                if hist is None:
                    hist = self._hist[tool] = [0.0] * (len(self.buckets_s) + 2)
                hist[bisect_left(self.buckets_s, seconds)] += 1
                hist[-1] += seconds
                if outcome == "timed_out":
                    self._timeouts[tool] = self._timeouts.get(tool, 0) + 1
                elif outcome == "resource_limit":
                    bkey = (tool, record.error_code or "resource_limit")
                    self._breaches[bkey] = self._breaches.get(bkey, 0) + 1
            elif outcome == "denied":
                kind = record.rule or record.error_code or "denied"
                self._violations[kind] = self._violations.get(kind, 0) + 1
            elif outcome == "rate_limited":
                self._rate_limited[tool] = self._rate_limited.get(tool, 0) + 1
            if self._active:
                self._finish_active(record.call_id)

    def _finish_active(self, call_id: str) -> None:
        n = self._active.get(call_id)
        if n is not None:
            if n <= 1:
                del self._active[call_id]
            else:
                self._active[call_id] = n - 1

    # --- reading ----------------------------------------------------------------------------

    def close(self) -> None:
        """Remove the collector from the registry (idempotent)."""
        with contextlib.suppress(KeyError):
            self.registry.unregister(self._collector)

    def _snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": dict(self._calls),
                "hist": {tool: list(h) for tool, h in self._hist.items()},
                "violations": dict(self._violations),
                "rate_limited": dict(self._rate_limited),
                "timeouts": dict(self._timeouts),
                "breaches": dict(self._breaches),
                "active": sum(self._active.values()),
            }


class _Collector(Collector):
    def __init__(self, owner: MetricsObserver) -> None:
        self.owner = owner

    def describe(self) -> list[Metric]:
        # Names only, so registering two observers on one registry fails loudly.
        return list(self._families({"calls": {}, "hist": {}, "violations": {}, "rate_limited": {},
                                    "timeouts": {}, "breaches": {}, "active": 0}))  # fmt: skip

    def collect(self) -> Iterator[Metric]:
        return self._families(self.owner._snapshot())

    def _families(self, snap: dict[str, Any]) -> Iterator[Metric]:
        o = self.owner
        name = {k: f"{o.namespace}_{v}".removesuffix("_total") for k, v in METRIC_NAMES.items()}
        calls = CounterMetricFamily(
            name["calls"], "Tool-call decisions by tool and outcome.", labels=["tool", "outcome"]
        )
        for (tool, outcome), n in snap["calls"].items():
            calls.add_metric([tool, outcome], n)
        yield calls

        hist = HistogramMetricFamily(
            name["duration"], "Duration of calls that ran, by tool.", labels=["tool"]
        )
        for tool, counts in snap["hist"].items():
            cumulative = 0.0
            buckets: list[tuple[str, float]] = []
            for bound, n in zip((*o.buckets_s, float("inf")), counts[:-1], strict=True):
                cumulative += n
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            hist.add_metric([tool], buckets, sum_value=counts[-1])
        yield hist

        for key, doc, label in (
            ("violations", "Calls denied by a security rule, by rule.", "kind"),
            ("rate_limited", "Calls refused by a rate limit, by tool.", "tool"),
            ("timeouts", "Calls stopped at their deadline, by tool.", "tool"),
        ):
            family = CounterMetricFamily(name[key], doc, labels=[label])
            for value, n in snap[key].items():
                family.add_metric([value], n)
            yield family

        breaches = CounterMetricFamily(
            name["breaches"], "Calls stopped by a resource limit, by tool and kind.",
            labels=["tool", "kind"],
        )  # fmt: skip
        for (tool, kind), n in snap["breaches"].items():
            breaches.add_metric([tool, kind], n)
        yield breaches

        yield GaugeMetricFamily(name["active"], "Calls executing now.", value=snap["active"])


@dataclass
class MetricsServer:
    """A running ``/metrics`` endpoint; ``close()`` stops it."""

    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        # wsgiref prints each request to stderr; the library prints nothing.
        return None


def start_metrics_server(
    port: int = 9464, *, host: str = "127.0.0.1", registry: CollectorRegistry | None = None
) -> MetricsServer:
    """Serve ``registry`` in Prometheus text format at ``http://host:port/metrics``.

    Binds to loopback unless told otherwise (secure by default); ``port=0`` picks a free port.
    """
    if registry is None:
        raise ValueError("pass the registry to serve, e.g. MetricsObserver().registry")
    app = make_wsgi_app(registry)
    server = make_server(host, port, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="tamma-metrics-http", daemon=True)
    thread.start()
    return MetricsServer(host, server.server_port, server, thread)
