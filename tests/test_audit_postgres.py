"""The PostgreSQL audit backend against a real server started from the system's binaries."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tamma_tools.errors import ConfigError
from tamma_tools.observability import open_audit_log
from tests.support.postgres import PostgresServer, postgres_server
from tests.test_audit_sqlite import REPO_SRC, assert_rows_match, mixed_records, reap

__all__ = ["postgres_server"]  # re-exported fixture


@pytest.fixture
def dsn(postgres_server: PostgresServer) -> str:
    return postgres_server.new_database()


@pytest.fixture
def pg_log(dsn: str) -> Iterator[object]:
    from tamma_tools.observability.audit_postgres import PostgresAuditLog

    log = PostgresAuditLog(dsn)
    yield log
    log.close()


def test_mixed_run_leaves_one_row_per_decision(dsn: str) -> None:
    from tamma_tools.observability.audit_postgres import PostgresAuditLog

    records = mixed_records(1000)
    with PostgresAuditLog(dsn) as log:
        observer = log.observer()
        for rec in records:
            observer.on_call_finished(rec)
        assert_rows_match(log, records)
        report = log.verify()
        assert report.ok and report.checked == 1000
        assert sum(log.summary().values()) == 1000


def test_verify_reports_the_first_edited_row(dsn: str) -> None:
    import psycopg

    from tamma_tools.observability.audit_postgres import PostgresAuditLog

    with PostgresAuditLog(dsn) as log:
        for rec in mixed_records(300):
            log.record(rec)
        assert log.verify().ok
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE tamma_audit SET args_preview = '{}' WHERE seq = 123")
    with PostgresAuditLog(dsn) as log:
        report = log.verify()
        assert (report.ok, report.first_bad_seq, report.checked) == (False, 123, 122)


WRITER = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, {src!r})
    from tamma_tools.events import CallRecord
    from tamma_tools.observability import open_audit_log
    from tamma_tools.types import CallerContext
    dsn, prefix, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    log = open_audit_log(dsn, max_batch=50)
    ctx = CallerContext(user_id=prefix)
    print("ready", flush=True)
    sys.stdin.readline()
    for i in range(n):
        log.record(CallRecord(call_id=f"{{prefix}}_{{i}}", tool="t", outcome="executed",
                              context=ctx, arguments=json.dumps({{"i": i}}), timestamp=time.time()))
        if i % 50 == 0:
            time.sleep(0.005)
    log.close()
    """
)


def test_two_processes_share_one_chain_and_lose_nothing(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    # A URL, as a deployment would configure it; the table does not exist yet, so both
    # processes also race to create it.
    dbname = postgres_server.new_database().rsplit("=", 1)[1]
    url = (
        f"postgresql://{postgres_server.user}@/{dbname}"
        f"?host={postgres_server.sockdir}&port={postgres_server.port}"
    )
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(src=REPO_SRC))
    n = 2000
    procs = []
    for prefix in ("alpha", "beta"):
        proc = subprocess.Popen(
            [sys.executable, str(script), url, prefix, str(n)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        procs.append(proc)
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        assert reap(proc, 120) == 0
    with open_audit_log(url) as log:
        report = log.verify()
        assert report.ok and report.checked == 2 * n
        for prefix in ("alpha", "beta"):
            assert [r.call_id for r in log.query(user_id=prefix)] == [
                f"{prefix}_{i}" for i in range(n)
            ]
        users = [r.user_id for r in log.query()]
        assert sum(1 for a, b in itertools.pairwise(users) if a != b) >= 2


def test_a_dropped_connection_is_replaced_and_nothing_is_lost(
    dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    import psycopg

    from tamma_tools.observability.audit_postgres import PostgresAuditLog

    records = mixed_records(200)
    with PostgresAuditLog(dsn) as log:
        for rec in records[:100]:
            log.record(rec)
        assert log.flush()
        with psycopg.connect(dsn, autocommit=True) as admin:  # e.g. a server restart or failover
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        time.sleep(0.1)
        for rec in records[100:]:
            log.record(rec)
        assert log.flush(timeout=30)
        assert_rows_match(log, records)
        assert log.verify().ok
    assert any("retrying" in r.getMessage() for r in caplog.records)  # the retry path ran


def test_query_filters_and_export(pg_log: object, tmp_path: Path) -> None:
    from tamma_tools.observability.audit_postgres import PostgresAuditLog

    assert isinstance(pg_log, PostgresAuditLog)
    records = mixed_records(120)
    for rec in records:
        pg_log.record(rec)
    got = pg_log.query(tool="http_request", outcome=["denied", "failed", "executed"])
    assert [r.call_id for r in got] == [
        r.call_id
        for r in records
        if r.tool == "http_request" and r.outcome in ("denied", "failed", "executed")
    ]
    t0 = records[0].timestamp
    assert [r.seq for r in pg_log.query(since=t0 + 5, until=t0 + 10)] == list(range(11, 21))
    out = tmp_path / "pg.jsonl"
    assert pg_log.export_jsonl(out, user_id="user2") == sum(
        1 for r in records if r.context.user_id == "user2"
    )


def test_table_names_are_checked(dsn: str) -> None:
    from tamma_tools.observability.audit_postgres import PostgresAuditLog

    with pytest.raises(ConfigError, match="not a plain lower-case SQL identifier"):
        PostgresAuditLog(dsn, table="audit; DROP TABLE users")


@pytest.mark.parametrize("required", [True, False])
def test_missing_binaries_skip_locally_but_fail_in_ci(
    monkeypatch: pytest.MonkeyPatch, required: bool
) -> None:
    import tests.support.postgres as support

    monkeypatch.setattr(support, "REQUIRE_SERVICES", required)
    monkeypatch.setattr(support.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(support.shutil, "which", lambda name: None)
    expected = pytest.fail.Exception if required else pytest.skip.Exception
    with pytest.raises(expected, match="binaries"):
        support.start_postgres()
