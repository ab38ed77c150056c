"""Overhead of one whole function-calling run (two model turns, one tool call), ours next to
openai-agents' ``Runner.run``, in one run.

Run: ``python benchmarks/bench_loop.py`` (``pip install openai-agents``, or the ``bench`` extra, to
include the peer; without it the script says so and times ours alone).

Both sides get a scripted model that answers at once, so the numbers are pure loop overhead:
- ours: the real ``OpenAIProvider`` and the real ``openai`` SDK client, whose HTTP client is handed
  an in-memory transport (``MockTransport``) returning canned response bodies. The SDK's request
  building, auth headers and response handling are therefore inside our numbers;
- openai-agents: a stateless scripted ``Model`` returning typed output items (no SDK, no HTTP).

Turn 1 asks for ``add(a=2, b=3)``; the loop executes it through the manager (in-process async
tool: lookup, strict parse, validation, policy, rate limit, execute, record) and sends the result
back; turn 2 answers. Rows are timed in interleaved, shuffled rounds (``_timing.measure``); the
last column is how many times faster each row is than openai-agents, as the median of per-round
ratios. Target: at least 10x leaner than openai-agents.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import openai
import orjson

from _timing import Stats, measure, print_table
from tamma_tools.function_tool import tool
from tamma_tools.manager import FunctionCallingManager
from tamma_tools.provider import MessageRequest, OpenAIProvider, ProviderConfig
from tamma_tools.provider.transport import RawTransport

try:
    import httpx2 as http
except ImportError:  # older SDKs use httpx
    import httpx as http  # type: ignore[no-redef]

MESSAGES = [{"role": "user", "content": "What is 2 + 3?"}]
ARGS = '{"a":2,"b":3}'
USAGE = {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}


def _completion(message: dict[str, Any], finish: str) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 0,
            "model": "bench",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": USAGE,
        }
    )


CALL = {"id": "call_bench", "type": "function", "function": {"name": "add", "arguments": ARGS}}
TURN1_JSON = _completion({"role": "assistant", "content": None, "tool_calls": [CALL]}, "tool_calls")
CALLS4 = [{**CALL, "id": f"call_bench_{i}"} for i in range(4)]
TURN1_JSON_4 = _completion(
    {"role": "assistant", "content": None, "tool_calls": CALLS4}, "tool_calls"
)
TURN2_JSON = _completion({"role": "assistant", "content": "2 + 3 = 5."}, "stop")


def _sse(chunks: list[dict[str, Any]]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "bench",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


TURN1_SSE = _sse(
    [
        _chunk({"role": "assistant", "content": None}),
        _chunk({"tool_calls": [{"index": 0, "id": "call_bench", "type": "function",
                                "function": {"name": "add", "arguments": ""}}]}),
        *[_chunk({"tool_calls": [{"index": 0, "function": {"arguments": ARGS[i : i + 4]}}]})
          for i in range(0, len(ARGS), 4)],
        _chunk({}, "tool_calls"),
        {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "choices": [], "usage": USAGE},
    ]
)  # fmt: skip
TURN2_SSE = _sse(
    [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "2 + 3 = 5."}),
        _chunk({}, "stop"),
    ]
)


def _handler(request: Any) -> Any:
    """The scripted model: a tool call until a tool result is in the history, then the answer."""
    body = orjson.loads(request.content)
    answered = b'"role":"tool"' in request.content
    if body.get("stream"):
        return http.Response(
            200,
            content=TURN2_SSE if answered else TURN1_SSE,
            headers={"content-type": "text/event-stream"},
        )
    first = TURN1_JSON_4 if body.get("model") == "bench-4" else TURN1_JSON
    return http.Response(
        200,
        content=TURN2_JSON if answered else first,
        headers={"content-type": "application/json"},
    )


@tool(isolation="in_process")
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def _ours() -> tuple[OpenAIProvider, openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(
        api_key="sk-bench",
        base_url="http://model.invalid/v1",
        max_retries=0,
        http_client=http.AsyncClient(transport=http.MockTransport(_handler)),
    )
    manager = FunctionCallingManager()
    manager.register_tool(add)
    provider = OpenAIProvider(ProviderConfig(model="bench"), manager=manager, client=client)
    return provider, client


def _agents_runner() -> Any:
    """openai-agents with a stateless scripted Model, or None when it is not installed."""
    try:
        from agents import Agent, ModelSettings, RunConfig, Runner, function_tool
        from agents.items import ModelResponse
        from agents.models.interface import Model
        from agents.usage import Usage
        from openai.types.responses import (
            ResponseFunctionToolCall,
            ResponseOutputMessage,
            ResponseOutputText,
        )
    except ImportError:
        return None

    call = ResponseFunctionToolCall(
        type="function_call", id="fc_bench", call_id="call_bench", name="add", arguments=ARGS,
        status="completed",
    )  # fmt: skip
    answer = ResponseOutputMessage(
        type="message", id="msg_bench", role="assistant", status="completed",
        content=[ResponseOutputText(type="output_text", text="2 + 3 = 5.", annotations=[])],
    )  # fmt: skip

    class ScriptedModel(Model):
        async def get_response(
            self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any
        ) -> Any:
            answered = isinstance(input, list) and any(
                isinstance(i, dict) and i.get("type") == "function_call_output" for i in input
            )
            usage = Usage(requests=1, input_tokens=50, output_tokens=10, total_tokens=60)
            return ModelResponse(
                output=[answer if answered else call], usage=usage, response_id=None
            )

        def stream_response(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError

    @function_tool
    async def agents_add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    agents_add.name = "add"
    agent = Agent(name="bench", model=ScriptedModel(), tools=[agents_add],
                  model_settings=ModelSettings())  # fmt: skip
    config = RunConfig(tracing_disabled=True)

    async def run() -> Any:
        return await Runner.run(agent, "What is 2 + 3?", run_config=config)

    return run


def main() -> int:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    provider, client = _ours()
    run = loop.run_until_complete

    async def noop() -> None:
        return None

    transport = RawTransport(client, 600.0)
    turn_bodies = [
        {"model": "bench", "messages": MESSAGES},
        {"model": "bench", "messages": [*MESSAGES, {"role": "tool", "tool_call_id": "x"}]},
    ]

    async def sdk_post() -> None:
        for body in turn_bodies:
            response = await client.post("/chat/completions", cast_to=http.Response, body=body)
            orjson.loads(response.content)

    async def lean_post() -> None:
        for body in turn_bodies:
            await transport.post_json("/chat/completions", body)

    async def complete() -> None:
        result = await provider.complete(MessageRequest(messages=MESSAGES))
        assert result.content == "2 + 3 = 5.", result

    async def complete_4() -> None:
        result = await provider.complete(MessageRequest(messages=MESSAGES, model="bench-4"))
        assert len(result.tool_results) == 4, result

    async def send_message() -> None:
        stream = provider.send_message(MessageRequest(messages=MESSAGES))
        async for _ in stream:
            pass
        assert stream.result().content == "2 + 3 = 5."

    candidates = {
        "floor: run_until_complete(noop)": lambda: run(noop()),
        "reference: 2 x SDK client.post (its whole request pipeline)": lambda: run(sdk_post()),
        "reference: 2 x our request path (SDK's HTTP client and headers)": lambda: run(lean_post()),
        "tamma-tools complete() (2 turns, 1 tool call)": lambda: run(complete()),
        "tamma-tools complete() (2 turns, 4 parallel tool calls)": lambda: run(complete_4()),
        "tamma-tools send_message() streamed (2 turns, 1 tool call)": lambda: run(send_message()),
    }
    agents = _agents_runner()
    baseline = None
    if agents is None:
        print("openai-agents is not installed (pip install openai-agents): timing ours alone.")
    else:
        result = run(agents())
        assert result.final_output == "2 + 3 = 5.", result.final_output
        candidates["openai-agents Runner.run (scripted Model)"] = lambda: run(agents())
        baseline = "openai-agents Runner.run (scripted Model)"
    run(complete())
    run(send_message())
    stats: dict[str, Stats] = measure(candidates, rounds=15, baseline=baseline, batch_s=0.1)
    print_table(
        "one whole run: 2 model turns, 1 tool call (µs per run)",
        stats,
        baseline=baseline,
        speedup=True,
    )
    ours = stats["tamma-tools complete() (2 turns, 1 tool call)"].median_us
    wire = stats["reference: 2 x our request path (SDK's HTTP client and headers)"].median_us
    four = stats["tamma-tools complete() (2 turns, 4 parallel tool calls)"].median_us
    print(f"\ncomplete() minus its two requests: {ours - wire:,.1f} µs per run (the loop itself)")
    print(f"each extra parallel tool call: {(four - ours) / 3:,.1f} µs")
    if baseline is not None:
        ratio = stats["tamma-tools complete() (2 turns, 1 tool call)"].ratio
        leaner = 1.0 / ratio if ratio else float("nan")
        verdict = "met" if leaner >= 10 else "NOT met"
        print(f"target >= 10x leaner than openai-agents (complete()): {leaner:,.1f}x ({verdict})")
    loop.run_until_complete(client.close())
    loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
