"""Rate limits that hold across processes, through a real Redis server on loopback."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from tamma_tools.manager import FunctionCallingManager
from tamma_tools.manager.ratelimit_redis import RedisRateLimiter
from tamma_tools.types import CallerContext, RateLimit, ToolDefinition
from tests.support.services import RedisServer, redis_server

MINUTE = [(60.0, 100)]


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def ping_definition(limit: RateLimit) -> ToolDefinition:
    return ToolDefinition.model_validate(
        {
            "function": {"name": "ping", "parameters": {"type": "object", "properties": {}}},
            "metadata": {"isolation": "in_process", "rate_limit": limit.model_dump()},
        }
    )


async def test_admits_exactly_the_limit_and_says_when_to_retry(redis: RedisServer) -> None:
    limiter = RedisRateLimiter(redis.url)
    answers = await asyncio.gather(*(limiter.acquire("ping\x00u1", MINUTE) for _ in range(300)))
    assert sum(1 for a in answers if a == 0.0) == 100
    refused = [a for a in answers if a > 0]
    assert len(refused) == 200 and all(55 < a <= 60 for a in refused)
    # Another caller has its own window; a refusal consumes nothing.
    assert await limiter.acquire("ping\x00u2", MINUTE) == 0.0
    await limiter.aclose()


async def test_every_window_is_checked_and_nothing_consumed_on_refusal(redis: RedisServer) -> None:
    limiter = RedisRateLimiter(redis.url)
    windows = [(60.0, 5), (3600.0, 3)]
    answers = [await limiter.acquire("k", windows) for _ in range(5)]
    assert answers[:3] == [0.0, 0.0, 0.0]
    assert all(3590 < a <= 3600 for a in answers[3:])  # the hour window decides
    count = await limiter.client.zcard("tamma:rl:k:60000")
    assert count == 3
    await limiter.aclose()


_WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from tamma_tools.manager import FunctionCallingManager
    from tamma_tools.manager.ratelimit_redis import RedisRateLimiter
    from tamma_tools.types import CallerContext, ToolDefinition

    async def ping():
        return "pong"

    async def main():
        mgr = FunctionCallingManager(rate_limiter=RedisRateLimiter(sys.argv[1]))
        mgr.register_tool(ToolDefinition.model_validate({
            "function": {"name": "ping", "parameters": {"type": "object", "properties": {}}},
            "metadata": {"isolation": "in_process", "rate_limit": {"calls_per_minute": 100}}}), ping)
        ctx = CallerContext(user_id="shared")
        calls = [{"id": f"c{i}", "function": {"name": "ping", "arguments": "{}"}} for i in range(150)]
        results = await asyncio.gather(*(mgr.execute_function_call(c, ctx) for c in calls))
        print(sum(r.success for r in results))

    asyncio.run(main())
    """
)


def test_four_processes_hammering_share_one_limit(redis: RedisServer) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, redis.url], stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    admitted = [int(p.communicate(timeout=60)[0].strip()) for p in procs]
    assert sum(admitted) == 100, admitted


async def test_redis_going_away_fails_closed_with_a_clear_error(redis: RedisServer) -> None:
    errors: list[BaseException] = []
    mgr = FunctionCallingManager(
        rate_limiter=RedisRateLimiter(redis.url, on_backend_error=errors.append)
    )

    async def ping() -> str:
        return "pong"

    mgr.register_tool(ping_definition(RateLimit(calls_per_minute=100)), ping)
    call = {"id": "c1", "function": {"name": "ping", "arguments": "{}"}}
    assert (await mgr.execute_function_call(call, CallerContext(user_id="u"))).success
    redis.stop()
    result = await mgr.execute_function_call(call, CallerContext(user_id="u"))
    assert not result.success and result.error_code == "rate_limiter_unavailable"
    assert "fail closed" in result.to_message()["content"]
    assert errors and mgr.history[-1].outcome == "denied"


async def test_fail_open_admits_when_redis_is_gone(redis: RedisServer) -> None:
    limiter = RedisRateLimiter(redis.url, on_failure="fail_open")
    redis.stop()
    assert await limiter.acquire("k", MINUTE) == 0.0
    assert limiter.backend_errors == 1


async def test_a_zero_limit_always_refuses_for_a_whole_window(redis: RedisServer) -> None:
    limiter = RedisRateLimiter(redis.url)
    assert await limiter.acquire("zero", [(60.0, 0)]) == 60.0
    await limiter.aclose()


def test_unknown_failure_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="fail_closed"):
        RedisRateLimiter("redis://127.0.0.1:1/0", on_failure="maybe")  # type: ignore[arg-type]
