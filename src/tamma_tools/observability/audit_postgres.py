"""The shared audit backend: PostgreSQL through psycopg 3, for several processes or machines.

One deployment, one chain: every writer appends inside a transaction that first takes a
transaction-level advisory lock (``pg_advisory_xact_lock``) keyed on the table name, then reads the
last row's ``seq`` and ``hash`` and inserts its batch after it. The lock serialises appends across
all processes (it is released by ``COMMIT``/``ROLLBACK``, so a crashed writer never leaves it held),
while readers are never blocked (MVCC). A plain ``SERIALIZABLE`` transaction would also keep the
chain single but makes concurrent writers fail and retry; the lock makes them queue instead.
The table and its indexes are created on first use, under the same lock so that processes
starting together do not race on ``CREATE TABLE``.

Requires the ``postgres`` extra: ``pip install 'tamma-tools[postgres]'``.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from tamma_tools.errors import ConfigError
from tamma_tools.observability.audit import COLUMNS, AuditFilter, AuditLog
from tamma_tools.observability.hashchain import GENESIS_HASH
from tamma_tools.observability.redaction import RedactionConfig, Redactor

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresAuditLog"]

_TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

PSYCOPG_MISSING = (
    "PostgresAuditLog needs psycopg 3; install it with: pip install 'tamma-tools[postgres]'"
)


def _schema(table: str) -> list[str]:
    return [
        f"""
        CREATE TABLE IF NOT EXISTS {table} (
            seq            BIGINT PRIMARY KEY,
            ts             DOUBLE PRECISION NOT NULL,
            call_id        TEXT NOT NULL,
            tool           TEXT NOT NULL,
            user_id        TEXT NOT NULL,
            session_id     TEXT,
            roles          TEXT NOT NULL,
            outcome        TEXT NOT NULL,
            rule           TEXT,
            error_code     TEXT,
            approver       TEXT,
            repairs        TEXT NOT NULL,
            args_preview   TEXT NOT NULL,
            args_sha256    TEXT NOT NULL,
            duration_ms    DOUBLE PRECISION NOT NULL,
            result_size    BIGINT NOT NULL,
            isolation      TEXT NOT NULL,
            sandbox_layers TEXT NOT NULL,
            prev_hash      TEXT NOT NULL,
            hash           TEXT NOT NULL
        )""",
        f"CREATE INDEX IF NOT EXISTS {table}_ts ON {table} (ts)",
        f"CREATE INDEX IF NOT EXISTS {table}_tool_ts ON {table} (tool, ts)",
        f"CREATE INDEX IF NOT EXISTS {table}_user_ts ON {table} (user_id, ts)",
    ]


class PostgresAuditLog(AuditLog):
    """Audit log in a PostgreSQL table shared by every process of a deployment."""

    def __init__(
        self,
        dsn: str,
        *,
        table: str = "tamma_audit",
        redaction: RedactionConfig | Redactor | None = None,
        max_batch: int = 2000,
        max_pending: int | None = None,
        connect_timeout_s: float = 10.0,
    ) -> None:
        """``dsn``: a libpq connection string or URL (``postgresql://user@host/db``)."""
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise ConfigError(PSYCOPG_MISSING) from exc
        if not _TABLE_NAME.match(table):
            raise ConfigError(
                f"table name {table!r} is not a plain lower-case SQL identifier "
                "(letters, digits, underscore; at most 63 characters)"
            )
        self.dsn = dsn
        self.table = table
        self.connect_timeout_s = connect_timeout_s
        # A stable 64-bit advisory-lock key per table: all writers of one table share it.
        digest = hashlib.sha256(f"tamma_tools.audit:{table}".encode()).digest()
        self.lock_key = int.from_bytes(digest[:8], "big", signed=True)
        cols = ", ".join(COLUMNS)
        self._insert = f"INSERT INTO {table} ({cols}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
        self._writer: psycopg.Connection[Any] | None = None
        self._reader_conn: psycopg.Connection[Any] | None = None
        self._reader_lock = threading.Lock()
        self._schema_ready = False
        super().__init__(redaction=redaction, max_batch=max_batch, max_pending=max_pending)

    # --- connections ------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg

        conn = psycopg.connect(
            self.dsn, autocommit=True, connect_timeout=max(1, int(self.connect_timeout_s))
        )
        if not self._schema_ready:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (self.lock_key,))
                for statement in _schema(self.table):
                    conn.execute(statement)  # type: ignore[arg-type]  # table name validated
            self._schema_ready = True
        return conn

    # --- backend hooks ----------------------------------------------------------------------

    def _append(self, rows: list[list[Any]]) -> None:
        if self._writer is None or self._writer.closed:
            self._writer = self._connect()
        conn = self._writer
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (self.lock_key,))
                cur.execute(
                    f"SELECT seq, hash FROM {self.table} ORDER BY seq DESC LIMIT 1"  # type: ignore[arg-type]
                )
                last = cur.fetchone()
                self.chain(rows, *(last if last else (0, GENESIS_HASH)))
                cur.executemany(self._insert, rows)  # type: ignore[arg-type]
        except Exception:
            # A broken connection is replaced on the retry.
            if conn.broken or conn.closed:
                self._writer = None
            raise

    def _reader(self) -> psycopg.Connection[Any]:
        if self._reader_conn is None or self._reader_conn.closed:
            self._reader_conn = self._connect()
        return self._reader_conn

    def _select(
        self, flt: AuditFilter, limit: int | None, descending: bool
    ) -> Iterator[Sequence[Any]]:
        where, params = flt.where("%s")
        sql = f"SELECT {', '.join(COLUMNS)} FROM {self.table}{where} ORDER BY seq"
        if descending:
            sql += " DESC"
        if limit is not None:
            sql += " LIMIT %s"
            params.append(int(limit))
        # A dedicated connection per query: a server-side cursor streams big exports, and
        # several threads may query at once.
        import psycopg

        with psycopg.connect(self.dsn, connect_timeout=max(1, int(self.connect_timeout_s))) as conn:
            if not self._schema_ready:
                self._reader()
            with conn.cursor(name="tamma_audit_export") as cur:
                cur.itersize = 2000
                cur.execute(sql, params)  # type: ignore[arg-type]
                yield from cur

    def _summary(self, flt: AuditFilter) -> dict[str, int]:
        where, params = flt.where("%s")
        sql = f"SELECT outcome, COUNT(*) FROM {self.table}{where} GROUP BY outcome"
        with self._reader_lock:
            rows = self._reader().execute(sql, params).fetchall()  # type: ignore[arg-type]
        return {outcome: int(n) for outcome, n in rows}

    def _close_backend(self) -> None:
        for conn in (self._writer, self._reader_conn):
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
        self._writer = self._reader_conn = None

    def _forget_connections(self) -> None:
        # The parent's sockets must not be shared; drop them without sending a terminate.
        self._writer = self._reader_conn = None
        self._reader_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PostgresAuditLog(table={self.table!r})"
