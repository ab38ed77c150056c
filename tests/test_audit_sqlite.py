"""The embedded audit log: one row per decision, tamper evidence, concurrency, crash bounds."""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tamma_tools.events import CallRecord
from tamma_tools.observability import AuditLog, SQLiteAuditLog
from tamma_tools.observability.redaction import REDACTED, arguments_digest
from tamma_tools.types import CallerContext

REPO_SRC = str(Path(__file__).resolve().parents[1] / "src")

# One decision of each kind the issue lists, with the fields that kind carries.
KINDS: list[dict[str, Any]] = [
    {"outcome": "executed", "result_size": 42},
    {"outcome": "failed", "error_code": "tool_crashed"},
    {"outcome": "denied", "rule": "path.outside_roots", "error_code": "path_denied"},
    {"outcome": "rate_limited", "rule": "rate_limit", "error_code": "rate_limited"},
    {"outcome": "timed_out", "error_code": "tool_timeout"},
    {"outcome": "resource_limit", "error_code": "memory_limit"},
    {"outcome": "pending_approval", "rule": "approval", "error_code": "approval_pending"},
    {"outcome": "approved", "approver": "alice@ops"},
    {"outcome": "rejected", "rule": "approval", "error_code": "call_rejected"},
    {"outcome": "repaired", "repairs": ("trailing_comma", "single_quotes")},
    {"outcome": "invalid_arguments", "error_code": "invalid_arguments"},
    {"outcome": "unknown_tool", "error_code": "unknown_tool"},
]


def mixed_records(
    n: int = 1000, *, prefix: str = "call", t0: float = 1_700_000_000.0
) -> list[CallRecord]:
    """``n`` decisions cycling through every kind, callers, tools, isolation and secrets."""
    records = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        ctx = CallerContext(
            user_id=f"user{i % 7}",
            session_id=None if i % 5 == 0 else f"s{i % 3}",
            roles=frozenset({"analyst", "ops"} if i % 2 else {"viewer"}),
        )
        args = {"path": f"/data/{i}.csv", "n": i}
        if i % 4 == 0:
            args["api_key"] = f"sk-live-{i:020d}"
        records.append(
            CallRecord(
                call_id=f"{prefix}_{i}",
                tool=("read_file", "http_request", "run_report")[i % 3],
                context=ctx,
                arguments=json.dumps(args),
                timestamp=t0 + i * 0.5,
                duration_ms=0.25 + i,
                isolation="process" if i % 2 else "in_process",
                sandbox_layers=("rlimits", "netns", "landlock", "seccomp") if i % 2 else (),
                **kind,
            )
        )
    return records


def assert_rows_match(log: AuditLog, records: list[CallRecord]) -> None:
    rows = log.query()
    assert len(rows) == len(records)
    for seq, (row, rec) in enumerate(zip(rows, records, strict=True), start=1):
        assert row.seq == seq
        assert (row.call_id, row.tool, row.outcome) == (rec.call_id, rec.tool, rec.outcome)
        assert row.ts == rec.timestamp
        assert (row.user_id, row.session_id) == (rec.context.user_id, rec.context.session_id)
        assert row.roles == tuple(sorted(rec.context.roles))
        assert (row.rule, row.error_code, row.approver) == (rec.rule, rec.error_code, rec.approver)
        assert row.repairs == rec.repairs
        assert row.duration_ms == rec.duration_ms
        assert row.result_size == rec.result_size
        assert row.isolation == rec.isolation
        assert row.sandbox_layers == rec.sandbox_layers
        assert row.args_sha256 == arguments_digest(rec.arguments)
        if "sk-live-" in rec.arguments:
            assert "sk-live-" not in row.args_preview
            assert REDACTED in row.args_preview
        else:
            assert row.args_preview == rec.arguments


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "logs" / "audit.db"


def test_mixed_run_leaves_one_row_per_decision_with_its_fields(db: Path) -> None:
    records = mixed_records(1000)
    with SQLiteAuditLog(db) as log:
        observer = log.observer()
        for rec in records:
            observer.on_call_finished(rec)
        assert_rows_match(log, records)
        assert log.summary() == {
            k["outcome"]: 1000 // 12 + (i < 1000 % 12) for i, k in enumerate(KINDS)
        }
        assert log.verify().ok


def test_verify_reports_the_first_edited_row(db: Path) -> None:
    with SQLiteAuditLog(db) as log:
        for rec in mixed_records(1000):
            log.record(rec)
        report = log.verify()
        assert report.ok and report.checked == 1000 and report.head_seq == 1000
    with sqlite3.connect(db) as conn:  # an insider rewrites history: a denial becomes a success
        conn.execute("UPDATE audit SET outcome = 'executed', rule = NULL WHERE seq = 615")
    with SQLiteAuditLog(db) as log:
        report = log.verify()
        assert not report.ok
        assert report.first_bad_seq == 615
        assert report.checked == 614
        assert "content" in (report.reason or "")


def test_verify_reports_a_deleted_row(db: Path) -> None:
    with SQLiteAuditLog(db) as log:
        for rec in mixed_records(50):
            log.record(rec)
        log.flush()
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM audit WHERE seq = 20")
    with SQLiteAuditLog(db) as log:
        report = log.verify()
        assert (report.ok, report.first_bad_seq) == (False, 21)


def test_rows_appended_after_reopening_continue_the_chain(db: Path) -> None:
    first, second = mixed_records(30, prefix="a"), mixed_records(30, prefix="b")
    with SQLiteAuditLog(db) as log:
        for rec in first:
            log.record(rec)
    with SQLiteAuditLog(db) as log:
        for rec in second:
            log.record(rec)
        assert_rows_match(log, first + second)
        assert log.verify().ok


def test_log_file_is_created_on_first_use_readable_by_owner_only(db: Path) -> None:
    with SQLiteAuditLog(db) as log:
        assert not db.exists()
        log.record(mixed_records(1)[0])
        assert log.flush()
        assert db.exists()
        assert stat.S_IMODE(db.stat().st_mode) == 0o600
        assert log.written == 1


WRITER = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, {src!r})
    from tamma_tools.events import CallRecord
    from tamma_tools.observability import SQLiteAuditLog
    from tamma_tools.types import CallerContext
    path, prefix, n, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    log = SQLiteAuditLog(path, max_batch=50)
    ctx = CallerContext(user_id=prefix)
    def rec(i):
        return CallRecord(call_id=f"{{prefix}}_{{i}}", tool="t", outcome="executed", context=ctx,
                          arguments=json.dumps({{"i": i}}), timestamp=time.time())
    print("ready", flush=True)
    sys.stdin.readline()  # start line: both writers go at once
    for i in range(n):
        log.record(rec(i))
        if mode == "trickle" and i % 50 == 0:
            time.sleep(0.005)  # a busy service: decisions keep coming while the other writes
    if mode == "flush-then-spin":
        log.flush()
        print("flushed", flush=True)
        i = n
        while True:  # keep handing records over until killed
            log.record(rec(i))
            i += 1
            if i % 200 == 0:
                time.sleep(0.0005)
    if mode == "close":
        log.close()
    # mode "exit": leave without close(); atexit must write what is pending
    """
)


def spawn_writer(tmp_path: Path, db: Path, prefix: str, n: int, mode: str) -> subprocess.Popen[str]:
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(src=REPO_SRC))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(db), prefix, str(n), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def reap(proc: subprocess.Popen[str], timeout: float = 60) -> int:
    """Wait for a writer and close its pipes (no ResourceWarning left behind)."""
    try:
        return proc.wait(timeout=timeout)
    finally:
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def test_two_processes_writing_one_log_lose_nothing_and_share_one_chain(
    tmp_path: Path, db: Path
) -> None:
    n = 3000
    procs = [spawn_writer(tmp_path, db, p, n, "trickle") for p in ("alpha", "beta")]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        assert reap(proc) == 0
    with SQLiteAuditLog(db) as log:
        report = log.verify()
        assert report.ok and report.checked == 2 * n
        for prefix in ("alpha", "beta"):
            rows = log.query(user_id=prefix)
            assert [r.call_id for r in rows] == [f"{prefix}_{i}" for i in range(n)]
        # The writers really ran at once: their batches interleave in the one chain (A, B, A...).
        users = [r.user_id for r in log.query()]
        assert sum(1 for a, b in itertools.pairwise(users) if a != b) >= 2


def test_interpreter_exit_writes_everything_pending(tmp_path: Path, db: Path) -> None:
    proc = spawn_writer(tmp_path, db, "exiting", 5000, "exit")
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    assert reap(proc) == 0
    with SQLiteAuditLog(db) as log:
        assert log.count() == 5000
        assert log.verify().ok


def test_sigkill_loses_at_most_what_was_handed_over_after_the_last_flush(
    tmp_path: Path, db: Path
) -> None:
    """The documented bound: everything before the last ``flush()`` survives; after it, only
    whole batches are on disk (no torn row, the chain verifies) and rows form a gap-free prefix."""
    proc = spawn_writer(tmp_path, db, "victim", 2000, "flush-then-spin")
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "flushed"
    time.sleep(0.2)  # let it commit some more batches, then kill mid-stream
    proc.send_signal(signal.SIGKILL)
    reap(proc, 10)
    with SQLiteAuditLog(db) as log:
        report = log.verify()
        assert report.ok
        ids = [r.call_id for r in log.query()]
        assert len(ids) >= 2000
        assert ids == [f"victim_{i}" for i in range(len(ids))]


def test_query_filters_and_jsonl_export(db: Path, tmp_path: Path) -> None:
    records = mixed_records(240)
    t0 = records[0].timestamp
    with SQLiteAuditLog(db) as log:
        for rec in records:
            log.record(rec)
        by_tool = log.query(tool="read_file")
        assert [r.call_id for r in by_tool] == [r.call_id for r in records if r.tool == "read_file"]
        denied = log.query(outcome="denied", user_id="user3")
        assert [r.call_id for r in denied] == [
            r.call_id for r in records if r.outcome == "denied" and r.context.user_id == "user3"
        ]
        several = log.query(outcome=["timed_out", "resource_limit"])
        assert [r.call_id for r in several] == [
            r.call_id for r in records if r.outcome in ("timed_out", "resource_limit")
        ]
        in_session = log.query(outcome=["timed_out", "resource_limit"], session_id="s2")
        assert [r.call_id for r in in_session] == [
            r.call_id
            for r in records
            if r.outcome in ("timed_out", "resource_limit") and r.context.session_id == "s2"
        ]
        assert in_session and len(in_session) < len(several)
        window = log.query(since=t0 + 10, until=t0 + 20)  # 0.5 s apart: rows 20..39
        assert [r.seq for r in window] == list(range(21, 41))
        newest = log.query(limit=3, newest_first=True)
        assert [r.seq for r in newest] == [240, 239, 238]

        out = tmp_path / "export.jsonl"
        assert log.export_jsonl(out, tool="run_report") == 80
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(lines) == 80
        assert {line["tool"] for line in lines} == {"run_report"}
        assert set(lines[0]) >= {
            "seq",
            "ts",
            "call_id",
            "args_preview",
            "args_sha256",
            "prev_hash",
            "hash",
        }
        expected = Counter(r.outcome for r in records if r.tool == "run_report")
        assert log.summary(tool="run_report") == dict(expected)
        assert log.count(tool="run_report") == 80


def test_a_locked_database_delays_the_writer_but_loses_nothing(db: Path) -> None:
    records = mixed_records(300)
    log = SQLiteAuditLog(db, busy_timeout_s=0.05)
    log.record(records[0])
    assert log.flush()
    blocker = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    started = time.perf_counter()
    for rec in records[1:]:
        log.record(rec)  # the call path never waits for the lock
    assert time.perf_counter() - started < 0.5
    assert not log.flush(timeout=0.5)
    threading.Timer(0.3, lambda: blocker.execute("ROLLBACK")).start()
    assert log.flush(timeout=30)
    blocker.close()
    assert_rows_match(log, records)
    log.close()


def test_hostile_tool_names_and_ids_are_stored_escaped_and_capped(db: Path) -> None:
    evil = CallRecord(
        call_id="id\x1b[2J" + "x" * 1000,
        tool="read_file\u202e\x00",
        outcome="unknown_tool",
        context=CallerContext(),
        arguments='{"a": "line1\\nline2\\u0007"}\x1b]0;pwned\x07',
        timestamp=time.time(),
    )
    with SQLiteAuditLog(db) as log:
        log.record(evil)
        (row,) = log.query()
    for text in (row.call_id, row.tool, row.args_preview):
        assert all(ch.isprintable() for ch in text), text
    assert row.tool == "read_file\\u202e\\u0000"
    assert len(row.call_id) <= 260
    assert row.args_sha256 == arguments_digest(evil.arguments)


def test_a_record_that_cannot_be_stored_does_not_cost_its_batch(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = mixed_records(3)
    broken = CallRecord(
        call_id="bad",
        tool="t",
        outcome="executed",
        context=None,  # type: ignore[arg-type]
        arguments="{}",
        timestamp=time.time(),
    )
    with SQLiteAuditLog(db) as log:
        for rec in (good[0], broken, good[1], good[2]):
            log.record(rec)
        assert [r.call_id for r in log.query()] == [r.call_id for r in good]
    assert any("could not convert record" in r.getMessage() for r in caplog.records)


def test_close_is_idempotent_and_flush_after_close_is_harmless(db: Path) -> None:
    log = SQLiteAuditLog(db)
    log.record(mixed_records(1)[0])
    log.close()
    log.close()
    assert log.flush()
    assert log.closed
    with SQLiteAuditLog(db) as again:
        assert again.count() == 1


def test_fork_child_writes_its_own_records_only(db: Path) -> None:
    records = mixed_records(20)
    with SQLiteAuditLog(db) as log:
        log.record(records[0])
        log.flush()
        pid = os.fork()
        if pid == 0:  # child: its own decision, then exit through the normal path
            code = 0
            try:
                log.record(records[1])
                log.close()
            except BaseException:
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        log.record(records[2])
        ids = [r.call_id for r in log.query()]
    assert sorted(ids) == sorted(r.call_id for r in records[:3])


def test_a_paused_writer_keeps_records_queued_until_resumed(db: Path) -> None:
    records = mixed_records(100)
    with SQLiteAuditLog(db) as log:
        log.record(records[0])
        assert log.flush()
        log.pause()  # e.g. while the file is backed up
        for rec in records[1:]:
            log.record(rec)
        assert not log.flush(timeout=0.2)
        assert len(log.query(flush=False)) == 1
        log.resume()
        assert log.flush()
        assert_rows_match(log, records)


def test_closing_a_paused_log_still_writes_everything(db: Path) -> None:
    log = SQLiteAuditLog(db)
    log.pause()
    for rec in mixed_records(50):
        log.record(rec)
    log.close()
    with SQLiteAuditLog(db) as again:
        assert again.count() == 50


def test_records_handed_to_a_closed_log_are_logged_not_dropped(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = SQLiteAuditLog(db)
    log.close()
    late = mixed_records(2, prefix="late")
    for rec in late:
        log.record(rec)
    assert log.flush() is False
    spilled = [r for r in caplog.records if r.getMessage().startswith("audit row ")]
    assert [r.audit_row["call_id"] for r in spilled] == ["late_0", "late_1"]  # type: ignore[attr-defined]
    assert log.flush() is True  # nothing left


def test_non_finite_durations_are_stored_and_do_not_wedge_the_writer(db: Path) -> None:
    records = mixed_records(3)
    records[1].duration_ms = float("nan")
    records[2].timestamp = float("inf")
    with SQLiteAuditLog(db) as log:
        for rec in records:
            log.record(rec)
        rows = log.query()
        assert [r.duration_ms for r in rows][1] == -1.0
        assert rows[2].ts == -1.0
        assert log.verify().ok


def test_an_infinity_written_over_a_null_fails_verification(db: Path) -> None:
    # JSON has no infinity: it would hash like the NULL it replaced. Here SQLite's TEXT affinity
    # turns it into the text 'Inf'; verify_chain() also checks types (see test_audit_hashchain).
    with SQLiteAuditLog(db) as log:
        for rec in mixed_records(10):
            log.record(rec)
        log.flush()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit SET rule = 9e999 WHERE seq = 1")
    with SQLiteAuditLog(db) as log:
        report = log.verify()
        assert (report.ok, report.first_bad_seq) == (False, 1)


def test_max_pending_bounds_the_backlog_a_kill_could_lose(tmp_path: Path) -> None:
    from tamma_tools.observability import SQLiteAuditLog as Log

    log = Log(tmp_path / "bounded.db", max_pending=50)
    try:
        log.pause()  # the writer holds still: the backlog can only grow
        started = time.monotonic()
        for i in range(60):
            log.record(_bounded_record(i))
        waited = time.monotonic() - started
        # Past 50 the caller waited once (bounded) for the stalled writer, then went on.
        assert 0.9 <= waited < 5.0
        log.resume()
        assert log.flush(10)
        assert log.count() == 60
    finally:
        log.close()


def _bounded_record(i: int) -> Any:
    from tamma_tools.events import CallRecord
    from tamma_tools.types import CallerContext

    return CallRecord(f"b{i}", "t", "executed", CallerContext(), "{}", time.time())
