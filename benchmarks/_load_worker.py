"""One worker process of the load test (``load_test.py`` starts several and SIGKILLs one).

Each worker builds the deployment a real process would: a ``FunctionCallingManager`` whose rate
limiter is a ``RedisRateLimiter`` shared by every worker and whose observers come from
``Observability(audit=<postgresql:// URL>)``, so all workers append to one hash chain.

Protocol with the parent, over the pipes:

1. the worker warms its connections (Redis ``PING``, the audit table created under the advisory
   lock) and prints ``ready``;
2. it waits for one line on stdin, so that every worker starts at the same moment;
3. it runs ``--calls`` tool calls one after another, alternating the rate-limited tool and the
   unlimited one (with ``--pace-ms``, it awaits that long after each call, as a caller that
   waits for a model would; 0 is a tight loop that keeps one CPU busy), and appends ``<call_id> <outcome>`` to its ledger file after every decision
   (an ``O_APPEND`` write goes to the kernel at once, so the ledger of a SIGKILLed worker shows
   every decision it returned before it died);
4. it closes the audit log (everything pending is committed) and prints a JSON report.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

import orjson

from tamma_tools.manager import FunctionCallingManager, ManagerConfig
from tamma_tools.manager.ratelimit_redis import RedisRateLimiter
from tamma_tools.observability import Observability, open_audit_log
from tamma_tools.types import CallerContext, RateLimit, ToolDefinition

LIMITED_TOOL = "limited_echo"
FREE_TOOL = "free_echo"
USER_ID = "load"
"""Every worker acts for the same caller: the limit is per tool and caller, so they share it."""


def definition(name: str, limit: RateLimit | None) -> ToolDefinition:
    metadata: dict[str, Any] = {"isolation": "in_process"}
    if limit is not None:
        metadata["rate_limit"] = limit.model_dump()
    return ToolDefinition.model_validate(
        {
            "function": {
                "name": name,
                "description": "Echo the call number back.",
                "parameters": {
                    "type": "object",
                    "properties": {"i": {"type": "integer"}},
                    "required": ["i"],
                },
            },
            "metadata": metadata,
        }
    )


def echo(i: int) -> dict[str, int]:
    return {"i": i}


def tool_call(call_id: str, name: str, i: int) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": f'{{"i": {i}}}'},
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    limiter = RedisRateLimiter(args.redis, prefix=args.prefix, on_failure="fail_closed")
    audit_log = open_audit_log(args.audit, max_pending=args.max_pending or None)
    obs = Observability(audit=audit_log, metrics=False, tracing=False)
    assert obs.audit is not None
    manager = FunctionCallingManager(
        # Sessions are off (no session_id), so loop detection and retry budgets do not apply;
        # the history ring buffer is off so that memory stays flat over long runs.
        config=ManagerConfig(history_size=0),
        rate_limiter=limiter,
        observers=obs.observers,
    )
    manager.register_tool(definition(LIMITED_TOOL, RateLimit(calls_per_minute=args.limit)), echo)
    manager.register_tool(definition(FREE_TOOL, None), echo)
    ctx = CallerContext(user_id=USER_ID)

    await limiter.client.ping()
    obs.audit.count()  # connects and creates the table (under the advisory lock) before the start
    print("ready", flush=True)
    sys.stdin.readline()

    ledger = os.open(args.ledger, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    counts = {"executed": 0, "rate_limited": 0, "other": 0}
    admitted_limited = 0
    pace_s = args.pace_ms / 1000.0
    started = time.perf_counter()
    for i in range(args.calls):
        name = LIMITED_TOOL if i % 2 == 0 else FREE_TOOL
        call_id = f"w{args.worker}-{i}"
        result = await manager.execute_function_call(tool_call(call_id, name, i), ctx)
        outcome = "executed" if result.success else (result.error_code or "failed")
        if pace_s:
            await asyncio.sleep(pace_s)
        os.write(ledger, f"{call_id} {name} {outcome}\n".encode())
        counts[outcome if outcome in counts else "other"] += 1
        if result.success and name == LIMITED_TOOL:
            admitted_limited += 1
    elapsed = time.perf_counter() - started
    os.close(ledger)

    flushed_at = time.perf_counter()
    obs.close()
    close_s = time.perf_counter() - flushed_at
    await limiter.aclose()
    return {
        "worker": args.worker,
        "decisions": args.calls,
        "admitted_limited": admitted_limited,
        "outcomes": counts,
        "elapsed_s": elapsed,
        "audit_close_s": close_s,
        "audit_written": obs.audit.written,
        "limiter_errors": limiter.backend_errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", required=True, help="redis:// URL of the shared limiter")
    parser.add_argument("--audit", required=True, help="postgresql:// URL of the shared audit log")
    parser.add_argument("--prefix", required=True, help="Redis key prefix of this run")
    parser.add_argument("--worker", type=int, required=True)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--limit", type=int, required=True, help="calls per minute, all workers")
    parser.add_argument("--ledger", required=True, help="file that receives one line per decision")
    parser.add_argument("--pace-ms", type=float, default=0.0, help="pause after each call")
    parser.add_argument("--max-pending", type=int, default=0, help="audit back-pressure (0: off)")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    sys.stdout.write(orjson.dumps(report).decode() + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
