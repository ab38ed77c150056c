"""The embedded audit backend: one SQLite file in WAL mode, created on first use.

Several processes may write the same file: each batch runs in ``BEGIN IMMEDIATE`` (SQLite's
write lock, taken before reading), reads the last row's ``seq`` and ``hash`` inside that
transaction and appends after it, so the rows of all writers form one verifiable chain. Readers
never block writers (WAL). A busy timeout makes a writer wait for the lock instead of failing;
if it still fails, the base class retries the batch.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from tamma_tools.observability.audit import COLUMNS, AuditFilter, AuditLog
from tamma_tools.observability.hashchain import GENESIS_HASH
from tamma_tools.observability.redaction import RedactionConfig, Redactor

__all__ = ["SQLiteAuditLog"]

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq            INTEGER PRIMARY KEY,
    ts             REAL    NOT NULL,
    call_id        TEXT    NOT NULL,
    tool           TEXT    NOT NULL,
    user_id        TEXT    NOT NULL,
    session_id     TEXT,
    roles          TEXT    NOT NULL,
    outcome        TEXT    NOT NULL,
    rule           TEXT,
    error_code     TEXT,
    approver       TEXT,
    repairs        TEXT    NOT NULL,
    args_preview   TEXT    NOT NULL,
    args_sha256    TEXT    NOT NULL,
    duration_ms    REAL    NOT NULL,
    result_size    INTEGER NOT NULL,
    isolation      TEXT    NOT NULL,
    sandbox_layers TEXT    NOT NULL,
    prev_hash      TEXT    NOT NULL,
    hash           TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_ts ON audit (ts);
CREATE INDEX IF NOT EXISTS audit_tool_ts ON audit (tool, ts);
"""
# Two indexes only: each costs every insert, and a (user_id, ts) index measured +40-90 % per
# row (many callers means inserts scattered over the index). Caller and outcome queries use the
# time index when given a range and scan otherwise; PostgreSQL, for big shared logs, has all three.

_INSERT = f"INSERT INTO audit ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


class SQLiteAuditLog(AuditLog):
    """Audit log in a local SQLite file (the default backend)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Synchronous = "NORMAL",
        busy_timeout_s: float = 30.0,
        redaction: RedactionConfig | Redactor | None = None,
        max_batch: int = 2000,
        max_pending: int | None = None,
    ) -> None:
        if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, got {synchronous!r}")
        self.path = Path(path)
        self.synchronous = synchronous
        self.busy_timeout_s = busy_timeout_s
        self._writer: sqlite3.Connection | None = None
        self._readers = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._schema_ready = False
        super().__init__(redaction=redaction, max_batch=max_batch, max_pending=max_pending)

    # --- connections ------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # The log holds call previews: readable by the owner only.
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
        if not self._schema_ready:
            conn.executescript(_SCHEMA)
            self._schema_ready = True
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._readers, "conn", None)
        if conn is None:
            conn = self._connect()
            self._readers.conn = conn
            with self._readers_lock:
                self._reader_conns.append(conn)
        return conn

    # --- backend hooks ----------------------------------------------------------------------

    def _append(self, rows: list[list[Any]]) -> None:
        if self._writer is None:
            self._writer = self._connect()
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            last = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            self.chain(rows, *(last if last else (0, GENESIS_HASH)))
            conn.executemany(_INSERT, rows)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _select(
        self, flt: AuditFilter, limit: int | None, descending: bool
    ) -> Iterator[Sequence[Any]]:
        where, params = flt.where("?")
        sql = f"SELECT {', '.join(COLUMNS)} FROM audit{where} ORDER BY seq"
        if descending:
            sql += " DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        cursor = self._reader().execute(sql, params)
        try:
            while batch := cursor.fetchmany(1000):
                yield from batch
        finally:
            cursor.close()

    def _summary(self, flt: AuditFilter) -> dict[str, int]:
        where, params = flt.where("?")
        sql = f"SELECT outcome, COUNT(*) FROM audit{where} GROUP BY outcome"
        return {outcome: n for outcome, n in self._reader().execute(sql, params)}

    def _close_backend(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        with self._readers_lock:
            for conn in self._reader_conns:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._reader_conns.clear()
        self._readers = threading.local()

    def _forget_connections(self) -> None:
        self._writer = None
        self._readers = threading.local()
        self._reader_conns = []
        self._readers_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SQLiteAuditLog({str(self.path)!r})"
