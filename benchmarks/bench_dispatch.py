"""Per-call cost of dispatching one tool call, ours next to a floor and the peers, in one run.

Run: ``python benchmarks/bench_dispatch.py`` (install the ``bench`` extra to include
openai-agents and langchain-core). Candidates are timed in interleaved, shuffled rounds; the
table gives medians and each row's median ratio to the floor measured in the same round.

Workload (see the project's performance research): ``get_forecast`` with a 4-property schema
(string enum, bounded integer, optional string array, nested object), 92-byte arguments.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import jsonschema_rs
import orjson
from pydantic import BaseModel

from tamma_tools import CallerContext, RateLimit, ToolDefinition
from tamma_tools.events import CallRecord
from tamma_tools.manager import FunctionCallingManager, ManagerConfig, Policy

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "enum": ["Paris", "Oslo", "Lima", "Tokyo"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 14},
        "fields": {"type": "array", "items": {"type": "string"}},
        "location": {
            "type": "object",
            "properties": {"country": {"type": "string"}, "region": {"type": "string"}},
            "required": ["country", "region"],
            "additionalProperties": False,
        },
    },
    "required": ["city", "days", "location"],
    "additionalProperties": False,
}
ARGS = (
    '{"city":"Oslo","days":5,"fields":["temp","wind"],"location":{"country":"NO","region":"Ost"}}'
)
RESULT = {"city": "Oslo", "days": 5, "high": 12, "low": 3, "wind": 4, "summary": "clear"}


class Location(BaseModel):
    country: str
    region: str


async def peer_forecast(
    city: Literal["Paris", "Oslo", "Lima", "Tokyo"],
    days: int,
    location: Location,
    fields: list[str] | None = None,
) -> dict[str, Any]:
    """Forecast."""
    return RESULT


async def get_forecast(
    city: str, days: int, location: dict[str, str], fields: list[str] | None = None
) -> dict[str, Any]:
    return RESULT


def tool_call(call_id: str = "call_1") -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": "get_forecast", "arguments": ARGS},
    }


def definition(**meta: Any) -> ToolDefinition:
    return ToolDefinition.model_validate(
        {
            "function": {"name": "get_forecast", "description": "Forecast.", "parameters": SCHEMA},
            "metadata": {"isolation": "in_process", **meta},
        }
    )


class CountingObserver:
    def __init__(self) -> None:
        self.n = 0

    def on_call_started(self, call_id: str, tool: str, context: CallerContext) -> None:
        pass

    def on_call_finished(self, record: CallRecord) -> None:
        self.n += 1


def build_candidates() -> dict[str, Callable[[], Awaitable[Any]]]:
    validator = jsonschema_rs.validator_for(SCHEMA)

    async def floor() -> Any:
        args = orjson.loads(ARGS)
        if not validator.is_valid(args):
            raise ValueError
        out = await get_forecast(**args)
        return {"role": "tool", "tool_call_id": "call_1", "content": orjson.dumps(out).decode()}

    bare = FunctionCallingManager(config=ManagerConfig(history_size=0))
    bare.register_tool(definition(), get_forecast)

    full = FunctionCallingManager(
        config=ManagerConfig(history_size=1000), policy=Policy({"forecaster": ["weather:read"]})
    )
    full.register_tool(
        definition(
            permissions=["weather:read"],
            timeout_s=5,
            rate_limit=RateLimit(calls_per_minute=10**9, calls_per_hour=10**9),
        ),
        get_forecast,
    )
    full.add_observer(CountingObserver())
    full.on("*", lambda record: None)
    ctx = CallerContext(user_id="u1", session_id=None, roles=frozenset({"forecaster"}))

    async def ours_bare() -> Any:
        result = await bare.execute_function_call(tool_call())
        return result.to_message()

    async def ours_full() -> Any:
        result = await full.execute_function_call(tool_call(), ctx)
        return result.to_message()

    candidates: dict[str, Callable[[], Awaitable[Any]]] = {
        "floor: orjson + jsonschema-rs + call + orjson": floor,
        "tamma-tools, bare": ours_bare,
        "tamma-tools, permissions + rate limit + timeout + events": ours_full,
    }
    try:
        from agents import function_tool
        from agents.tool_context import ToolContext

        agents_tool = function_tool(peer_forecast, name_override="get_forecast")

        async def openai_agents() -> Any:
            tctx = ToolContext(
                context=None, tool_name="get_forecast", tool_call_id="call_1", tool_arguments=ARGS
            )
            return await agents_tool.on_invoke_tool(tctx, ARGS)

        candidates["openai-agents FunctionTool.on_invoke_tool"] = openai_agents
    except ImportError:
        print("openai-agents not installed: pip install -e '.[bench]' to compare")
    try:
        from langchain_core.tools import StructuredTool

        def lc_forecast(
            city: Literal["Paris", "Oslo", "Lima", "Tokyo"],
            days: int,
            location: Location,
            fields: list[str] | None = None,
        ) -> dict[str, Any]:
            """Forecast."""
            return RESULT

        lc_tool = StructuredTool.from_function(lc_forecast, name="get_forecast")

        async def langchain() -> Any:
            return lc_tool.invoke(
                {
                    "name": "get_forecast",
                    "args": orjson.loads(ARGS),
                    "id": "call_1",
                    "type": "tool_call",
                }
            )

        candidates["langchain-core StructuredTool.invoke"] = langchain
    except ImportError:
        print("langchain-core not installed: pip install -e '.[bench]' to compare")
    return candidates


async def time_batch(fn: Callable[[], Awaitable[Any]], budget_s: float) -> float:
    """Median-friendly sample: µs per call over a batch that lasts about ``budget_s``."""
    n = 0
    start = time.perf_counter()
    while True:
        for _ in range(50):
            await fn()
        n += 50
        elapsed = time.perf_counter() - start
        if elapsed >= budget_s:
            return elapsed / n * 1e6


async def main(rounds: int = 21, budget_s: float = 0.03) -> None:
    candidates = build_candidates()
    for fn in candidates.values():  # check every candidate works before timing it
        await fn()
    floor_name = next(iter(candidates))
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    ratios: dict[str, list[float]] = {name: [] for name in candidates}
    agents_name = "openai-agents FunctionTool.on_invoke_tool"
    vs_agents: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        order = list(candidates)
        random.shuffle(order)
        this_round = {name: await time_batch(candidates[name], budget_s) for name in order}
        for name, us in this_round.items():
            samples[name].append(us)
            ratios[name].append(us / this_round[floor_name])
            if agents_name in this_round:
                vs_agents[name].append(us / this_round[agents_name])
    print(f"\nDispatch one tool call ({rounds} interleaved rounds; µs per call, medians)\n")
    header = f"{'candidate':58} {'median µs':>10} {'IQR %':>7} {'x floor':>8} {'x agents':>9}"
    print(header)
    print("-" * len(header))
    for name in candidates:
        values = sorted(samples[name])
        median = statistics.median(values)
        q1, q3 = values[len(values) // 4], values[(3 * len(values)) // 4]
        agents_ratio = (
            f"{statistics.median(vs_agents[name]):9.2f}" if vs_agents[name] else f"{'-':>9}"
        )
        print(
            f"{name:58} {median:10.2f} {100 * (q3 - q1) / median:7.1f} "
            f"{statistics.median(ratios[name]):8.2f} {agents_ratio}"
        )
    print("\nTargets: bare <= 0.5x openai-agents; with everything on <= 1x openai-agents.")


if __name__ == "__main__":
    asyncio.run(main())
