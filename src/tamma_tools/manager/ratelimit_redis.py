"""Rate limits shared by many processes and machines, kept in Redis.

Same contract as ``InMemoryRateLimiter``: ``acquire(key, windows)`` returns 0.0 when the call is
admitted, else the seconds until the earliest window has room. All windows (minute, hour, day)
are checked and consumed atomically in one round trip by a Lua script (a sliding log per window
in a sorted set), using the Redis server's clock so that machines with skewed clocks agree.

When Redis cannot be reached the configured policy decides: ``fail_closed`` (default) refuses
the call with ``RateLimiterUnavailable``; ``fail_open`` admits it. Either way the failure is
counted in ``backend_errors`` (and in metrics when an ``on_backend_error`` callback is given).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from tamma_tools.errors import PolicyDenied

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RateLimiterUnavailable", "RedisRateLimiter"]

log = logging.getLogger(__name__)

FailurePolicy = Literal["fail_closed", "fail_open"]

# KEYS: none (keys are built from ARGV so one script serves every window count).
# ARGV[1] = key prefix, ARGV[2] = number of windows, then (window_ms, limit) pairs.
# Returns "0" when admitted, else the milliseconds until a slot frees (as a string).
_LUA = """
local prefix = ARGV[1]
local n = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = 0
for i = 0, n - 1 do
  local window = tonumber(ARGV[3 + 2 * i])
  local limit = tonumber(ARGV[4 + 2 * i])
  local key = prefix .. ':' .. window
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  if limit <= 0 then
    if window > wait then wait = window end
  elseif count >= limit then
    local oldest = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    local free_at = tonumber(oldest[2]) + window
    if free_at - now > wait then wait = free_at - now end
  end
end
if wait > 0 then return tostring(wait) end
local seq = redis.call('INCR', prefix .. ':seq')
redis.call('PEXPIRE', prefix .. ':seq', 86400000)
for i = 0, n - 1 do
  local window = tonumber(ARGV[3 + 2 * i])
  local key = prefix .. ':' .. window
  redis.call('ZADD', key, now, now .. '-' .. seq)
  redis.call('PEXPIRE', key, window)
end
return '0'
"""


class RateLimiterUnavailable(PolicyDenied):
    """The shared rate limiter cannot be reached and the policy is to fail closed."""

    code = "rate_limiter_unavailable"


class RedisRateLimiter:
    """The manager's ``RateLimiter`` protocol over Redis (redis-py's asyncio client)."""

    def __init__(
        self,
        client: Redis | str,
        *,
        prefix: str = "tamma:rl",
        on_failure: FailurePolicy = "fail_closed",
        on_backend_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        if on_failure not in ("fail_closed", "fail_open"):
            raise ValueError(f"on_failure must be 'fail_closed' or 'fail_open', got {on_failure!r}")
        # A redis.asyncio client belongs to the event loop it first ran on. Given a URL, one
        # client is made per loop, so sync callers (a loop per thread) and ``asyncio.run`` per
        # request work; a client passed in is used as is, on its own loop.
        self._url = client if isinstance(client, str) else None
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Redis, Any]] = (
            weakref.WeakKeyDictionary()
        )
        self._fixed: tuple[Redis, Any] | None = None
        if not isinstance(client, str):
            self._fixed = (client, client.register_script(_LUA))
        self.prefix = prefix
        self.on_failure: FailurePolicy = on_failure
        self.on_backend_error = on_backend_error
        self.backend_errors = 0

    def _for_loop(self) -> tuple[Redis, Any]:
        if self._fixed is not None:
            return self._fixed
        loop = asyncio.get_running_loop()
        found = self._clients.get(loop)
        if found is None:
            from redis.asyncio import Redis as _Redis

            assert self._url is not None
            client = _Redis.from_url(self._url, socket_timeout=2, socket_connect_timeout=2)
            found = self._clients[loop] = (client, client.register_script(_LUA))
        return found

    @property
    def client(self) -> Redis:
        """The client of the running event loop."""
        return self._for_loop()[0]

    async def acquire(self, key: str, windows: Sequence[tuple[float, int]]) -> float:
        if not windows:
            return 0.0
        argv: list[Any] = [f"{self.prefix}:{key}", len(windows)]
        for seconds, limit in windows:
            argv += [int(seconds * 1000), int(limit)]
        try:
            answer = await self._for_loop()[1](args=argv)
        except Exception as exc:  # connection refused, timeout, server gone mid-run
            self.backend_errors += 1
            if self.on_backend_error is not None:
                try:
                    self.on_backend_error(exc)
                except Exception:
                    log.exception("on_backend_error callback failed")
            log.warning("rate limiter backend error (%s): %s", self.on_failure, exc)
            if self.on_failure == "fail_open":
                return 0.0
            raise RateLimiterUnavailable(
                "the shared rate limiter is unavailable, so the call was refused (fail closed); "
                "try again in a minute or tell the user the service is degraded",
                rule="rate_limit.backend_unavailable",
            ) from None
        wait_ms = float(answer.decode() if isinstance(answer, bytes) else answer)
        return wait_ms / 1000.0

    async def reset(self, key: str | None = None) -> None:
        pattern = f"{self.prefix}:{key}:*" if key is not None else f"{self.prefix}:*"
        async for found in self.client.scan_iter(match=pattern):
            await self.client.delete(found)

    async def aclose(self) -> None:
        """Close the running loop's client (clients of other loops close with their loops)."""
        if self._fixed is not None:
            await self._fixed[0].aclose()
            return
        found = self._clients.pop(asyncio.get_running_loop(), None)
        if found is not None:
            await found[0].aclose()
