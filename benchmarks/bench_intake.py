"""Per-call cost of argument intake and rate limiting, next to the floors, in one run.

Run: ``python benchmarks/bench_intake.py``. Candidates are timed in interleaved, shuffled rounds
(batches of about 20 ms); the table gives each row's median and the median of its per-round
ratio to the floor of its group, measured in the same round.

Argument intake, strict mode, on 106-byte arguments shaped like ``bench_dispatch.py``'s (as a
model writes them, with spaces after ``:`` and ``,``): the floor is a
bare ``orjson.loads``, which checks neither caps nor duplicate keys. The other rows show the
duplicate-key strategies that were considered. Rate limiting: the floor is a token bucket (one
``monotonic`` call and arithmetic, inexact across windows and not shared with Redis semantics).
"""

from __future__ import annotations

import json
import random
import re
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

from tamma_tools.manager.arguments import parse_arguments
from tamma_tools.manager.ratelimit import InMemoryRateLimiter
from tamma_tools.types import RateLimit

ARGS = (
    '{"city": "Oslo", "days": 10, "fields": ["temp", "wind"], '
    '"location": {"country": "NO", "region": "Viken"}}'
)
ARGS_URL = '{"url":"https://example.com:8443/v1/items?at=12:30","method":"GET","timeout_s":10}'
ARGS_SPACED = json.dumps(json.loads(ARGS), indent=2)
_KEY = re.compile(r'"(?:[^"\\]|\\.)*"\s*:')


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate key")
    return out


def _count(value: Any) -> int:
    if type(value) is dict:
        return len(value) + sum(_count(v) for v in value.values())
    if type(value) is list:
        return sum(_count(v) for v in value)
    return 0


def _regex_key_count(raw: str) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(raw)
    if len(_KEY.findall(raw)) != _count(value):
        raise ValueError("duplicate key")
    return value


class TokenBucket:
    def __init__(self, rate_per_s: float, burst: float) -> None:
        self.rate, self.burst, self.tokens, self.at = rate_per_s, burst, burst, time.monotonic()

    def take(self) -> float:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


def _groups() -> list[tuple[str, list[tuple[str, Callable[[], object]]]]]:
    assert len(ARGS.encode()) == 106
    for raw in (ARGS, ARGS_URL, ARGS_SPACED):
        assert parse_arguments(raw).value == orjson.loads(raw)
    huge = 10**12  # limits no call in the run reaches, so every call takes the admit path
    one = RateLimit(calls_per_minute=huge).windows()
    three = RateLimit(calls_per_minute=huge, calls_per_hour=huge, calls_per_day=huge).windows()
    limiter = InMemoryRateLimiter()
    many_keys = InMemoryRateLimiter()
    for i in range(10_000):
        many_keys.try_acquire(f"tool\x00user{i}", one)
    bucket = TokenBucket(1e12, 1e12)
    return [
        (
            "argument intake, 106-byte object (strict)",
            [
                ("floor: orjson.loads (no caps, no duplicate check)", lambda: orjson.loads(ARGS)),
                ("json.loads", lambda: json.loads(ARGS)),
                (
                    "json.loads + object_pairs_hook duplicate check",
                    lambda: json.loads(ARGS, object_pairs_hook=_pairs_hook),
                ),
                ("orjson + regex key count (findall)", lambda: _regex_key_count(ARGS)),
                ("parse_arguments", lambda: parse_arguments(ARGS)),
                ("parse_arguments, colons in values (82 B)", lambda: parse_arguments(ARGS_URL)),
                ("parse_arguments, indented (140 B)", lambda: parse_arguments(ARGS_SPACED)),
            ],
        ),
        (
            "rate limit, admitted call",
            [
                ("floor: token bucket", bucket.take),
                ("try_acquire, 1 window", lambda: limiter.try_acquire("tool\x00alice", one)),
                ("try_acquire, 3 windows", lambda: limiter.try_acquire("tool\x00bob", three)),
                (
                    "try_acquire, 1 window, 10,000 keys held",
                    lambda: many_keys.try_acquire("tool\x00user5000", one),
                ),
            ],
        ),
    ]


def _per_call_ns(fn: Callable[[], object], batch: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(batch):
        fn()
    return (time.perf_counter_ns() - start) / batch


def _batch_size(fn: Callable[[], object], target_s: float = 0.02) -> int:
    n = 100
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        took = time.perf_counter() - start
        if took >= target_s / 4:
            return max(100, int(n * target_s / took))
        n *= 4


def main(rounds: int = 21) -> None:
    for title, rows in _groups():
        batches = [_batch_size(fn) for _, fn in rows]
        samples: list[list[float]] = [[] for _ in rows]
        ratios: list[list[float]] = [[] for _ in rows]
        for _ in range(rounds):
            order = list(range(len(rows)))
            random.shuffle(order)
            this_round = [0.0] * len(rows)
            for i in order:
                this_round[i] = _per_call_ns(rows[i][1], batches[i])
            for i, ns in enumerate(this_round):
                samples[i].append(ns)
                ratios[i].append(ns / this_round[0])
        print(f"\n{title} ({rounds} rounds)")
        print(f"| {'candidate':<52} | median µs | IQR % | x floor |")
        print(f"|{'-' * 54}|----------:|------:|--------:|")
        for (name, _), ns, ratio in zip(rows, samples, ratios, strict=True):
            q = statistics.quantiles(ns, n=4)
            med = statistics.median(ns)
            print(
                f"| {name:<52} | {med / 1000:9.3f} | {100 * (q[2] - q[0]) / med:5.1f} "
                f"| {statistics.median(ratio):7.2f} |"
            )


if __name__ == "__main__":
    main()
