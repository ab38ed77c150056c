"""Many processes, one policy: the shared Redis rate limit and PostgreSQL audit chain under load.

Run: ``python benchmarks/load_test.py [--processes 4 --calls 2000 --limit 1000]``.

Starts ``redis-server`` and a throwaway PostgreSQL cluster from the system's binaries (the same
helpers the tests use: ``tests/support/services.py`` and ``tests/support/postgres.py``), then
``--processes`` workers (``_load_worker.py``) that each make ``--calls`` tool calls through their
own ``FunctionCallingManager``: every other call goes to a tool limited to ``--limit`` calls per
minute for the one caller all workers share, the rest to an unlimited tool. One worker is
SIGKILLed once half of its calls are decided. Then it checks, prints a table, and exits 1 if an
invariant fails:

- admitted: the limited tool admitted exactly ``--limit`` calls across all processes (counted in
  Redis, and in the decisions the workers returned);
- audit: every decision a surviving worker made is in the shared log, with its outcome; how many
  of the killed worker's decisions made it, and how many it lost (at most those it handed to the
  audit writer after the writer's last commit: see ``docs/scaling.md``);
- chain: ``verify()`` on the shared log passes over every row, after concurrent writers and a
  writer killed mid-run;
- throughput: calls per second for each process and in total.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
WORKER = BENCH_DIR / "_load_worker.py"
for entry in (str(BENCH_DIR), str(REPO_ROOT)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from _load_worker import FREE_TOOL, LIMITED_TOOL, USER_ID  # noqa: E402

if TYPE_CHECKING:
    from tests.support.postgres import PostgresServer

READY_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 300.0
IN_FLIGHT_PER_WORKER = 1
"""Calls a worker has in flight at once (it awaits each): the killed worker can have been
admitted by Redis for at most this many calls it never returned, so never wrote to its ledger."""


@dataclass
class WorkerRun:
    """What one worker did: its report (survivors) or what its ledger shows (the killed one)."""

    index: int
    killed: bool
    ledger: dict[str, tuple[str, str]] = field(default_factory=dict)
    """call_id -> (tool, outcome) for every decision the worker returned."""
    report: dict[str, Any] | None = None
    audited: dict[str, tuple[str, str]] = field(default_factory=dict)
    """call_id -> (tool, outcome) as the shared audit log holds them."""

    @property
    def admitted(self) -> int:
        return sum(1 for t, o in self.ledger.values() if t == LIMITED_TOOL and o == "executed")

    @property
    def missing_from_audit(self) -> list[str]:
        return sorted(set(self.ledger) - set(self.audited))

    @property
    def mismatched(self) -> list[str]:
        return sorted(
            c for c, v in self.audited.items() if c in self.ledger and self.ledger[c] != v
        )


@dataclass
class LoadResult:
    processes: int
    calls: int
    limit: int
    workers: list[WorkerRun]
    redis_admitted: int
    audit_rows: int
    chain_ok: bool
    chain_checked: int
    chain_reason: str | None
    wall_s: float
    kill_after: int | None
    pace_ms: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def survivors(self) -> list[WorkerRun]:
        return [w for w in self.workers if not w.killed]

    @property
    def victim(self) -> WorkerRun | None:
        return next((w for w in self.workers if w.killed), None)


def postgres_url(server: PostgresServer) -> str:
    """A fresh database on ``server`` (``tests/support/postgres.py``) as a ``postgresql://`` URL:
    the form ``open_audit_log`` and the ``[audit] url`` setting take (socket dir as ``host``)."""
    dsn = server.new_database()
    dbname = dsn.rsplit("dbname=", 1)[1]
    return (
        f"postgresql://{quote(server.user)}@/{dbname}"
        f"?host={quote(str(server.sockdir), safe='')}&port={server.port}"
    )


def _read_ledger(path: Path) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    if not path.exists():
        return out
    for line in path.read_bytes().decode().splitlines():
        parts = line.split()
        if len(parts) == 3:  # a line cut by the kill has fewer fields (cannot happen: one write)
            out[parts[0]] = (parts[1], parts[2])
    return out


def _count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def run_load(
    redis_url: str,
    audit_url: str,
    *,
    processes: int,
    calls: int,
    limit: int,
    kill: bool = True,
    pace_ms: float = 0.0,
    max_pending: int = 0,
    workdir: Path,
) -> LoadResult:
    """Run the workers, SIGKILL one halfway (when ``kill``), and collect every count."""
    import redis

    from tamma_tools.observability import open_audit_log

    prefix = f"load:{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs: list[subprocess.Popen[bytes]] = []
    ledgers = [workdir / f"ledger-{k}.txt" for k in range(processes)]
    for k in range(processes):
        procs.append(
            subprocess.Popen(
                [sys.executable, str(WORKER), "--redis", redis_url, "--audit", audit_url,
                 "--prefix", prefix, "--worker", str(k), "--calls", str(calls),
                 "--limit", str(limit), "--ledger", str(ledgers[k]), "--pace-ms", str(pace_ms),
                 "--max-pending", str(max_pending)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
            )
        )  # fmt: skip
    victim = processes - 1 if kill else None
    kill_after = calls // 2 if kill else None
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdin is not None
            line = proc.stdout.readline()
            if line.strip() != b"ready":
                raise RuntimeError(f"a worker did not start: {line!r}")
        started = time.perf_counter()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
        if victim is not None and kill_after is not None:
            deadline = time.monotonic() + RUN_TIMEOUT_S
            while _count_lines(ledgers[victim]) < kill_after:
                if procs[victim].poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the worker to kill finished (or hung) before halfway")
                time.sleep(0.0005)
            os.kill(procs[victim].pid, signal.SIGKILL)
            procs[victim].wait(timeout=30)
        reports: dict[int, dict[str, Any]] = {}
        for k, proc in enumerate(procs):
            if k == victim:
                continue
            out, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
            if proc.returncode != 0:
                raise RuntimeError(f"worker {k} exited with {proc.returncode}")
            reports[k] = orjson.loads(out.strip().splitlines()[-1])
        wall = time.perf_counter() - started
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)

    workers = [
        WorkerRun(k, k == victim, _read_ledger(ledgers[k]), reports.get(k))
        for k in range(processes)
    ]
    shared = open_audit_log(audit_url)
    try:
        report = shared.verify()
        rows = shared.query()
    finally:
        shared.close()
    for row in rows:
        worker = int(row.call_id.split("-", 1)[0][1:])
        workers[worker].audited[row.call_id] = (row.tool, row.outcome)

    client = redis.Redis.from_url(redis_url)
    try:
        key = f"{prefix}:{LIMITED_TOOL}\x00{USER_ID}:60000"
        redis_admitted = int(client.zcard(key))  # type: ignore[arg-type]  # sync client
    finally:
        client.close()

    result = LoadResult(
        processes, calls, limit, workers, redis_admitted, len(rows),
        report.ok, report.checked, report.reason, wall, kill_after, pace_ms,
    )  # fmt: skip
    result.failures = check(result)
    return result


def check(r: LoadResult) -> list[str]:
    """Every invariant that failed, in words (empty when all hold)."""
    failures: list[str] = []
    if r.redis_admitted != r.limit:
        failures.append(f"Redis admitted {r.redis_admitted} calls, the limit is {r.limit}")
    returned = sum(w.admitted for w in r.workers)
    # The killed worker may have been admitted for calls it never returned (in flight).
    slack = IN_FLIGHT_PER_WORKER if r.victim is not None else 0
    if not r.limit - slack <= returned <= r.limit:
        failures.append(f"workers returned {returned} admitted calls, the limit is {r.limit}")
    for w in r.survivors:
        if w.report is None or len(w.ledger) != r.calls or w.report["decisions"] != r.calls:
            failures.append(f"worker {w.index} did not decide all {r.calls} calls")
        if w.missing_from_audit:
            failures.append(
                f"worker {w.index}: {len(w.missing_from_audit)} decisions missing from the audit "
                f"log, e.g. {w.missing_from_audit[:3]}"
            )
        if w.mismatched or len(w.audited) != len(w.ledger):
            failures.append(f"worker {w.index}: audit rows differ from its decisions")
    v = r.victim
    if v is not None:
        extra = set(v.audited) - set(v.ledger)
        if len(extra) > IN_FLIGHT_PER_WORKER or v.mismatched:
            failures.append(f"killed worker: audit rows it never decided: {sorted(extra)[:3]}")
        # Batches commit in order, so what made it is its oldest decisions: a prefix.
        numbers = sorted(int(c.split("-", 1)[1]) for c in v.audited)
        if numbers != list(range(len(numbers))):
            failures.append("killed worker: its audit rows are not a prefix of its decisions")
    if not r.chain_ok:
        failures.append(f"chain verification failed: {r.chain_reason}")
    if r.chain_checked != r.audit_rows:
        failures.append(f"verify() checked {r.chain_checked} rows of {r.audit_rows}")
    return failures


def table(r: LoadResult) -> str:
    """The report as a Markdown table (pasted into docs/scaling.md)."""
    v = r.victim
    returned = sum(w.admitted for w in r.workers)
    surv_decisions = sum(len(w.ledger) for w in r.survivors)
    surv_audited = sum(len(set(w.ledger) & set(w.audited)) for w in r.survivors)
    lines = [
        f"{r.processes} processes x {r.calls} calls, limit {r.limit}/min on `{LIMITED_TOOL}` "
        f"(`{FREE_TOOL}` unlimited), "
        + (f"{r.pace_ms:g} ms pause after each call" if r.pace_ms else "tight loop")
        + (f", worker {v.index} SIGKILLed after {r.kill_after} decisions" if v else ""),
        "",
        "| check | measured | expected | |",
        "|---|---:|---:|---|",
        f"| admitted (Redis log) | {r.redis_admitted} | {r.limit} | "
        f"{_ok(r.redis_admitted == r.limit)} |",
        f"| admitted (decisions returned) | {returned} | {r.limit}"
        + (f" (-{IN_FLIGHT_PER_WORKER} if killed in flight)" if v else "")
        + f" | {_ok(r.limit - (1 if v else 0) <= returned <= r.limit)} |",
        f"| survivors' decisions in the audit log | {surv_audited} | {surv_decisions} | "
        f"{_ok(surv_audited == surv_decisions)} |",
    ]
    if v is not None:
        made_it = len(set(v.ledger) & set(v.audited))
        in_flight = len(set(v.audited) - set(v.ledger))
        lines.append(
            f"| killed worker's decisions in the log | {made_it} of {len(v.ledger)} "
            f"(+{in_flight} in flight) | lost <= uncommitted | {len(v.missing_from_audit)} lost |"
        )
    lines += [
        f"| audit rows / chain verified | {r.audit_rows} / {r.chain_checked} | all | "
        f"{_ok(r.chain_ok and r.chain_checked == r.audit_rows)} |",
        "",
        "| process | decisions | admitted | refused | calls/s | audit close (ms) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    total_rate = 0.0
    for w in r.workers:
        refused = sum(1 for _t, o in w.ledger.values() if o == "rate_limited")
        if w.report is not None:
            rate = w.report["decisions"] / w.report["elapsed_s"]
            total_rate += rate
            close_ms = f"{1000 * w.report['audit_close_s']:.0f}"
            rate_text = f"{rate:,.0f}"
        else:
            rate_text, close_ms = "killed", "-"
        lines.append(
            f"| {w.index} | {len(w.ledger)} | {w.admitted} | {refused} | {rate_text} | {close_ms} |"
        )
    decided = sum(len(w.ledger) for w in r.workers)
    lines.append(
        f"| all | {decided} | {returned} | | {decided / r.wall_s:,.0f} total "
        f"({total_rate:,.0f} summed) | wall {r.wall_s:.2f} s |"
    )
    return "\n".join(lines)


def _ok(flag: bool) -> str:
    return "ok" if flag else "FAIL"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--calls", type=int, default=2000, help="tool calls per process")
    parser.add_argument("--limit", type=int, default=1000, help="calls per minute, all processes")
    parser.add_argument("--no-kill", action="store_true", help="let every worker finish")
    parser.add_argument(
        "--max-pending",
        type=int,
        default=0,
        help="audit back-pressure per worker (0: off); bounds what the SIGKILL can lose",
    )
    parser.add_argument(
        "--pace-ms", type=float, default=0.0,
        help="each worker pauses this long after every call (0: a tight loop, one busy CPU each)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.processes < 2 or args.calls < 2:
        parser.error("need at least 2 processes and 2 calls each")

    import pytest
    from tests.support.postgres import start_postgres
    from tests.support.services import redis_server

    try:
        pg = start_postgres()
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:
        print(f"cannot start PostgreSQL: {exc}", file=sys.stderr)
        return 2
    try:
        with redis_server() as rs, tempfile.TemporaryDirectory(prefix="tamma-load-") as tmp:
            result = run_load(
                rs.url, postgres_url(pg), processes=args.processes, calls=args.calls,
                limit=args.limit, kill=not args.no_kill, pace_ms=args.pace_ms, max_pending=args.max_pending, workdir=Path(tmp),
            )  # fmt: skip
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:
        print(f"cannot start Redis: {exc}", file=sys.stderr)
        return 2
    finally:
        pg.stop()
        import shutil

        shutil.rmtree(pg.datadir.parent, ignore_errors=True)
    print(table(result))
    for failure in result.failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
