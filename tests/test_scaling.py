"""Many processes, one policy: a shared Redis limit and one PostgreSQL audit chain across writers.

A small run of ``benchmarks/load_test.py`` (4 worker processes x 200 calls, 100 calls/min allowed
for the caller they share, one worker SIGKILLed halfway) against real servers started from the
system's binaries; skipped without them, failed in CI (``TAMMA_TOOLS_REQUIRE_SERVICES=1``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tamma_tools.events import CallRecord
from tamma_tools.observability import open_audit_log
from tamma_tools.types import CallerContext
from tests.support.postgres import PostgresServer, postgres_server
from tests.support.services import redis_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from load_test import LoadResult, postgres_url, run_load

__all__ = ["postgres_server"]  # re-exported fixture

PROCESSES, CALLS, LIMIT = 4, 200, 100


@pytest.fixture(scope="module")
def audit_url(postgres_server: PostgresServer) -> str:
    return postgres_url(postgres_server)


@pytest.fixture(scope="module")
def load(audit_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadResult]:
    with redis_server() as redis:
        yield run_load(
            redis.url, audit_url, processes=PROCESSES, calls=CALLS, limit=LIMIT, kill=True,
            workdir=tmp_path_factory.mktemp("load"),
        )  # fmt: skip


def test_exactly_the_limit_is_admitted_across_processes(load: LoadResult) -> None:
    assert load.redis_admitted == LIMIT
    returned = sum(w.admitted for w in load.workers)
    # The killed worker may have been admitted for the one call it had in flight.
    assert LIMIT - 1 <= returned <= LIMIT
    # Each process alone tries the limit's worth of calls (CALLS // 2 == LIMIT): per-process
    # counters would have admitted PROCESSES times the limit.
    assert CALLS // 2 == LIMIT
    for w in load.survivors:
        assert w.report is not None and w.report["limiter_errors"] == 0
        refused = sum(1 for _tool, outcome in w.ledger.values() if outcome == "rate_limited")
        assert w.admitted + refused == CALLS // 2  # every limited call was decided, none failed


def test_every_survivor_decision_is_in_the_shared_log(load: LoadResult) -> None:
    assert [w.index for w in load.survivors] == [0, 1, 2]
    for w in load.survivors:
        assert len(w.ledger) == CALLS
        assert w.audited == w.ledger  # same call ids, tools and outcomes
        assert w.report is not None and w.report["audit_written"] == CALLS


def test_the_killed_worker_lost_only_what_was_not_committed(load: LoadResult) -> None:
    victim = load.victim
    assert victim is not None and victim.report is None
    assert len(victim.ledger) >= CALLS // 2  # killed once half its calls were decided
    # Its rows are decisions it made (plus at most the one in flight), never invented or altered.
    assert len(set(victim.audited) - set(victim.ledger)) <= 1
    assert victim.mismatched == []
    # What it lost is a tail: the rows that made it are its oldest decisions.
    numbers = sorted(int(c.split("-")[1]) for c in victim.audited)
    assert numbers == list(range(len(numbers)))


def test_chain_verifies_after_concurrent_writers_and_a_kill(load: LoadResult) -> None:
    assert load.failures == []
    assert load.chain_ok and load.chain_checked == load.audit_rows
    assert load.audit_rows == sum(len(w.audited) for w in load.workers)


def test_an_edited_row_is_reported_at_that_row(load: LoadResult, audit_url: str) -> None:
    import psycopg

    # Tamper with a copy so the other tests keep the untouched log.
    with psycopg.connect(audit_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS tampered")
        conn.execute("CREATE TABLE tampered AS SELECT * FROM tamma_audit")
        target = load.audit_rows // 2
        conn.execute(
            "UPDATE tampered SET outcome = 'executed', args_preview = '{}' WHERE seq = %s",
            (target,),
        )
    log = open_audit_log(audit_url, table="tampered")
    try:
        report = log.verify()
    finally:
        log.close()
    assert (report.ok, report.first_bad_seq, report.checked) == (False, target, target - 1)
    assert report.reason == "row content does not match its hash"


LOCK_HOLDER = textwrap.dedent(
    """
    import sys, time, psycopg
    conn = psycopg.connect(sys.argv[1])
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (int(sys.argv[2]),))
    conn.execute("INSERT INTO tamma_audit (seq, ts, call_id, tool, user_id, roles, outcome, "
                 "repairs, args_preview, args_sha256, duration_ms, result_size, isolation, "
                 "sandbox_layers, prev_hash, hash) SELECT max(seq) + 1, 0, 'half', 't', 'u', "
                 "'[]', 'executed', '[]', '{}', '', 0, 0, 'in_process', '[]', '', '' "
                 "FROM tamma_audit")
    print("locked", flush=True)
    time.sleep(600)
    """
)


def test_a_writer_killed_inside_its_append_leaves_no_lock_and_no_row(
    postgres_server: PostgresServer,
) -> None:
    """A writer SIGKILLed while it holds the append lock with a half-written batch: the server
    rolls its transaction back and frees the lock, and the other writers carry on the chain."""
    url = postgres_url(postgres_server)
    ctx = CallerContext(user_id="u")
    from tamma_tools.observability.audit_postgres import PostgresAuditLog

    log = open_audit_log(url)
    assert isinstance(log, PostgresAuditLog)  # a postgresql:// URL picks the shared backend
    try:
        for i in range(5):
            log.record(CallRecord(f"before-{i}", "t", "executed", ctx, "{}", time.time()))
        assert log.flush()
        holder = subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, url, str(log.lock_key)],
            stdout=subprocess.PIPE,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
            log.record(CallRecord("after", "t", "executed", ctx, "{}", time.time()))
            assert not log.flush(timeout=0.5)  # queued behind the lock, not lost, not forked
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait(timeout=10)
        finally:
            if holder.poll() is None:
                holder.kill()
                holder.wait(timeout=10)
        assert log.flush(timeout=30)
        rows = log.query()
        assert [r.call_id for r in rows] == [*(f"before-{i}" for i in range(5)), "after"]
        report = log.verify()
        assert report.ok and report.checked == 6
    finally:
        log.close()


# --- one limiter, several event loops ------------------------------------------------------------
#
# Regression: ``RedisRateLimiter`` used to hold one ``redis.asyncio`` client, whose connections and
# locks belong to the event loop that first used them. A deployment that runs the limiter on more
# than one loop -- ``asyncio.run`` per request or per CLI step, or ``execute_function_call_sync``
# from several threads (each thread gets its own loop) -- got "Event loop is closed" / "bound to a
# different event loop" from redis-py: fail-closed refused every call, fail-open admitted every call
# uncounted, and threads could hang for good on a lock bound to another loop. Given a URL, the
# limiter now makes one client per running loop.

THREADS_SCRIPT = textwrap.dedent(
    """
    import sys, threading, time
    sys.path.insert(0, {bench!r})
    from _load_worker import definition, echo, tool_call
    from tamma_tools.manager import FunctionCallingManager
    from tamma_tools.manager.ratelimit_redis import RedisRateLimiter
    from tamma_tools.types import RateLimit
    manager = FunctionCallingManager(rate_limiter=RedisRateLimiter(sys.argv[1]))
    manager.register_tool(definition("limited_echo", RateLimit(calls_per_minute=10)), echo)
    outcomes = []
    def caller(k):
        for i in range(10):
            result = manager.execute_function_call_sync(tool_call(f"{{k}}-{{i}}", "limited_echo", i))
            outcomes.append(result.error_code or "executed")
    threads = [threading.Thread(target=caller, args=(k,), daemon=True) for k in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    print(sorted(outcomes).count("executed"), len(outcomes), flush=True)
    """
)


def test_the_limiter_works_on_a_second_event_loop() -> None:
    import asyncio

    from tamma_tools.manager.ratelimit_redis import RedisRateLimiter

    with redis_server() as redis:
        limiter = RedisRateLimiter(redis.url)
        # e.g. a CLI or a sync web handler that calls asyncio.run once per request
        first = [asyncio.run(limiter.acquire("k", [(60.0, 3)])) for _ in range(5)]
        assert first[:3] == [0.0, 0.0, 0.0] and all(w > 0 for w in first[3:])
        assert limiter.backend_errors == 0


def test_the_sync_api_from_several_threads_shares_the_limit() -> None:
    bench = str(Path(__file__).resolve().parents[1] / "benchmarks")
    with redis_server() as redis:
        done = subprocess.run(
            [sys.executable, "-c", THREADS_SCRIPT.format(bench=bench), redis.url],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    # 3 threads x 10 calls, 10 per minute allowed: every call decided, exactly 10 admitted.
    assert done.stdout.split() == ["10", "30"], done.stderr[-2000:]


# --- the scaling guide's examples ---------------------------------------------------------------

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "scaling.md"


def _fenced(language: str) -> list[str]:
    blocks = GUIDE.read_text(encoding="utf-8").split(f"```{language}\n")[1:]
    return [block.split("```", 1)[0] for block in blocks]


def test_the_guides_configuration_builds_the_shared_backends() -> None:
    import tomllib

    from tamma_tools.config import parse_settings
    from tamma_tools.manager.ratelimit_redis import RedisRateLimiter
    from tamma_tools.observability.audit_postgres import PostgresAuditLog
    from tamma_tools.runtime import Runtime

    (toml_text,) = _fenced("toml")
    settings = parse_settings(tomllib.loads(toml_text), source="docs/scaling.md")
    # Nothing connects until the first call or record, so unreachable hosts are fine here.
    runtime = Runtime(settings, builtins=False)
    try:
        limiter = runtime.manager.rate_limiter
        assert isinstance(limiter, RedisRateLimiter) and limiter.on_failure == "fail_closed"
        assert runtime.observability is not None
        assert isinstance(runtime.observability.audit, PostgresAuditLog)
    finally:
        runtime.close()


def test_the_guides_python_example_wires_the_shared_backends() -> None:
    from tamma_tools.manager import FunctionCallingManager
    from tamma_tools.manager.ratelimit_redis import RedisRateLimiter
    from tamma_tools.observability import Observability
    from tamma_tools.observability.audit import AuditObserver
    from tamma_tools.observability.audit_postgres import PostgresAuditLog

    (code,) = _fenced("python")
    namespace: dict[str, object] = {}
    exec(compile(code.replace("...\n", ""), str(GUIDE), "exec"), namespace)  # obs.close() included
    manager, obs = namespace["manager"], namespace["obs"]
    assert isinstance(manager, FunctionCallingManager) and isinstance(obs, Observability)
    assert isinstance(manager.rate_limiter, RedisRateLimiter)
    assert isinstance(obs.audit, PostgresAuditLog) and obs.audit.closed
    assert any(isinstance(o, AuditObserver) for o in obs.observers)
