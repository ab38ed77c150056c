"""Rate limiting per tool and caller: the ``RateLimiter`` protocol and its in-memory backend.

Semantics every backend implements (``RedisRateLimiter`` keeps the same ones across processes):

- A *window* is ``(seconds, limit)``, as ``RateLimit.windows()`` gives them. Each window is a
  sliding log: a call admitted at time ``t`` occupies one slot of that window during
  ``[t, t + seconds)``. A call at ``now`` fits a window when fewer than ``limit`` of its slots are
  occupied at ``now``.
- ``acquire(key, windows)`` admits the call only if it fits *every* window, and then occupies a
  slot in every window, atomically. A call refused by any window occupies nothing (a call the
  minute window would admit but the hour window refuses does not use up the minute).
- The return value is ``0.0`` when admitted. Otherwise it is the seconds until the call would fit
  every window, measured from now and assuming no other call is admitted meanwhile: for each full
  window, the time until enough of its slots free, and the largest of those. So a caller that
  waits exactly that long and retries is admitted (unless someone else took the slot first).
- A window with ``limit <= 0`` never admits; its retry-after is the window length, a finite
  number, so it can be sent to a model and logged as JSON. No windows at all always admits.
- Windows are identified by their length: two windows of the same length on one key share a log
  and a call takes one slot in it (as Redis does with one sorted set per length).
- Times are seconds on one monotonic clock; the Redis backend uses the server's clock instead.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from tamma_tools.errors import ConfigError

__all__ = ["InMemoryRateLimiter", "RateLimiter"]

_MIN_WAIT = 1e-6
"""The smallest retry-after reported, so that a refusal is never 0.0 (which means admitted)."""

_PRUNE_EVERY = 16
_PRUNE_BATCH = 32
"""Every ``_PRUNE_EVERY`` admitted calls, up to ``_PRUNE_BATCH`` idle keys are dropped (O(1) per
call amortised, and faster than idle keys can pile up: 2 per call against at most 1 new)."""


def _distinct_lengths(windows: Sequence[tuple[float, int]]) -> bool:
    """Cheap for the usual one to three windows; ``RateLimit.windows()`` never repeats one."""
    if len(windows) == 2:
        return windows[0][0] != windows[1][0]
    return len({seconds for seconds, _limit in windows}) == len(windows)


@runtime_checkable
class RateLimiter(Protocol):
    """Admits or refuses one call for ``key`` against all ``windows`` at once (see module doc)."""

    async def acquire(self, key: str, windows: Sequence[tuple[float, int]]) -> float:
        """0.0 when the call is admitted (and counted), else the seconds until it would fit."""
        ...


_Logs = dict[float, deque[float]]


class InMemoryRateLimiter:
    """Exact sliding-log limiter for one process, safe across threads and asyncio tasks.

    Memory is bounded: a window's log never holds more than its (largest) ``limit`` entries, at most
    ``max_keys`` keys are kept (the least recently used key is forgotten first, which makes the
    limiter more permissive for that key, never stricter), and keys whose every entry has
    expired are dropped as calls pass by. ``clock`` is a monotonic clock in seconds; inject a fake
    one in tests.
    """

    __slots__ = ("_admitted", "_clock", "_keys", "_lock", "max_keys")

    def __init__(
        self, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_keys < 1:
            raise ConfigError(f"InMemoryRateLimiter.max_keys must be at least 1, got {max_keys}")
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: OrderedDict[str, _Logs] = OrderedDict()
        self._admitted = 0

    async def acquire(self, key: str, windows: Sequence[tuple[float, int]]) -> float:
        # Nothing here awaits: the decision is a few microseconds under a thread lock, so it is
        # atomic for tasks and threads alike.
        return self.try_acquire(key, windows)

    def try_acquire(
        self, key: str, windows: Sequence[tuple[float, int]], now: float | None = None
    ) -> float:
        """Synchronous ``acquire`` for the manager's fast path; ``now`` overrides the clock."""
        if not windows:
            return 0.0
        with self._lock:
            if now is None:
                now = self._clock()
            keys = self._keys
            logs = keys.get(key)
            wait = -1.0
            if logs is None:
                for seconds, limit in windows:
                    if limit <= 0 and seconds > wait:
                        wait = seconds
            else:
                keys.move_to_end(key)
                for seconds, limit in windows:
                    log = logs.get(seconds)
                    used = 0
                    if log:
                        # ``t + seconds <= now`` rather than ``t <= now - seconds``: it rounds
                        # the same way as the retry-after below, so waiting exactly that long
                        # frees the slot even with fractional times.
                        while log and log[0] + seconds <= now:
                            log.popleft()
                        used = len(log)
                    if used >= limit:
                        if log and limit > 0:
                            frees_at = log[used - limit] + seconds
                            free_in = frees_at - now
                            # Round up so that ``now + free_in`` really reaches ``frees_at``:
                            # a caller who waits exactly the reported time must get in.
                            while now + free_in < frees_at:
                                free_in = math.nextafter(free_in, math.inf)
                        else:
                            free_in = seconds
                        if free_in > wait:
                            wait = free_in
            if wait >= 0.0:
                if logs is not None and not any(logs.values()):
                    del keys[key]  # refused and holding nothing: do not let refusals fill memory
                # Float rounding can make the wait 0.0 for an entry about to expire; a refusal
                # must still read as one.
                return wait if wait > 0.0 else _MIN_WAIT
            if logs is None:
                logs = keys[key] = {}
                if len(keys) > self.max_keys:
                    keys.popitem(last=False)
            if len(windows) == 1 or _distinct_lengths(windows):
                for seconds, _limit in windows:
                    log = logs.get(seconds)
                    if log is None:
                        logs[seconds] = deque((now,))
                    else:
                        log.append(now)
            else:  # two windows of one length share a log: one entry per call, as in Redis
                for seconds in dict.fromkeys(seconds for seconds, _limit in windows):
                    logs.setdefault(seconds, deque()).append(now)
            self._admitted += 1
            if not self._admitted % _PRUNE_EVERY:
                self._prune(now)
            return 0.0

    def _prune(self, now: float) -> None:
        """Drop up to ``_PRUNE_BATCH`` keys at the LRU end whose entries have all expired.

        Keys are in order of last use, so the idle ones gather at the front; stopping at the
        first live key keeps this O(batch) however many keys there are.
        """
        keys = self._keys
        for _ in range(_PRUNE_BATCH):
            if len(keys) < 2:
                return
            key, logs = next(iter(keys.items()))
            for seconds, log in logs.items():
                if log and log[-1] + seconds > now:
                    return
            del keys[key]

    def reset(self, key: str | None = None) -> None:
        """Forget one key's history, or every key's when ``key`` is None."""
        with self._lock:
            if key is None:
                self._keys.clear()
            else:
                self._keys.pop(key, None)

    def __len__(self) -> int:
        """How many keys are held (for tests and metrics)."""
        return len(self._keys)

    def entries(self) -> int:
        """How many timestamps are held across every key and window (memory bound checks)."""
        with self._lock:
            return sum(len(log) for logs in self._keys.values() for log in logs.values())
