"""One ``CallObserver`` that feeds several: fewer hops on the call path.

The manager calls each registered observer twice per call inside its own guard; handing it one
fan-out instead saves those hops (~0.1 µs per observer and call), and observers that ignore
``on_call_started`` (their class sets ``observes_start = False``) are not called for it at all.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from tamma_tools.events import CallObserver, CallRecord
from tamma_tools.types import CallerContext

__all__ = ["FanOut"]

log = logging.getLogger(__name__)


class FanOut:
    """Calls every observer in order; one failing observer never stops the others or the call."""

    __slots__ = ("_finished", "_started", "observers")

    def __init__(self, observers: Iterable[CallObserver]) -> None:
        self.observers: tuple[CallObserver, ...] = tuple(observers)
        self._started = tuple(
            o.on_call_started for o in self.observers if getattr(o, "observes_start", True)
        )
        self._finished = tuple(o.on_call_finished for o in self.observers)

    def on_call_started(self, call_id: str, tool: str, context: CallerContext) -> None:
        for started in self._started:
            try:
                started(call_id, tool, context)
            except Exception:
                log.exception("observer failed on call start", extra={"call_id": call_id})

    def on_call_finished(self, record: CallRecord) -> None:
        for finished in self._finished:
            try:
                finished(record)
            except Exception:
                log.exception("observer failed on call end", extra={"call_id": record.call_id})
