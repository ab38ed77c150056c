"""Audit log, metrics, traces, alerts and logs for every decision about a tool call.

Everything here is a ``CallObserver`` (``tamma_tools.events``) fed by the manager::

    obs = Observability(audit="audit.db", metrics=True, tracing=True, alerts=True)
    manager = FunctionCallingManager(observers=[obs.observer])
    ...
    print(obs.audit.summary())
    obs.close()
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tamma_tools.events import CallObserver
from tamma_tools.observability.alerts import (
    Alert,
    AlertEngine,
    AlertRule,
    FailureRateRule,
    LatencyBaselineRule,
    LatencyThresholdRule,
    ResourceLimitRule,
    SecurityViolationRule,
    default_rules,
)
from tamma_tools.observability.audit import AuditEntry, AuditFilter, AuditLog, AuditObserver
from tamma_tools.observability.audit_sqlite import SQLiteAuditLog
from tamma_tools.observability.fanout import FanOut
from tamma_tools.observability.hashchain import ChainReport
from tamma_tools.observability.logging import LogObserver
from tamma_tools.observability.metrics import (
    MetricsObserver,
    MetricsServer,
    start_metrics_server,
)
from tamma_tools.observability.redaction import RedactionConfig, Redactor
from tamma_tools.observability.tracing import TracingObserver

__all__ = [
    "Alert",
    "AlertEngine",
    "AlertRule",
    "AuditEntry",
    "AuditFilter",
    "AuditLog",
    "AuditObserver",
    "ChainReport",
    "FailureRateRule",
    "FanOut",
    "LatencyBaselineRule",
    "LatencyThresholdRule",
    "LogObserver",
    "MetricsObserver",
    "MetricsServer",
    "Observability",
    "PostgresAuditLog",
    "RedactionConfig",
    "Redactor",
    "ResourceLimitRule",
    "SQLiteAuditLog",
    "SecurityViolationRule",
    "TracingObserver",
    "default_rules",
    "open_audit_log",
    "start_metrics_server",
]

if TYPE_CHECKING:
    from tamma_tools.config import Settings

DEFAULT_AUDIT_PATH = "tamma-audit.db"
"""The same default as the configuration file's ``[audit] path``."""


def __getattr__(name: str) -> Any:
    # psycopg is an optional extra: import the PostgreSQL backend only when asked for.
    if name == "PostgresAuditLog":
        from tamma_tools.observability.audit_postgres import PostgresAuditLog

        return PostgresAuditLog
    raise AttributeError(name)


def open_audit_log(target: str | os.PathLike[str], **options: Any) -> AuditLog:
    """An audit log from a path (SQLite) or a ``postgresql://`` / ``postgres://`` URL."""
    text = os.fspath(target)
    if text.startswith(("postgresql://", "postgres://")):
        from tamma_tools.observability.audit_postgres import PostgresAuditLog

        return PostgresAuditLog(text, **options)
    return SQLiteAuditLog(text, **options)


class Observability:
    """Builds the observers in one place and closes them together.

    Each argument takes ``True`` (defaults), ``False``/``None`` (off) or a ready object;
    ``audit`` also takes a path or a PostgreSQL URL. Audit and metrics are on by default
    (DESIGN.md: audit on); tracing is on too and costs nothing until OpenTelemetry is configured.
    """

    def __init__(
        self,
        *,
        audit: AuditLog | str | os.PathLike[str] | bool | None = True,
        metrics: MetricsObserver | bool | None = True,
        tracing: TracingObserver | bool | None = True,
        alerts: AlertEngine | bool | None = False,
        logs: LogObserver | bool | None = False,
        redaction: RedactionConfig | None = None,
        on_alert: Callable[[Alert], None] | None = None,
    ) -> None:
        redactor = Redactor(redaction or RedactionConfig())
        self.audit: AuditLog | None
        if audit is True:
            self.audit = SQLiteAuditLog(DEFAULT_AUDIT_PATH, redaction=redactor)
        elif isinstance(audit, AuditLog):
            self.audit = audit
        elif isinstance(audit, str | os.PathLike):
            self.audit = open_audit_log(audit, redaction=redactor)
        else:
            self.audit = None
        self.metrics = MetricsObserver() if metrics is True else metrics if metrics else None
        self.tracing = (
            TracingObserver(redactor=redactor) if tracing is True else tracing if tracing else None
        )
        self.alerts = AlertEngine().start() if alerts is True else alerts if alerts else None
        if self.alerts is not None and on_alert is not None:
            self.alerts.add_callback(on_alert)
        self.logs = LogObserver() if logs is True else logs if logs else None
        self._server: MetricsServer | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Observability:
        """From the configuration file's ``[audit]`` and ``[metrics]`` sections: the SQLite path
        is relative to the file; a ``[metrics] port`` starts the ``/metrics`` endpoint."""
        audit: AuditLog | None = None
        section = settings.audit
        if section.enabled:
            if section.backend == "postgres":
                from tamma_tools.observability.audit_postgres import PostgresAuditLog

                audit = PostgresAuditLog(section.url or "")
            else:
                audit = SQLiteAuditLog(settings.resolve(section.path))
        obs = cls(**{"audit": audit, **overrides})
        if settings.metrics.port is not None and obs.metrics is not None:
            obs.serve_metrics(settings.metrics.port)
        return obs

    @property
    def observer(self) -> FanOut:
        """All of them as one observer (the cheapest way to hand them to the manager)."""
        return FanOut(self.observers)

    @property
    def observers(self) -> list[CallObserver]:
        """Hand these to ``FunctionCallingManager(observers=...)``; the audit hand-off first."""
        out: list[CallObserver] = []
        if self.audit is not None:
            out.append(self.audit.observer())
        for observer in (self.metrics, self.tracing, self.alerts, self.logs):
            if observer is not None:
                out.append(observer)
        return out

    def serve_metrics(self, port: int = 9464, *, host: str = "127.0.0.1") -> MetricsServer:
        """Start the ``/metrics`` endpoint for this instance's registry."""
        if self.metrics is None:
            raise ValueError("metrics are off; pass metrics=True")
        self._server = start_metrics_server(port, host=host, registry=self.metrics.registry)
        return self._server

    def flush(self, timeout: float | None = 30.0) -> bool:
        return self.audit.flush(timeout) if self.audit is not None else True

    def close(self) -> None:
        """Write pending audit records, stop alert evaluation and the metrics server."""
        if self._server is not None:
            self._server.close()
            self._server = None
        if self.alerts is not None:
            self.alerts.close()
        if self.audit is not None:
            self.audit.close()

    def __enter__(self) -> Observability:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
