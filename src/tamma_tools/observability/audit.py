"""The audit log: one append-only, hash-chained row per decision about a tool call.

``AuditLog`` is the interface; ``SQLiteAuditLog`` (embedded, the default) and
``PostgresAuditLog`` (several processes sharing one log) implement it.

Never on the hot path, never lost
---------------------------------
The call path only hands the ``CallRecord`` to a ``queue.SimpleQueue`` (one C call, ~0.05 µs;
performance research: a commit per row with default SQLite settings costs ~0.7 ms). A background
writer thread redacts, digests and hash-chains the records and writes them in batches, one
transaction per batch. ``flush()`` waits until everything handed over so far is committed;
``close()`` and interpreter exit (``atexit``) write everything pending. A batch that fails to write
(database locked, disk full) is retried with back-off, never dropped; if it still cannot be written
when the log is closed, every row is logged at ERROR level as JSON so it survives in the
application's logs. While the database is unreachable, records wait in memory: the call path
never blocks on the audit log. ``pause()``/``resume()`` hold writing for a maintenance window.

What a SIGKILL can lose: only records handed over and not yet committed, i.e. those still in the
queue plus the batch in its open transaction (rolled back as a whole, never half-written). The
writer commits as soon as records arrive, so under normal load this is the last few
milliseconds of decisions; everything before the last ``flush()`` returned is on disk. A caller
that outruns the database (a tight loop of calls against a shared PostgreSQL log, measured in
``docs/scaling.md``) grows the queue, and then a SIGKILL loses the whole backlog: set
``max_pending`` to bound it; callers then wait for the writer whenever the backlog passes it.
With the default ``synchronous=NORMAL`` in WAL mode a committed batch survives a process crash;
only an OS crash or power loss can lose the last commits (choose ``synchronous="FULL"`` for that).
"""

from __future__ import annotations

import abc
import atexit
import contextlib
import logging
import math
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, ClassVar

import orjson

from tamma_tools.events import CallRecord
from tamma_tools.observability.hashchain import HASHED_COLUMNS, ChainReport, chain_hash
from tamma_tools.observability.redaction import (
    RedactionConfig,
    Redactor,
    arguments_digest,
    escape_control,
)
from tamma_tools.types import CallerContext

__all__ = ["AuditEntry", "AuditFilter", "AuditLog", "AuditObserver"]

log = logging.getLogger(__name__)

_YIELD_EVERY = 64
"""Rows the writer converts or hashes between two releases of the GIL (~0.3 ms of work)."""

_MAX_NAME_CHARS = 256
"""Tool names and call ids come from the model; longer ones are cut before they are stored."""

COLUMNS: tuple[str, ...] = (*HASHED_COLUMNS, "prev_hash", "hash")
"""Stored columns, in the order rows travel as lists. ``roles``, ``repairs`` and ``sandbox_layers``
are JSON arrays stored as text so the hashed bytes are exactly what the database holds."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One stored audit row, as the query API returns it."""

    seq: int
    ts: float
    call_id: str
    tool: str
    user_id: str
    session_id: str | None
    roles: tuple[str, ...]
    outcome: str
    rule: str | None
    error_code: str | None
    approver: str | None
    repairs: tuple[str, ...]
    args_preview: str
    args_sha256: str
    duration_ms: float
    result_size: int
    isolation: str
    sandbox_layers: tuple[str, ...]
    prev_hash: str
    hash: str

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> AuditEntry:
        """From a stored row in ``COLUMNS`` order."""
        return cls(
            int(row[0]), float(row[1]), row[2], row[3], row[4], row[5],
            tuple(orjson.loads(row[6])), row[7], row[8], row[9], row[10],
            tuple(orjson.loads(row[11])), row[12], row[13], float(row[14]), int(row[15]),
            row[16], tuple(orjson.loads(row[17])), row[18], row[19],
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Query filters; every given field must match (``outcome`` may list several)."""

    tool: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    outcome: str | tuple[str, ...] | None = None
    since: float | None = None
    """Unix time, inclusive."""
    until: float | None = None
    """Unix time, exclusive."""

    def where(self, placeholder: str) -> tuple[str, list[Any]]:
        """A SQL ``WHERE`` clause (or ``""``) and its parameters, for ``?`` or ``%s`` drivers."""
        parts: list[str] = []
        params: list[Any] = []
        for column in ("tool", "user_id", "session_id"):
            value = getattr(self, column)
            if value is not None:
                parts.append(f"{column} = {placeholder}")
                params.append(value)
        if self.outcome is not None:
            outcomes = (self.outcome,) if isinstance(self.outcome, str) else tuple(self.outcome)
            parts.append(f"outcome IN ({', '.join([placeholder] * len(outcomes))})")
            params.extend(outcomes)
        if self.since is not None:
            parts.append(f"ts >= {placeholder}")
            params.append(float(self.since))
        if self.until is not None:
            parts.append(f"ts < {placeholder}")
            params.append(float(self.until))
        return (" WHERE " + " AND ".join(parts) if parts else ""), params


class _Flush:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()
_LIVE_LOGS: weakref.WeakSet[AuditLog] = weakref.WeakSet()


def _reset_after_fork() -> None:
    # A forked child inherits the queue but not the writer thread; give each log a fresh writer
    # and drop the parent's connections (they must not be used from two processes).
    for audit_log in list(_LIVE_LOGS):
        audit_log._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


class AuditLog(abc.ABC):
    """Append-only, hash-chained record of every decision; see the module docstring."""

    def __init__(
        self,
        *,
        redaction: RedactionConfig | Redactor | None = None,
        max_batch: int = 2000,
        retry_max_delay_s: float = 2.0,
        max_pending: int | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        if max_pending is not None and max_pending < 1:
            raise ValueError("max_pending must be >= 1 (or None for no bound)")
        if not isinstance(redaction, Redactor):
            redaction = Redactor(redaction or RedactionConfig())
        self.redactor = redaction
        self.max_batch = max_batch
        self.retry_max_delay_s = retry_max_delay_s
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.max_pending = max_pending
        self._stalled = False
        self._handed = 0
        self.record: Callable[[CallRecord], None] = (
            self._queue.put if max_pending is None else self._record_bounded
        )
        """Hand a record to the writer: the call path. Without ``max_pending`` it never blocks;
        with it, a caller that outruns the database waits until the backlog is half drained."""
        self._closed = False
        self._close_lock = threading.Lock()
        self._resumed = threading.Event()
        self._resumed.set()
        self._json_cache: dict[frozenset[str] | tuple[str, ...], str] = {}
        self.written = 0
        """Rows committed by this process's writer."""
        self._thread = self._start_writer()
        atexit.register(self.close)
        _LIVE_LOGS.add(self)

    def _record_bounded(self, record: CallRecord) -> None:
        # Back-pressure bounds what a SIGKILL can lose to ``max_pending`` records (plus the open
        # batch). The wait is bounded too: while the database is unreachable, calls go on after
        # ``retry_max_delay_s`` and records wait in memory as without a bound.
        # Once one wait timed out (writer stalled), later calls do not wait again until the
        # backlog has drained: a stalled database costs one bounded wait, not one per call.
        self._queue.put(record)
        self._handed += 1  # approximate under threads; a bound, not an account
        limit = self.max_pending
        if limit is None or self._closed:
            return
        # Pending = handed over but not committed: the queue *and* the writer's open batch.
        pending = self._handed - self.written
        low = limit // 2
        if self._stalled:
            if pending <= low:
                self._stalled = False
            return
        if pending > limit:
            deadline = time.monotonic() + max(self.retry_max_delay_s, 1.0)
            while self._handed - self.written > low and self._thread.is_alive():
                if time.monotonic() >= deadline:
                    self._stalled = True
                    log.warning("audit writer is behind by %d records; not waiting", pending)
                    return
                time.sleep(0.0005)

    # --- backend hooks ----------------------------------------------------------------------

    @abc.abstractmethod
    def _append(self, rows: list[list[Any]]) -> None:
        """Assign ``seq``, ``prev_hash`` and ``hash`` and insert ``rows`` in one transaction that
        serialises with every other writer of the same log (so the chain stays one chain)."""

    @abc.abstractmethod
    def _select(
        self, flt: AuditFilter, limit: int | None, descending: bool
    ) -> Iterator[Sequence[Any]]:
        """Stored rows in ``COLUMNS`` order."""

    @abc.abstractmethod
    def _summary(self, flt: AuditFilter) -> dict[str, int]: ...

    @abc.abstractmethod
    def _close_backend(self) -> None: ...

    @abc.abstractmethod
    def _forget_connections(self) -> None:
        """Drop (without closing) connections inherited across ``fork``."""

    # --- the call path ----------------------------------------------------------------------

    def observer(self) -> AuditObserver:
        """A ``CallObserver`` that feeds this log; hand it to the manager."""
        return AuditObserver(self)

    # --- writer -----------------------------------------------------------------------------

    def _start_writer(self) -> threading.Thread:
        thread = threading.Thread(
            target=self._writer_loop, name=f"tamma-audit-{type(self).__name__}", daemon=True
        )
        thread.start()
        return thread

    def _after_fork_in_child(self) -> None:
        # Records still queued belong to the parent, which writes them; the queue object stays
        # (observers hold its bound ``put``), emptied of the parent's items.
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._close_lock = threading.Lock()
        self._forget_connections()
        if not self._closed:
            self._thread = self._start_writer()

    def _writer_loop(self) -> None:
        q = self._queue
        while True:
            item = q.get()
            self._resumed.wait()
            records: list[CallRecord] = []
            flushes: list[_Flush] = []
            stop = False
            while True:
                if isinstance(item, CallRecord):
                    records.append(item)
                elif isinstance(item, _Flush):
                    flushes.append(item)
                elif item is _STOP:
                    stop = True
                if len(records) >= self.max_batch:
                    break
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    break
            if records:
                self._write_batch(records, final=stop)
            for flush in flushes:
                flush.done.set()
            if stop:
                return

    def _write_batch(self, records: list[CallRecord], *, final: bool) -> None:
        rows: list[list[Any]] = []
        for i, record in enumerate(records, 1):
            try:
                rows.append(self.to_row(record))
            except Exception:  # a malformed record must not cost the rest of the batch
                log.exception("audit: could not convert record %r", getattr(record, "call_id", "?"))
            if not i % _YIELD_EVERY:
                # Hand the GIL back now and then: a caller waiting for it would otherwise wait up
                # to the interpreter's switch interval (5 ms) while a big batch is converted.
                time.sleep(0)
        delay = 0.05
        attempts = 0
        while True:
            try:
                self._append(rows)
                self.written += len(rows)
                return
            except Exception as exc:
                attempts += 1
                if (self._closed or final) and attempts >= 5:
                    self._spill(rows, exc)
                    return
                log.warning(
                    "audit: writing %d rows failed (%s); retrying in %.2fs",
                    len(rows), exc, delay,
                    extra={"audit_rows": len(rows), "attempt": attempts},
                )  # fmt: skip
                time.sleep(delay)
                delay = min(delay * 2, self.retry_max_delay_s)

    def _spill(self, rows: list[list[Any]], exc: Exception) -> None:
        log.error("audit: %d rows could not be written (%s); they follow as JSON", len(rows), exc)
        for row in rows:
            fields = dict(zip(COLUMNS, row, strict=True))
            log.error("audit row %s", orjson.dumps(fields).decode(), extra={"audit_row": fields})

    def to_row(self, record: CallRecord) -> list[Any]:
        """The stored columns of one record in ``COLUMNS`` order; ``seq``, ``prev_hash`` and
        ``hash`` are filled by ``chain`` inside the writing transaction."""
        ctx: CallerContext = record.context
        raw = record.arguments if isinstance(record.arguments, str) else str(record.arguments)
        return [
            0,
            _finite(record.timestamp),
            _clean(record.call_id),
            _clean(record.tool),
            _clean(ctx.user_id),
            None if ctx.session_id is None else _clean(ctx.session_id),
            self._json_list(ctx.roles, sort=True) if ctx.roles else "[]",
            str(record.outcome),
            None if record.rule is None else _clean(record.rule),
            None if record.error_code is None else _clean(record.error_code),
            None if record.approver is None else _clean(record.approver),
            orjson.dumps(list(record.repairs)).decode() if record.repairs else "[]",
            self.redactor.preview(raw),
            arguments_digest(raw),
            _finite(record.duration_ms),
            int(record.result_size),
            str(record.isolation),
            self._json_list(record.sandbox_layers) if record.sandbox_layers else "[]",
            "",
            "",
        ]

    def _json_list(self, items: frozenset[str] | tuple[str, ...], *, sort: bool = False) -> str:
        # Roles and sandbox layers repeat from call to call: encode each set once.
        cache = self._json_cache
        text = cache.get(items)
        if text is None:
            if len(cache) >= 4096:
                cache.clear()
            values = sorted(items) if sort else list(items)
            text = cache[items] = orjson.dumps([_clean(v) for v in values]).decode()
        return text

    @staticmethod
    def chain(rows: list[list[Any]], last_seq: int, last_hash: str) -> None:
        """Fill ``seq``, ``prev_hash`` and ``hash`` of ``rows``, following the stored last row."""
        seq, prev = last_seq, last_hash
        for row in rows:
            seq += 1
            row[0] = seq
            row[18] = prev
            prev = row[19] = chain_hash(prev, row)
            if not seq % _YIELD_EVERY:
                time.sleep(0)

    # --- lifecycle --------------------------------------------------------------------------

    def pause(self) -> None:
        """Stop writing (records keep queueing in memory, none is dropped) until ``resume()``,
        e.g. while the database file is backed up or compacted."""
        self._resumed.clear()

    def resume(self) -> None:
        self._resumed.set()

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every record handed over before this call is committed (True if so).

        After ``close()``, records handed over late cannot be written any more: they are logged
        at ERROR level as JSON (never silently dropped) and ``flush()`` returns False."""
        if self._closed or not self._thread.is_alive():
            return self._spill_late() == 0 and self._closed
        marker = _Flush()
        self._queue.put(marker)
        return marker.done.wait(timeout)

    def close(self, timeout: float | None = 60.0) -> None:
        """Write everything pending, stop the writer and close connections. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self.close)
        self._resumed.set()  # a paused log still writes everything pending when closed
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)
        self._close_backend()
        # Observers may still hand records to a closed log; at exit they go to the error log.
        atexit.register(self._spill_late)

    def _spill_late(self) -> int:
        records: list[CallRecord] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, CallRecord):
                records.append(item)
        if records:
            rows = []
            for record in records:
                with contextlib.suppress(Exception):
                    rows.append(self.to_row(record))
            self._spill(rows, RuntimeError(f"{self!r} was closed before they were handed over"))
        return len(records)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- query API --------------------------------------------------------------------------

    def query(
        self,
        *,
        tool: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        outcome: str | Iterable[str] | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
        newest_first: bool = False,
        flush: bool = True,
    ) -> list[AuditEntry]:
        """Stored rows matching every given filter, oldest first unless ``newest_first``.

        ``flush`` first waits for this process's pending records, so a query sees them."""
        return list(
            self.iter_entries(
                _make_filter(tool, user_id, session_id, outcome, since, until),
                limit=limit, newest_first=newest_first, flush=flush,
            )
        )  # fmt: skip

    def iter_entries(
        self,
        flt: AuditFilter | None = None,
        *,
        limit: int | None = None,
        newest_first: bool = False,
        flush: bool = True,
    ) -> Iterator[AuditEntry]:
        if flush:
            self.flush()
        for row in self._select(flt or AuditFilter(), limit, newest_first):
            yield AuditEntry.from_row(row)

    def export_jsonl(self, dest: str | os.PathLike[str] | IO[bytes], **filters: Any) -> int:
        """Write matching rows as JSON lines (all columns, hashes included); returns the count."""
        flt = _make_filter(**filters)
        if isinstance(dest, str | os.PathLike):
            with Path(dest).open("wb") as fh:
                return self._export(fh, flt)
        return self._export(dest, flt)

    def _export(self, fh: IO[bytes], flt: AuditFilter) -> int:
        n = 0
        for entry in self.iter_entries(flt):
            fh.write(orjson.dumps(entry.to_dict()) + b"\n")
            n += 1
        return n

    def summary(self, **filters: Any) -> dict[str, int]:
        """Row counts by outcome (e.g. for a demo's closing line), filters as in ``query``."""
        self.flush()
        return dict(sorted(self._summary(_make_filter(**filters)).items()))

    def count(self, **filters: Any) -> int:
        return sum(self.summary(**filters).values())

    def verify(self) -> ChainReport:
        """Re-hash every row in order; the report names the first row whose link is broken."""
        from tamma_tools.observability.hashchain import verify_chain

        self.flush()
        return verify_chain(self._select(AuditFilter(), None, False))


class AuditObserver:
    """The ``CallObserver`` that feeds an ``AuditLog``: one queue hand-off per decision."""

    __slots__ = ("audit_log", "on_call_finished")
    observes_start: ClassVar[bool] = False

    def __init__(self, audit_log: AuditLog) -> None:
        self.audit_log = audit_log
        # The bound ``put`` itself: no Python frame on the call path.
        self.on_call_finished: Callable[[CallRecord], None] = audit_log.record

    def on_call_started(self, call_id: str, tool: str, context: CallerContext) -> None:
        return None


def _make_filter(
    tool: str | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    outcome: str | Iterable[str] | None = None,
    since: float | None = None,
    until: float | None = None,
) -> AuditFilter:
    outcomes: str | tuple[str, ...] | None
    outcomes = outcome if outcome is None or isinstance(outcome, str) else tuple(outcome)
    return AuditFilter(tool, user_id, session_id, outcomes, since, until)


def _finite(value: object) -> float:
    """A float the database stores as given (SQLite turns NaN into NULL; NaN and inf would also
    hash like NULL), so non-finite values are stored as -1.0."""
    number = float(value)  # type: ignore[arg-type]
    return number if math.isfinite(number) else -1.0


def _clean(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    if not text.isprintable():
        text = escape_control(text)
    if len(text) > _MAX_NAME_CHARS:
        text = text[:_MAX_NAME_CHARS] + "…"
    return text
