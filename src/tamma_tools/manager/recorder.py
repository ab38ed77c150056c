"""Where the manager's decisions go: the bounded history, observers and event callbacks.

Observers (audit, metrics, traces, alerts) and callbacks run on the call path, so a failing one
is logged and skipped: it never breaks the call or the other observers.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from tamma_tools.events import CallObserver, CallRecord, Outcome
from tamma_tools.types import CallerContext

__all__ = ["DecisionRecorder"]

log = logging.getLogger("tamma_tools.manager")


class DecisionRecorder:
    def __init__(self, history_size: int, observers: Iterable[CallObserver] = ()) -> None:
        self.history: deque[CallRecord] = deque(maxlen=history_size or 1)
        self.keep_history = history_size > 0
        self.observers: list[CallObserver] = []
        self.starters: list[CallObserver] = []
        """Observers that want ``on_call_started`` (an observer may say ``observes_start =
        False`` to be skipped there: one Python call less per call)."""
        self.listeners: dict[str, list[Callable[[CallRecord], None]]] = {}
        self.active = self.keep_history
        """False when nobody would see a record, so none need be built (an attribute, not a
        property: the call path reads it once per call)."""
        for observer in observers:
            self.add(observer)

    def add(self, observer: CallObserver) -> None:
        self.observers.append(observer)
        if getattr(observer, "observes_start", True):
            self.starters.append(observer)
        self.active = True

    def on(self, kind: Outcome | str, callback: Callable[[CallRecord], None]) -> Callable[[], None]:
        self.listeners.setdefault(kind, []).append(callback)
        self.active = True

        def unsubscribe() -> None:
            callbacks = self.listeners.get(kind, [])
            if callback in callbacks:
                callbacks.remove(callback)

        return unsubscribe

    def started(self, call_id: str, tool: str, context: CallerContext) -> None:
        for observer in self.starters:
            try:
                observer.on_call_started(call_id, tool, context)
            except Exception:
                log.exception("observer %r failed", observer)

    def record(
        self, call_id: str, name: str, raw: str, ctx: CallerContext, outcome: Outcome,
        started: float, *, error_code: str | None = None, error: str | None = None,
        rule: str | None = None, result_size: int = 0, isolation: str = "in_process",
        layers: tuple[str, ...] = (), repairs: tuple[str, ...] = (), approver: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        """Build the ``CallRecord`` of one decision and hand it to everyone listening."""
        if not self.active:
            return
        # Positional arguments: this runs once per decision and costs half as much as keywords.
        self.emit(
            CallRecord(
                call_id, name, outcome, ctx, raw, time.time(),
                (time.perf_counter() - started) * 1000.0, error_code, error, rule, result_size,
                isolation, layers, repairs, approver, extra if extra is not None else {},
            )
        )  # fmt: skip

    def emit(self, record: CallRecord) -> None:
        if self.keep_history:
            self.history.append(record)
        for observer in self.observers:
            try:
                observer.on_call_finished(record)
            except Exception:
                log.exception("observer %r failed", observer)
        if self.listeners:
            for kind in (record.outcome, "*"):
                for callback in self.listeners.get(kind, ()):
                    try:
                        callback(record)
                    except Exception:
                        log.exception("event callback for %r failed", kind)
