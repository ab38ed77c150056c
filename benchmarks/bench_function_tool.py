"""What ``@tool`` adds per call, and what making a tool costs once, next to baselines in one run.

Run: ``python benchmarks/bench_function_tool.py``. Per-call rows time ``executor(**kwargs)``
against calling the plain function with the same keyword arguments (the floor; no tool layer
can be cheaper). Rows are timed in interleaved, shuffled rounds; the table gives the median
over rounds and each row's median ratio to the floor of the same round. The decoration rows
compare ``@tool`` with openai-agents' ``function_tool`` when that package is installed.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel

from tamma_tools.function_tool import tool
from tamma_tools.registry import ToolRegistry
from tamma_tools.types import CallerContext

ROUNDS = 25
CALLS = 20_000
BUILDS = 50


class Location(BaseModel):
    country: str
    region: str


def forecast(city: Literal["Paris", "Oslo"], days: int, ctx: CallerContext) -> int:
    """Forecast.

    Args:
        city: The city.
        days: Days ahead.
    """
    return days


def forecast_defaults(city: Literal["Paris", "Oslo"], days: int = 3) -> int:
    return days


def forecast_model(city: Literal["Paris", "Oslo"], days: int, location: Location) -> int:
    return days


def per_call(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        for _ in range(CALLS):
            fn(**kwargs)
        return (time.perf_counter() - start) / CALLS * 1e6

    return run


def main() -> None:
    ctx = CallerContext(user_id="bench")
    plain_tool = tool(forecast)
    default_tool = tool(forecast_defaults)
    model_tool = tool(forecast_model)
    registry = ToolRegistry()
    registry.register(plain_tool)
    args = {"city": "Oslo", "days": 5}
    location = {"country": "NO", "region": "Ost"}

    def lookup() -> float:
        start = time.perf_counter()
        for _ in range(CALLS):
            registry.find("forecast")
        return (time.perf_counter() - start) / CALLS * 1e6

    rows: dict[str, Callable[[], float]] = {
        "floor: forecast(**kwargs)": per_call(forecast, {**args, "ctx": ctx}),
        "@tool executor, JSON-native params": per_call(plain_tool.executor, {**args, "ctx": ctx}),
        "@tool executor, strict null -> default": per_call(
            default_tool.executor, {"city": "Oslo", "days": None}
        ),
        "floor: forecast_model(Location.model_validate)": per_call(
            lambda **kw: forecast_model(
                kw["city"], kw["days"], Location.model_validate(kw["location"])
            ),
            {**args, "location": location},
        ),
        "@tool executor, pydantic param converted": per_call(
            model_tool.executor, {**args, "location": location}
        ),
        "registry.find(name)": lookup,
    }
    floors = {
        "@tool executor, JSON-native params": "floor: forecast(**kwargs)",
        "@tool executor, strict null -> default": "floor: forecast(**kwargs)",
        "@tool executor, pydantic param converted": "floor: forecast_model(Location.model_validate)",
        "registry.find(name)": "floor: forecast(**kwargs)",
    }
    samples: dict[str, list[float]] = {name: [] for name in rows}
    ratios: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(ROUNDS):
        order = list(rows)
        random.shuffle(order)
        this_round = {name: rows[name]() for name in order}
        for name, value in this_round.items():
            samples[name].append(value)
            floor = floors.get(name, name)
            ratios[name].append(value / this_round[floor])

    print(f"per call: median of {ROUNDS} rounds x {CALLS} calls (µs/call)")
    print(f"{'row':45} {'median µs':>10} {'vs floor':>9}")
    for name in rows:
        med = statistics.median(samples[name])
        ratio = statistics.median(ratios[name])
        print(f"{name:45} {med:10.3f} {ratio:8.2f}x")

    builds: dict[str, Callable[[], Any]] = {"@tool (tamma-tools)": lambda: tool(forecast_model)}
    try:
        from agents import function_tool

        builds["function_tool (openai-agents)"] = lambda: function_tool(forecast_model)
    except ImportError:
        pass
    build_samples: dict[str, list[float]] = {name: [] for name in builds}
    for _ in range(5):
        for name, make in random.sample(list(builds.items()), len(builds)):
            start = time.perf_counter()
            for _ in range(BUILDS):
                make()
            build_samples[name].append((time.perf_counter() - start) / BUILDS * 1e6)
    base = statistics.median(build_samples["@tool (tamma-tools)"])
    print(f"\nmaking a tool once: median of 5 rounds x {BUILDS} builds (µs/build)")
    print(f"{'row':45} {'median µs':>10} {'vs @tool':>9}")
    for name, values in build_samples.items():
        med = statistics.median(values)
        print(f"{name:45} {med:10.1f} {med / base:8.2f}x")


if __name__ == "__main__":
    main()
