"""Cost per streamed chunk, from SSE lines to finished tool calls: ours next to the openai SDK.

Run: ``python benchmarks/bench_streaming.py [--rounds N]``.

Workload: a synthetic stream shaped like a recorded gpt-4o stream (role chunk; per call a header
delta with index, id, type, name and ``arguments: ""``, then the arguments in 4-character
fragments; a finish chunk; a usage-only chunk; ``[DONE]``) with 3 parallel calls and ~320-character
arguments (~250 chunks), and a long variant with 10x longer arguments (~2,400 chunks).

Candidates, each fed the same SSE lines:

* **tamma-tools**: ``StreamAccumulator.feed_line`` per line, then ``finish()`` and ``tool_calls``.
* **openai SDK**: what ``openai.Stream`` plus ``ChatCompletionStreamState`` do: the SDK's
  ``SSEDecoder.decode`` per line, ``json.loads`` of the data, ``construct_type`` into a
  ``ChatCompletionChunk``, ``ChatCompletionStreamState.handle_chunk``, then
  ``get_final_completion()``.
* **floor**: a hand-written minimum for the machine's speed: ``data:`` prefix check,
  ``orjson.loads``, arguments collected per index and joined; no events, no quirks.
* **tamma-tools, parsed chunks**: ``feed_chunk`` on dicts already parsed (no SSE, no JSON), for
  reference.

Rounds are interleaved and shuffled; each sample is the time per chunk of a batch of whole streams.
The table shows medians, the IQR, the SDK's median per-round ratio to ours and, per candidate, the
long stream's per-chunk cost over the short one's (1.00 = flat).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson
from openai._models import construct_type
from openai._streaming import SSEDecoder
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from tamma_tools.provider.accumulator import StreamAccumulator

CALLS = 3
FRAGMENT = 4


def _arguments(call: int, scale: int) -> str:
    items = [
        {
            "city": f"City number {call}-{i} in the northern region",
            "days": i % 14 + 1,
            "units": "metric",
        }
        for i in range(4 * scale)
    ]
    return orjson.dumps({"query": f"forecast batch {call}", "items": items}).decode()


def build_stream(scale: int) -> tuple[list[str], list[dict[str, Any]], list[tuple[str, str, str]]]:
    """SSE lines, the parsed chunks, and the expected ``(id, name, arguments)`` per call."""
    base = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1727346178,
        "model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_5050236cbd",
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            **base,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    chunks = [chunk({"role": "assistant", "content": None})]
    expected = []
    for call in range(CALLS):
        call_id, name, arguments = f"call_bench{call:014d}", f"get_forecast_{call}", ""
        arguments = _arguments(call, scale)
        expected.append((call_id, name, arguments))
        header = {
            "index": call,
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        chunks.append(chunk({"tool_calls": [header]}))
        for start in range(0, len(arguments), FRAGMENT):
            piece = arguments[start : start + FRAGMENT]
            chunks.append(
                chunk({"tool_calls": [{"index": call, "function": {"arguments": piece}}]})
            )
    chunks.append(chunk({}, "tool_calls"))
    usage = {"prompt_tokens": 80, "completion_tokens": 300, "total_tokens": 380}
    chunks.append({**base, "choices": [], "usage": usage})
    lines: list[str] = []
    for item in chunks:
        lines += ["data: " + orjson.dumps(item).decode(), ""]
    lines += ["data: [DONE]", ""]
    return lines, chunks, expected


def run_ours(lines: list[str]) -> list[tuple[str, str, str]]:
    accumulator = StreamAccumulator()
    feed = accumulator.feed_line
    for line in lines:
        feed(line)
    accumulator.finish()
    return [(c.id, c.name, c.arguments) for c in accumulator.tool_calls]


def run_ours_parsed(chunks: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    accumulator = StreamAccumulator()
    feed = accumulator.feed_chunk
    for item in chunks:
        feed(item)
    accumulator.finish()
    return [(c.id, c.name, c.arguments) for c in accumulator.tool_calls]


def run_floor(lines: list[str]) -> list[tuple[str, str, str]]:
    calls: dict[int, list[Any]] = {}
    for line in lines:
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        for choice in orjson.loads(line[6:])["choices"]:
            for delta in choice["delta"].get("tool_calls") or ():
                call = calls.get(delta["index"])
                if call is None:
                    call = calls[delta["index"]] = [delta["id"], delta["function"]["name"], []]
                call[2].append(delta["function"]["arguments"])
    return [(i, n, "".join(parts)) for i, n, parts in calls.values()]


def run_sdk(lines: list[str]) -> list[tuple[str, str, str]]:
    decoder = SSEDecoder()
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for line in lines:
        sse = decoder.decode(line)
        if sse is None:
            continue
        if sse.data.startswith("[DONE]"):
            break
        data = json.loads(sse.data)
        state.handle_chunk(construct_type(type_=ChatCompletionChunk, value=data))
    completion = state.get_final_completion()
    calls = completion.choices[0].message.tool_calls or []
    return [(c.id, c.function.name, c.function.arguments) for c in calls]  # type: ignore[union-attr]


def _sample(run: Callable[[], object], repeat: int, chunks: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(repeat):
        run()
    return (time.perf_counter_ns() - start) / 1000 / repeat / chunks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    options = parser.parse_args()

    streams = {"short": build_stream(1), "long": build_stream(10)}
    candidates: dict[str, Callable[[tuple[Any, ...]], object]] = {
        "tamma-tools (SSE lines)": lambda s: run_ours(s[0]),
        "openai SDK (SSE lines)": lambda s: run_sdk(s[0]),
        "tamma-tools (parsed chunks)": lambda s: run_ours_parsed(s[1]),
        "floor (SSE line, orjson, join)": lambda s: run_floor(s[0]),
    }
    for length, stream in streams.items():
        for name, run in candidates.items():
            assert run(stream) == stream[2], f"{name} accumulated wrong calls ({length})"

    # Each sample should take ~20 ms or more; the SDK is ~100x slower, so it runs fewer streams.
    repeats = {
        "tamma-tools (SSE lines)": 20,
        "tamma-tools (parsed chunks)": 40,
        "openai SDK (SSE lines)": 1,
        "floor (SSE line, orjson, join)": 40,
    }
    samples: dict[tuple[str, str], list[float]] = {
        (n, length): [] for n in candidates for length in streams
    }
    ratios: dict[str, list[float]] = {length: [] for length in streams}
    floor_ratios: dict[str, list[float]] = {length: [] for length in streams}
    for _ in range(options.rounds):
        order = [(n, length) for n in candidates for length in streams]
        random.shuffle(order)
        this_round: dict[tuple[str, str], float] = {}
        for name, length in order:
            stream = streams[length]
            chunks = len(stream[1])
            repeat = repeats[name] if length == "short" else max(1, repeats[name] // 10)
            run = candidates[name]
            this_round[(name, length)] = _sample(
                lambda run=run, stream=stream: run(stream),  # type: ignore[misc]
                repeat,
                chunks,
            )
        for key, value in this_round.items():
            samples[key].append(value)
        for length in streams:
            floor_ratios[length].append(
                this_round[("tamma-tools (SSE lines)", length)]
                / this_round[("floor (SSE line, orjson, join)", length)]
            )
            ratios[length].append(
                this_round[("openai SDK (SSE lines)", length)]
                / this_round[("tamma-tools (SSE lines)", length)]
            )

    print(
        f"streams: short {len(streams['short'][1])} chunks, long {len(streams['long'][1])} chunks;"
        f" {options.rounds} interleaved rounds"
    )
    print(
        "| candidate | stream | median µs/chunk | IQR | SDK / ours | ours / floor |"
        " long / short per chunk |"
    )
    print("|---|---|--:|--:|--:|--:|--:|")
    for name in candidates:
        short = statistics.median(samples[(name, "short")])
        long = statistics.median(samples[(name, "long")])
        for length in streams:
            values = samples[(name, length)]
            median = statistics.median(values)
            q = statistics.quantiles(values, n=4)
            sdk = f"{statistics.median(ratios[length]):.0f}x" if name.startswith("openai") else ""
            floor = (
                f"{statistics.median(floor_ratios[length]):.2f}"
                if name == "tamma-tools (SSE lines)"
                else ""
            )
            flat = f"{long / short:.2f}" if length == "long" else ""
            print(
                f"| {name} | {length} | {median:.2f} | {(q[2] - q[0]) / median:.0%} | {sdk} | "
                f"{floor} | {flat} |"
            )
    print("SDK / ours and ours / floor are medians of the per-round ratios.")


if __name__ == "__main__":
    main()
