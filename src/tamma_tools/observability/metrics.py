"""Prometheus metrics for tool calls, in a registry of their own.

The call path only bumps plain counters in a per-thread shard, without a lock (~0.3 µs); the
Prometheus metric families are built from them when the registry is scraped (a custom collector, the
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


class _Shard:
    """One thread's counters. Only its own thread writes them, so the call path takes no lock;
    a scrape copies every shard (``dict(d)`` and ``list(l)`` are single C calls under the GIL)
    and adds them up."""

    __slots__ = (
        "active", "breaches", "calls", "executed", "hist", "rate_limited", "timeouts", "violations"
    )  # fmt: skip

    def __init__(self) -> None:
        self.calls: dict[tuple[str, str], int] = {}
        self.executed: dict[str, int] = {}
        """``calls_total{outcome="executed"}`` per tool, kept apart for the fast path."""
        self.hist: dict[str, list[float]] = {}
        """Per tool: one count per bucket, one for +Inf, then the sum of observed seconds."""
        self.violations: dict[str, int] = {}
        self.rate_limited: dict[str, int] = {}
        self.timeouts: dict[str, int] = {}
        self.breaches: dict[tuple[str, str], int] = {}
        self.active: set[str] = set()
        """Ids of calls executing now (set operations are single C calls)."""


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
        self._local = threading.local()
        self._shards: list[_Shard] = []
        self._tools: set[str] = set()
        self._collector = _Collector(self)
        self.registry.register(self._collector)

    def _shard(self) -> _Shard:
        shard = _Shard()
        self._local.shard = shard
        with self._lock:
            self._shards.append(shard)
        return shard

    # --- the call path ----------------------------------------------------------------------

    def on_call_started(self, call_id: str, tool: str, context: CallerContext) -> None:
        try:
            self._local.shard.active.add(call_id)
        except AttributeError:
            self._shard().active.add(call_id)

    def on_call_finished(self, record: CallRecord) -> None:
        try:
            shard: _Shard = self._local.shard
        except AttributeError:
            shard = self._shard()
        shard.active.discard(record.call_id)
        if record.outcome == "executed":
            # The common case, for a tool this thread has seen: two dict hits and a bisect.
            tool = record.tool
            hist = shard.hist.get(tool)
            if hist is not None:
                executed = shard.executed
                if tool in executed:
                    executed[tool] += 1
                    seconds = record.duration_ms / 1000.0
                    hist[bisect_left(self.buckets_s, seconds)] += 1
                    hist[-1] += seconds
                    return
        self._record_slow(shard, record)

    def _tool_label(self, tool: str, outcome: str) -> str:
        if outcome == "unknown_tool":
            return UNKNOWN_TOOL
        if tool in self._tools:
            return tool
        with self._lock:
            if tool in self._tools:
                return tool
            if len(self._tools) >= self.max_tools:
                return OTHER_TOOL
            self._tools.add(tool)
            return tool

    def _record_slow(self, shard: _Shard, record: CallRecord) -> None:
        outcome = record.outcome
        tool = self._tool_label(record.tool, outcome)
        if outcome == "executed":
            shard.executed[tool] = shard.executed.get(tool, 0) + 1
        else:
            key = (tool, outcome)
            shard.calls[key] = shard.calls.get(key, 0) + 1
        if outcome in EXECUTED_OUTCOMES:
            seconds = record.duration_ms / 1000.0
            hist = shard.hist.get(tool)
            if hist is None:
                hist = shard.hist[tool] = [0.0] * (len(self.buckets_s) + 2)
            hist[bisect_left(self.buckets_s, seconds)] += 1
            hist[-1] += seconds
            if outcome == "timed_out":
                shard.timeouts[tool] = shard.timeouts.get(tool, 0) + 1
            elif outcome == "resource_limit":
                bkey = (tool, record.error_code or "resource_limit")
                shard.breaches[bkey] = shard.breaches.get(bkey, 0) + 1
        elif outcome == "denied":
            kind = record.rule or record.error_code or "denied"
            shard.violations[kind] = shard.violations.get(kind, 0) + 1
        elif outcome == "rate_limited":
            shard.rate_limited[tool] = shard.rate_limited.get(tool, 0) + 1

    # --- reading ----------------------------------------------------------------------------

    def close(self) -> None:
        """Remove the collector from the registry (idempotent)."""
        with contextlib.suppress(KeyError):
            self.registry.unregister(self._collector)

    def _snapshot(self) -> dict[str, Any]:
        with self._lock:
            shards = list(self._shards)
        calls: dict[tuple[str, str], float] = {}
        hist: dict[str, list[float]] = {}
        sums: dict[str, dict[Any, float]] = {
            "violations": {}, "rate_limited": {}, "timeouts": {}, "breaches": {}
        }  # fmt: skip
        active = 0
        for shard in shards:
            for key, n in dict(shard.calls).items():
                calls[key] = calls.get(key, 0) + n
            for tool, n in dict(shard.executed).items():
                calls[(tool, "executed")] = calls.get((tool, "executed"), 0) + n
            for tool, counts in dict(shard.hist).items():
                copy = list(counts)
                total = hist.get(tool)
                hist[tool] = (
                    copy if total is None else [a + b for a, b in zip(total, copy, strict=True)]
                )
            for name, target in sums.items():
                for key, n in dict(getattr(shard, name)).items():
                    target[key] = target.get(key, 0) + n
            active += len(shard.active)
        return {"calls": calls, "hist": hist, "active": active, **sums}


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
