"""Any chunking of the same turn gives the same tool calls (the accumulator's core promise).

Hypothesis draws a turn (text plus up to three calls with JSON-object arguments) and renders it
the ways real servers do: arguments split anywhere or sent whole (C11), indexes dense, sparse
(C4) or absent (C2), ids once, repeated (C7), ``""`` on continuations (C6) or never sent (C5),
names once, repeated (C9) or ``""`` (C10), parallel calls interleaved, empty deltas, ``choices: []``
chunks (A5, B3) and keep-alive comments (A1) inserted, with or without ``[DONE]`` (A9), fed as
lines or as raw body pieces split at arbitrary byte offsets.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tamma_tools.provider.accumulator import StreamAccumulator
from tamma_tools.provider.events import ToolCallDone

NAMES = ["get_weather", "search", "read_file", "f"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)


def _pieces(draw: Any, text: str) -> list[str]:
    """``text`` cut at any set of positions (possibly none)."""
    cuts = (
        sorted(draw(st.sets(st.integers(1, max(1, len(text) - 1)), max_size=6)))
        if len(text) > 1
        else []
    )
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if a < b]


@st.composite
def rendered_turns(draw: Any) -> tuple[list[tuple[str | None, str, str]], str, list[str], bool]:
    calls = [
        (
            f"call_{i}_{draw(st.text('abcXYZ09', min_size=1, max_size=6))}",
            draw(st.sampled_from(NAMES)),
            orjson.dumps(draw(json_objects)).decode(),
        )
        for i in range(draw(st.integers(0, 3)))
    ]
    text = draw(st.text(max_size=16))
    index_mode = draw(st.sampled_from(["dense", "sparse", "none"]))
    id_mode = draw(
        st.sampled_from(
            ["first", "every", "empty", "never"]
            if index_mode != "none"
            else ["first", "every", "empty"]
        )
    )
    name_mode = draw(st.sampled_from(["first", "every", "empty"]))
    offset = draw(st.integers(1, 3)) if index_mode == "sparse" else 0

    per_call: list[list[dict[str, Any]]] = []
    for number, (call_id, name, arguments) in enumerate(calls):
        pieces = _pieces(draw, arguments)
        if draw(st.booleans()):
            head_args, rest = (
                pieces[0] if len(pieces) == 1 else "",
                pieces if len(pieces) > 1 else [],
            )
        else:
            head_args, rest = "".join(pieces[:1]), pieces[1:]
        deltas = []
        for position, piece in enumerate([head_args, *rest]):
            delta: dict[str, Any] = {"function": {"arguments": piece}}
            if index_mode != "none":
                delta["index"] = number + offset
            first = position == 0
            if id_mode != "never" and (first or id_mode == "every"):
                delta["id"] = call_id
            elif id_mode == "empty":
                delta["id"] = ""
            if first or name_mode == "every":
                delta["function"]["name"] = name
                delta["type"] = "function"
            elif name_mode == "empty":
                delta["function"]["name"] = ""
            deltas.append(delta)
        per_call.append(deltas)

    # Interleave parallel calls (only when an index says which call a delta belongs to), keeping
    # each call's own order and the order in which calls start.
    ordered: list[dict[str, Any]] = []
    queues = [list(d) for d in per_call]
    started = 0
    while any(queues):
        available = [i for i in range(started) if queues[i]]
        if started < len(queues):
            available.append(started)
        if index_mode == "none":
            available = [min(available)]
        pick = available[draw(st.integers(0, len(available) - 1))]
        if pick == started:
            started += 1
        ordered.append(queues[pick].pop(0))

    def chunk(delta: dict[str, Any] | None, finish: str | None = None) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
        if delta is not None:
            choice["delta"] = delta
        return {
            "id": f"chatcmpl-{draw(st.integers(0, 3))}",
            "object": "chat.completion.chunk",
            "choices": [choice],
        }

    fillers = [
        lambda: chunk({}),
        lambda: {"choices": []},
        lambda: chunk({"content": ""}),
        lambda: chunk({"role": "assistant"}),
        lambda: chunk({"tool_calls": []}),
        lambda: chunk(None),
    ]
    chunks = [chunk({"role": "assistant", "content": piece}) for piece in _pieces(draw, text)]
    chunks += [chunk({"tool_calls": [delta]}) for delta in ordered]
    finish = draw(st.sampled_from(["tool_calls", "stop"])) if calls else "stop"
    if calls and draw(st.booleans()):
        chunks[-1]["choices"][0]["finish_reason"] = finish  # C11: finish rides on the last delta
    else:
        chunks.append(chunk({}, finish))
    for _ in range(draw(st.integers(0, 4))):
        chunks.insert(draw(st.integers(0, len(chunks))), draw(st.sampled_from(fillers))())
    chunks.append({"choices": [], "usage": {"total_tokens": 5}})

    lines: list[str] = []
    for item in chunks:
        if draw(st.booleans()) and draw(st.booleans()):
            lines += [": keep-alive", ""]
        lines += [("data: " if draw(st.booleans()) else "data:") + orjson.dumps(item).decode(), ""]
    if draw(st.booleans()):
        lines += ["data: [DONE]", ""]
    expected = [
        (None if id_mode == "never" else call_id, name, arguments)
        for call_id, name, arguments in calls
    ]
    return expected, text, lines, draw(st.booleans())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rendered_turns(), st.data())
def test_any_chunking_gives_the_same_calls(turn: Any, data: st.DataObject) -> None:
    expected, text, lines, as_body = turn
    generated = itertools.count()
    accumulator = StreamAccumulator(id_factory=lambda: f"call_gen{next(generated)}")
    events: list[Any] = []
    if as_body:
        body = "".join(line + data.draw(st.sampled_from(["\n", "\r\n"])) for line in lines).encode()
        cuts = sorted(data.draw(st.sets(st.integers(1, len(body) - 1), max_size=12)))
        for start, stop in itertools.pairwise([0, *cuts, len(body)]):
            events += accumulator.feed_text(body[start:stop])
    else:
        for line in lines:
            events += accumulator.feed_line(line)
    events += accumulator.finish()

    assert accumulator.error is None
    numbers = itertools.count()
    want = [
        (call_id or f"call_gen{next(numbers)}", name, arguments)
        for call_id, name, arguments in expected
    ]
    got = [(c.id, c.name, c.arguments) for c in accumulator.tool_calls]
    assert got == want
    assert [
        (e.call.id, e.call.name, e.call.arguments) for e in events if isinstance(e, ToolCallDone)
    ] == want
    assert accumulator.message()["content"] == (text or None)
    assert accumulator.finish_reason == ("tool_calls" if expected else "stop")
    assert accumulator.usage == {"total_tokens": 5}
