"""The stream accumulator absorbs each provider quirk (QUIRKS.md ids in the test names)."""

from __future__ import annotations

import itertools
import json
import logging
import re
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tamma_tools.errors import ProviderError
from tamma_tools.provider.accumulator import (
    ERROR_EVENT,
    INVALID_CHUNK,
    STREAM_TRUNCATED,
    StreamAccumulator,
    message_from_completion,
    new_call_id,
)
from tamma_tools.provider.events import (
    ReasoningDelta,
    RefusalDelta,
    StreamError,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallDone,
    ToolCallStarted,
)
from tamma_tools.provider.sse import SSEMessage, SSEParser

GENERATED_ID = re.compile(r"^call_[0-9a-f]{24}$")


def chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, index: int = 0
) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": index, "finish_reason": finish}
    if delta is not None:
        choice["delta"] = delta
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [choice]}


def tc(**fields: Any) -> dict[str, Any]:
    """One tool-call delta; ``name``/``arguments`` go under ``function``."""
    delta: dict[str, Any] = {}
    function: dict[str, Any] = {}
    for key, value in fields.items():
        if key in ("name", "arguments"):
            function[key] = value
        else:
            delta[key] = value
    if function:
        delta["function"] = function
    return delta


def calls_delta(*deltas: dict[str, Any]) -> dict[str, Any]:
    return {"tool_calls": list(deltas)}


def run(chunks: list[dict[str, Any]], **options: Any) -> tuple[StreamAccumulator, list[Any]]:
    accumulator = StreamAccumulator(**options)
    events: list[Any] = []
    for item in chunks:
        events += accumulator.feed_chunk(item)
    events += accumulator.finish()
    return accumulator, events


def simple(accumulator: StreamAccumulator) -> list[tuple[str, str, Any]]:
    return [(c.id, c.name, json.loads(c.arguments)) for c in accumulator.tool_calls]


def counter_ids() -> Any:
    numbers = itertools.count()
    return lambda: f"call_gen{next(numbers)}"


# ---------------------------------------------------------------- reference shape


def test_openai_reference_stream_gives_events_message_and_calls() -> None:  # C1
    acc, events = run(
        [
            chunk({"role": "assistant", "content": None}),
            chunk(calls_delta(tc(index=0, id="call_a", type="function", name="get", arguments=""))),
            chunk(calls_delta(tc(index=0, arguments='{"ci'))),
            chunk(calls_delta(tc(index=0, arguments='ty": "Oslo"}'))),
            chunk(calls_delta(tc(index=1, id="call_b", type="function", name="put", arguments=""))),
            chunk(calls_delta(tc(index=1, arguments="{}"))),
            chunk({}, "tool_calls"),
            {"choices": [], "usage": {"total_tokens": 7}},
        ]
    )
    assert [type(e) for e in events] == [
        ToolCallStarted,
        ToolCallArgumentsDelta,
        ToolCallArgumentsDelta,
        ToolCallStarted,
        ToolCallArgumentsDelta,
        ToolCallDone,
        ToolCallDone,
    ]
    assert events[0] == ToolCallStarted(0, "call_a", "get")
    assert events[3] == ToolCallStarted(1, "call_b", "put")
    assert simple(acc) == [("call_a", "get", {"city": "Oslo"}), ("call_b", "put", {})]
    assert acc.finish_reason == "tool_calls"
    assert acc.usage == {"total_tokens": 7}
    assert acc.error is None
    assert acc.message() == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_a",
                "type": "function",
                "function": {"name": "get", "arguments": '{"city": "Oslo"}'},
            },
            {"id": "call_b", "type": "function", "function": {"name": "put", "arguments": "{}"}},
        ],
    }


def test_text_answer_gives_text_deltas_and_a_plain_message() -> None:
    acc, events = run(
        [
            chunk({"role": "assistant", "content": "Hel"}),
            chunk({"content": "lo"}),
            chunk({}, "stop"),
        ]
    )
    assert events == [TextDelta("Hel", 0), TextDelta("lo", 0)]
    assert acc.message() == {"role": "assistant", "content": "Hello"}
    assert acc.tool_calls == []
    assert acc.finish_reason == "stop"


# ---------------------------------------------------------------- index


def test_missing_index_new_id_opens_call_and_no_id_continues_last() -> None:  # C2
    acc, _ = run(
        [
            chunk(calls_delta(tc(id="a1", name="read", arguments='{"path":'))),
            chunk(calls_delta(tc(arguments='"x"}'))),
            chunk(calls_delta(tc(id="a2", name="read", arguments='{"path":"y"}'))),
            chunk({}, "tool_calls"),
        ]
    )
    assert simple(acc) == [("a1", "read", {"path": "x"}), ("a2", "read", {"path": "y"})]


def test_missing_index_several_calls_in_one_delta_use_their_position() -> None:  # C2
    acc, _ = run(
        [
            chunk(calls_delta(tc(name="a", arguments="{}"), tc(name="b", arguments='{"k":1}'))),
            chunk({}, "stop"),
        ],
        id_factory=counter_ids(),
    )
    assert simple(acc) == [("call_gen0", "a", {}), ("call_gen1", "b", {"k": 1})]


def test_index_always_zero_with_new_ids_gives_parallel_calls() -> None:  # C3 (ollama #15457)
    acc, _ = run(
        [
            chunk(calls_delta(tc(index=0, id="c1", name="weather", arguments='{"city":"Oslo"}'))),
            chunk(calls_delta(tc(index=0, id="c2", name="weather", arguments='{"city":"Lima"}'))),
            chunk({}, "tool_calls"),
        ]
    )
    assert simple(acc) == [("c1", "weather", {"city": "Oslo"}), ("c2", "weather", {"city": "Lima"})]


def test_glued_objects_under_one_index_are_split(
    caplog: pytest.LogCaptureFixture,
) -> None:  # C3 (lens #49)
    with caplog.at_level(logging.WARNING, logger="tamma_tools.provider.accumulator"):
        acc, events = run(
            [
                chunk(calls_delta(tc(index=0, id="c1", name="search", arguments='{"q": "a"}'))),
                chunk(calls_delta(tc(index=0, arguments='{"q": "b"}'))),
                chunk({}, "tool_calls"),
            ],
            id_factory=counter_ids(),
        )
    assert simple(acc) == [("c1", "search", {"q": "a"}), ("call_gen0", "search", {"q": "b"})]
    assert [e.call.id for e in events if isinstance(e, ToolCallDone)] == ["c1", "call_gen0"]
    assert "concatenated JSON objects" in caplog.text
    ids = [c["id"] for c in acc.message()["tool_calls"]]
    assert ids == ["c1", "call_gen0"]


def test_different_name_after_arguments_at_same_index_is_a_new_call() -> None:  # C3
    acc, _ = run(
        [
            chunk(calls_delta(tc(index=0, name="a", arguments='{"x":1}'))),
            chunk(calls_delta(tc(index=0, name="b", arguments='{"y":2}'))),
            chunk({}, "tool_calls"),
        ],
        id_factory=counter_ids(),
    )
    assert [(c.name, json.loads(c.arguments)) for c in acc.tool_calls] == [
        ("a", {"x": 1}),
        ("b", {"y": 2}),
    ]


def test_sparse_index_starting_at_one() -> None:  # C4
    acc, events = run(
        [
            chunk({"content": "Reading it."}),
            chunk(
                calls_delta(
                    tc(index=1, id="toolu_1", type="function", name="read_file", arguments="")
                )
            ),
            chunk(calls_delta(tc(index=1, arguments='{"path": "a.txt"}'))),
            chunk(calls_delta(tc(index=1, arguments=""))),  # C12
            chunk({}, "tool_calls"),
        ]
    )
    assert simple(acc) == [("toolu_1", "read_file", {"path": "a.txt"})]
    started = [e for e in events if isinstance(e, ToolCallStarted)]
    assert started == [ToolCallStarted(0, "toolu_1", "read_file")]  # our position, not the hint
    assert acc.snapshot()["choices"][0]["tool_calls"][0]["index"] == 1
    assert acc.message()["content"] == "Reading it."


# ---------------------------------------------------------------- ids


def test_no_id_anywhere_gets_one_generated_id_used_everywhere() -> None:  # C5
    acc, events = run(
        [
            chunk(calls_delta(tc(index=0, name="get_current_weather", arguments='{"location":'))),
            chunk(calls_delta(tc(index=0, name="get_current_weather", arguments='"Oslo"}'))),  # C9
            chunk({}, "tool_calls"),
        ]
    )
    (call,) = acc.tool_calls
    assert GENERATED_ID.match(call.id) and len(call.id) <= 40  # F2
    assert call.name == "get_current_weather"
    ids = {e.id for e in events if isinstance(e, ToolCallStarted | ToolCallArgumentsDelta)}
    ids |= {e.call.id for e in events if isinstance(e, ToolCallDone)}
    ids.add(acc.message()["tool_calls"][0]["id"])
    assert ids == {call.id}
    assert acc.tool_calls[0].id == call.id  # stable on every read


def test_generated_ids_are_unique_and_short() -> None:  # F2
    ids = {new_call_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(GENERATED_ID.match(i) and len(i) <= 40 for i in ids)


def test_empty_string_id_on_continuations_keeps_the_first() -> None:  # C6
    acc, _ = run(
        [
            chunk(
                calls_delta(
                    tc(
                        index=0,
                        id="call_q",
                        type="function",
                        name="weather",
                        arguments='{"location": ',
                    )
                )
            ),
            chunk(calls_delta(tc(index=0, id="", type="function", arguments='"SF"}'))),
            chunk(calls_delta(tc(index=0, id="", type="function", arguments=""))),
            chunk({}, "tool_calls"),
        ]
    )
    assert simple(acc) == [("call_q", "weather", {"location": "SF"})]


def test_same_id_repeated_on_every_delta_is_not_concatenated() -> None:  # C7
    acc, _ = run(
        [
            chunk(calls_delta(tc(index=0, id="call_123", name="f", arguments='{"a"'))),
            chunk(calls_delta(tc(index=0, id="call_123", arguments=":1}"))),
            chunk(calls_delta(tc(id="call_123", arguments=""))),
            chunk({}, "tool_calls"),
        ]
    )
    assert simple(acc) == [("call_123", "f", {"a": 1})]


def test_new_id_on_every_delta_without_name_is_the_same_call() -> None:  # C8
    acc, _ = run(
        [
            chunk(calls_delta(tc(index=0, id="x1", name="f", arguments='{"a"'))),
            chunk(calls_delta(tc(index=0, id="x2", arguments=":1}"))),
            chunk({}, "tool_calls"),
        ]
    )
    assert simple(acc) == [("x1", "f", {"a": 1})]


# ---------------------------------------------------------------- names and arguments


def test_growing_and_empty_names() -> None:  # C9, C10
    acc, _ = run(
        [
            chunk(calls_delta(tc(index=0, id="a", name="get_"))),
            chunk(calls_delta(tc(index=0, name="get_weather"))),  # a growing name replaces
            chunk(calls_delta(tc(index=0, name="", type="function", arguments="{}"))),
            chunk({}, "tool_calls"),
        ]
    )
    assert simple(acc) == [("a", "get_weather", {})]


def test_name_arriving_after_the_arguments() -> None:
    acc, events = run(
        [
            chunk(calls_delta(tc(index=0, id="a", arguments='{"k": 2}'))),
            chunk(calls_delta(tc(index=0, name="late"))),
            chunk({}, "tool_calls"),
        ]
    )
    assert simple(acc) == [("a", "late", {"k": 2})]
    assert ToolCallStarted(0, "a", "late") in events


def test_whole_call_and_finish_in_one_chunk() -> None:  # C11 (Mistral)
    whole = chunk(
        calls_delta(
            {"id": "gSIMJiOkT", "function": {"name": "weather", "arguments": '{"location": "SF"}'}}
        ),
        "tool_calls",
    )
    whole["usage"] = {"total_tokens": 3}
    acc, events = run([whole])
    assert simple(acc) == [("gSIMJiOkT", "weather", {"location": "SF"})]
    assert [type(e) for e in events] == [ToolCallStarted, ToolCallArgumentsDelta, ToolCallDone]
    assert acc.usage == {"total_tokens": 3}


def test_arguments_sent_as_an_object() -> None:  # Ollama, older vLLM
    acc, events = run(
        [
            chunk(calls_delta(tc(index=0, id="a", name="run", arguments={"command": "ls -a"}))),
            chunk({}, "tool_calls"),
        ]
    )
    assert acc.tool_calls[0].arguments == '{"command":"ls -a"}'
    assert ToolCallArgumentsDelta(0, "a", '{"command":"ls -a"}') in events


def test_missing_arguments_mean_no_parameters() -> None:  # E5
    acc, _ = run([chunk(calls_delta(tc(index=0, id="a", name="now"))), chunk({}, "tool_calls")])
    assert acc.tool_calls[0].arguments == "{}"


def test_invalid_arguments_are_kept_for_the_manager_but_replayed_as_valid_json() -> None:  # C13, F3
    acc, _ = run(
        [
            chunk(calls_delta(tc(index=0, id="a", name="f", arguments='{"a": 1'))),
            chunk({}, "tool_calls"),
        ]
    )
    assert acc.tool_calls[0].arguments == '{"a": 1'
    assert acc.message()["tool_calls"][0]["function"]["arguments"] == "{}"
    assert (
        acc.message(normalize_arguments=False)["tool_calls"][0]["function"]["arguments"]
        == '{"a": 1'
    )


def test_unknown_call_fields_are_echoed_on_replay() -> None:  # F4 (Gemini thought_signature)
    extra = {"google": {"thought_signature": "sig=="}}
    acc, _ = run(
        [
            chunk(calls_delta(tc(id="c", name="read", arguments="{}", extra_content=extra))),
            chunk({}, "stop"),
        ]
    )
    assert acc.tool_calls[0].model_extra == {"extra_content": extra}
    assert acc.message()["tool_calls"][0]["extra_content"] == extra


# ---------------------------------------------------------------- finish reasons


@pytest.mark.parametrize("raw", ["stop", "", None, "function_call"])
def test_finish_reason_with_tool_calls_is_tool_calls(raw: str | None) -> None:  # D1, D2, A7
    acc, _ = run(
        [
            chunk(calls_delta(tc(index=0, id="a", name="f", arguments="{}")), raw),
            chunk({}),
            {"choices": []},
        ]
    )
    assert acc.finish_reason == "tool_calls"
    assert acc.raw_finish_reason == raw


def test_length_is_kept_so_cut_off_arguments_are_not_run_blindly() -> None:
    acc, _ = run(
        [chunk(calls_delta(tc(index=0, id="a", name="f", arguments='{"a'))), chunk({}, "length")]
    )
    assert acc.finish_reason == "length"


def test_last_non_null_finish_reason_wins() -> None:  # A4, A8
    acc, _ = run(
        [
            chunk({"content": "a"}, "stop"),
            chunk({"content": "b"}, "stop"),
            chunk({}, "length"),
            chunk({}),
        ]
    )
    assert acc.raw_finish_reason == "length"
    assert acc.message()["content"] == "ab"


# ---------------------------------------------------------------- chunk shapes


def test_empty_choices_and_missing_delta_are_skipped() -> None:  # A5, B1, B2, B3
    acc, events = run(
        [
            {"id": "", "choices": [], "prompt_filter_results": []},
            chunk({"content": "Hi"}),
            {"choices": [], "usage": None},
            chunk(None, "stop"),
            {"choices": [{"index": 0, "content_filter_results": {}}]},
            {"choices": [], "usage": {"total_tokens": 9}},
        ]
    )
    assert events == [TextDelta("Hi", 0)]
    assert acc.usage == {"total_tokens": 9}
    assert acc.finish_reason == "stop"


def test_reasoning_and_content_parts_and_empty_strings() -> None:  # B7, B8, B9
    acc, events = run(
        [
            chunk(
                {"role": "assistant", "content": "", "refusal": "", "reasoning_content": "think "}
            ),
            chunk({"role": "assistant", "content": "", "reasoning": "more"}),
            chunk(
                {
                    "content": [
                        {"type": "text", "text": "An"},
                        {"type": "image_url"},
                        {"type": "text", "text": "swer"},
                    ]
                }
            ),
            chunk({}, "stop"),
        ]
    )
    assert events == [
        ReasoningDelta("think ", 0),
        ReasoningDelta("more", 0),
        TextDelta("Answer", 0),
    ]
    assert acc.reasoning == "think more"
    assert acc.message() == {"role": "assistant", "content": "Answer"}


def test_refusal() -> None:
    acc, events = run(
        [chunk({"refusal": "I can't"}), chunk({"refusal": " help."}), chunk({}, "stop")]
    )
    assert events == [RefusalDelta("I can't"), RefusalDelta(" help.")]
    assert acc.message() == {"role": "assistant", "content": None, "refusal": "I can't help."}


def test_other_choices_are_kept_apart_and_give_no_tool_events() -> None:
    acc, events = run(
        [
            chunk({"content": "zero"}, index=0),
            chunk(calls_delta(tc(index=0, id="b", name="f", arguments="{}")), index=1),
            chunk({}, "stop", index=0),
            chunk({}, "tool_calls", index=1),
        ]
    )
    assert acc.tool_calls == []
    assert not any(isinstance(e, ToolCallStarted | ToolCallDone) for e in events)
    assert [c["index"] for c in acc.snapshot()["choices"]] == [0, 1]
    second, _ = run(
        [chunk(calls_delta(tc(index=0, id="b", name="f", arguments="{}")), "tool_calls", index=1)],
        choice_index=1,
    )
    assert simple(second) == [("b", "f", {})]


def test_fold_choices_for_per_token_choice_numbering() -> None:  # B5 (TGI before PR #1648)
    chunks = [chunk({"content": t}, index=i) for i, t in enumerate(["I", "'", "m"], start=1)]
    chunks[-1]["choices"][0]["finish_reason"] = "length"
    acc, _ = run(chunks, fold_choices=True)
    assert acc.message()["content"] == "I'm"
    assert acc.finish_reason == "length"


def test_extra_fields_everywhere_are_ignored() -> None:  # B6
    item = chunk({"content": "x", "channel": "analysis", "index": 3}, "stop")
    item.update(x_groq={"id": "r"}, provider="Groq", obfuscation="zz", service_tier="default")
    item["choices"][0].update(native_finish_reason="STOP", stop_reason=7)
    acc, _ = run([item])
    assert acc.message()["content"] == "x"
    assert acc.error is None


# ---------------------------------------------------------------- SSE framing and stream end


def sse_lines(*payloads: Any) -> list[str]:
    lines: list[str] = []
    for payload in payloads:
        lines += [
            "data: " + (payload if isinstance(payload, str) else orjson.dumps(payload).decode()),
            "",
        ]
    return lines


def feed_all(acc: StreamAccumulator, lines: list[str | bytes]) -> list[Any]:
    events: list[Any] = []
    for line in lines:
        events += acc.feed_line(line)
    return events


def test_comments_no_space_multiline_data_and_crlf() -> None:  # A1, A2
    body = (
        b": OPENROUTER PROCESSING\r\n\r\n"
        b": keep-alive\r\n\r\n"
        b'data:{"choices":[{"index":0,"delta":{"content":"a"}}]}\r\n\r\n'
        b'data: {"choices":[{"index":0,\r\n'
        b'data: "delta":{"content":"b"},"finish_reason":"stop"}]}\r\n\r\n'
        b"data: [DONE]\r\n\r\n"
    )
    acc = StreamAccumulator()
    events = feed_all(acc, body.splitlines(keepends=True))
    assert events == [TextDelta("a", 0), TextDelta("b", 0)]
    assert acc.done and acc.error is None
    assert acc.message()["content"] == "ab"
    assert acc.feed_line('data: {"choices":[{"index":0,"delta":{"content":"late"}}]}') == []
    assert acc.finish() == []


def test_error_event_fails_the_turn_and_keeps_failed_generation() -> None:  # A3, F6
    error = {
        "error": {
            "message": "Tool call validation failed",
            "code": "tool_use_failed",
            "failed_generation": '{"name": "x"}',
            "status_code": 400,
        }
    }
    acc = StreamAccumulator()
    events = feed_all(
        acc, sse_lines(chunk(calls_delta(tc(index=0, id="a", name="x", arguments="{}"))))
    )
    events += feed_all(acc, ["event: error", "data: " + json.dumps(error), ""])
    events += acc.finish()
    errors = [e for e in events if isinstance(e, StreamError)]
    assert len(errors) == 1 and errors[0] is acc.error
    assert errors[0].code == ERROR_EVENT
    assert errors[0].data["error"]["failed_generation"] == '{"name": "x"}'
    assert "Tool call validation failed" in errors[0].message
    assert not any(isinstance(e, ToolCallDone) for e in events)  # nothing from a failed turn runs
    assert [c.name for c in acc.tool_calls] == ["x"]  # still readable for diagnostics


def test_error_object_inside_a_normal_chunk() -> None:  # A4
    item = chunk({"content": "x"}, None)
    item["error"] = {"code": 400, "message": "Token limit reached"}
    acc, _ = run([chunk({"content": "a"}, "length"), item])
    assert acc.error is not None and acc.error.code == ERROR_EVENT
    assert "Token limit reached" in acc.error.message
    assert acc.message()["content"] == "ax"


def test_clean_eof_after_finish_without_done_completes() -> None:  # A9
    acc = StreamAccumulator()
    feed_all(
        acc,
        sse_lines(chunk(calls_delta(tc(index=0, id="a", name="f", arguments="{}")), "tool_calls")),
    )
    events = acc.finish()
    assert [type(e) for e in events] == [ToolCallDone]


def test_eof_without_finish_and_without_done_is_truncation() -> None:  # A9
    acc = StreamAccumulator()
    feed_all(acc, sse_lines(chunk(calls_delta(tc(index=0, id="a", name="f", arguments='{"a": 1')))))
    events = acc.finish()
    assert [type(e) for e in events] == [StreamError]
    assert events[0].code == STREAM_TRUNCATED
    assert acc.error is events[0]


def test_done_without_finish_reason_completes() -> None:  # A7 (Snowflake)
    acc = StreamAccumulator()
    events = feed_all(acc, [*sse_lines(chunk({"content": "4"})), "data: [DONE]", ""])
    assert events == [TextDelta("4", 0)]
    assert acc.done and acc.error is None
    assert acc.finish_reason is None


def test_last_event_without_blank_line_is_not_lost() -> None:
    acc = StreamAccumulator()
    acc.feed_line('data: {"choices":[{"index":0,')
    events = acc.feed_line('data: "delta":{"content":"z"},"finish_reason":"stop"}]}')
    events += acc.finish()
    assert events == [TextDelta("z", 0)]
    assert acc.error is None


def test_data_lines_without_blank_lines_between_are_recovered() -> None:  # litellm PR #40040 grep
    acc = StreamAccumulator()
    events = feed_all(
        acc,
        [
            'data: {"choices":[{"index":0,',  # forces the multi-line path
            'data: "delta":{"content":"a"}}]}',
            'data: {"choices":[{"index":0,"delta":{"content":"b"},"finish_reason":"stop"}]}',
        ],
    )
    events += acc.finish()
    assert acc.error is not None  # the first payload spans two lines, so the join is ambiguous
    acc = StreamAccumulator()
    events = feed_all(
        acc,
        [
            "event: message",
            'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}',
            'data: {"choices":[{"index":0,"delta":{"content":"b"},"finish_reason":"stop"}]}',
        ],
    )
    events += acc.finish()
    assert events == [TextDelta("a", 0), TextDelta("b", 0)]
    assert acc.error is None


@pytest.mark.parametrize(
    "payload",
    [
        "not json",
        "[1, 2]",
        '{"choices": [7]}',
        '{"choices": [{"index": 0, "delta": {"content": 5}}]}',
        '{"choices": [{"delta": {"tool_calls": [{"index": [0]}]}}]}',
    ],
)
def test_malformed_payloads_fail_the_turn_without_raising(payload: str) -> None:
    acc = StreamAccumulator()
    events = feed_all(acc, ["data: " + payload, ""])
    events += feed_all(acc, sse_lines(chunk({"content": "ok"}, "stop")))
    events += acc.finish()
    errors = [e for e in events if isinstance(e, StreamError)]
    assert [e.code for e in errors] == [INVALID_CHUNK]
    assert TextDelta("ok", 0) in events  # the stream goes on being read


def test_feed_text_with_arbitrary_splits() -> None:
    lines = [*sse_lines(chunk({"content": "héllo → ✓"}), chunk({}, "stop")), "data: [DONE]", ""]
    raw = "".join(line + "\r\n" for line in lines).encode()
    for size in (1, 2, 3, 7, 64):  # splits inside CRLF and inside multi-byte characters
        acc = StreamAccumulator()
        events: list[Any] = []
        for start in range(0, len(raw), size):
            events += acc.feed_text(raw[start : start + size])
        assert acc.done and acc.error is None
        assert events == [TextDelta("héllo → ✓", 0)]


def test_sse_parser_events_and_fields() -> None:
    parser = SSEParser()
    out = parser.feed('event: error\ndata: {"a":\ndata:  1}\nid: 7\nretry: 10\n\n: c\n\ndata: x\r')
    assert out == [SSEMessage("error", '{"a":\n 1}')]
    assert parser.comment_count == 1
    assert parser.feed("\n") == []  # the LF of a CRLF split across pieces is not a second line
    assert parser.feed("\n") == [SSEMessage("", "x")]
    assert parser.feed(b"data: tail") == []
    assert parser.flush() == SSEMessage("", "tail")


# ---------------------------------------------------------------- non-streaming


def completion(
    message: dict[str, Any], finish: str | None = "stop", **extra: Any
) -> dict[str, Any]:
    return {
        "id": "x",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        **extra,
    }


def test_completion_normalises_ids_arguments_and_finish_reason() -> None:  # C6, E5, D1
    body = completion(
        {
            "role": "assistant",
            "content": "",
            "refusal": "",
            "tool_calls": [
                {"id": "", "type": "function", "function": {"name": "a", "arguments": {"k": 1}}},
                {"id": "keep", "function": {"name": "b"}},
                {"id": "", "custom": {"name": "", "input": ""}},
            ],
            "function_call": {"name": "", "arguments": ""},
        },
        "stop",
        usage={"total_tokens": 4},
    )
    message, calls, finish, usage = message_from_completion(body, id_factory=counter_ids())
    assert [(c.id, c.name, c.arguments) for c in calls] == [
        ("call_gen0", "a", '{"k":1}'),
        ("keep", "b", "{}"),
    ]
    assert finish == "tool_calls"
    assert usage == {"total_tokens": 4}
    assert message == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_gen0",
                "type": "function",
                "function": {"name": "a", "arguments": '{"k":1}'},
            },
            {"id": "keep", "type": "function", "function": {"name": "b", "arguments": "{}"}},
        ],
    }


def test_completion_glued_calls_legacy_function_call_and_empty_choices() -> None:
    body = completion(
        {"tool_calls": [{"id": "g", "function": {"name": "s", "arguments": '{"q":1}{"q":2}'}}]},
        "tool_calls",
    )
    _, calls, _, _ = message_from_completion(body, id_factory=counter_ids())
    assert [(c.id, c.arguments) for c in calls] == [("g", '{"q":1}'), ("call_gen0", '{"q":2}')]
    _, calls, finish, _ = message_from_completion(
        completion({"function_call": {"name": "legacy", "arguments": "{}"}}, "function_call"),
        id_factory=counter_ids(),
    )
    assert [(c.id, c.name) for c in calls] == [("call_gen0", "legacy")] and finish == "tool_calls"
    message, calls, finish, usage = message_from_completion({"choices": [], "usage": {"t": 1}})
    assert message == {"role": "assistant", "content": None} and calls == [] and finish is None
    assert usage == {"t": 1}


def test_completion_error_body_raises_with_the_server_error() -> None:  # F6
    error = {
        "code": "tool_use_failed",
        "message": "Tool call validation failed",
        "failed_generation": "{}",
    }
    with pytest.raises(ProviderError) as caught:
        message_from_completion({"error": error})
    assert caught.value.details["error"] == error
    assert "Tool call validation failed" in caught.value.message
    with pytest.raises(ProviderError):
        message_from_completion([1, 2])  # type: ignore[arg-type]


# ---------------------------------------------------------------- hostile input

leaves = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from(["", "a", "{", "}", '{"a":1}', "stop", "[DONE]"])
)
hostile_values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "name", "index"]), inner, max_size=3)
    ),
    max_leaves=8,
)


def optional(**fields: Any) -> Any:
    return st.fixed_dictionaries({}, optional=fields)


hostile_function = optional(
    name=st.sampled_from(["f", "g", ""]) | hostile_values,
    arguments=st.sampled_from(['{"a"', ":1}", "{}", ""]) | hostile_values,
)
hostile_call = optional(
    index=st.integers(0, 2) | hostile_values,
    id=st.sampled_from(["c1", "c2", ""]) | hostile_values,
    type=hostile_values,
    function=hostile_function | hostile_values,
    extra_content=hostile_values,
)
hostile_delta = optional(
    content=hostile_values,
    refusal=hostile_values,
    reasoning=hostile_values,
    tool_calls=st.lists(hostile_call | hostile_values, max_size=3) | hostile_values,
    function_call=hostile_function | hostile_values,
)
hostile_choice = optional(
    index=st.integers(0, 1) | hostile_values,
    delta=hostile_delta | hostile_values,
    message=hostile_delta | hostile_values,
    finish_reason=st.sampled_from(["stop", "tool_calls", ""]) | hostile_values,
)
hostile_chunks = (
    optional(
        choices=st.lists(hostile_choice | hostile_values, max_size=2) | hostile_values,
        usage=hostile_values,
        error=hostile_values,
    )
    | hostile_values
)


@settings(max_examples=300, deadline=None)
@given(st.lists(hostile_chunks, max_size=8), st.booleans())
def test_hostile_chunks_never_raise(payloads: list[Any], as_lines: bool) -> None:
    """Whatever the server sends, the accumulator reports through events and stays usable."""
    acc = StreamAccumulator()
    events: list[Any] = []
    for payload in payloads:
        if as_lines:
            events += acc.feed_line("data: " + json.dumps(payload))
            events += acc.feed_line("")
        elif isinstance(payload, dict):
            events += acc.feed_chunk(payload)
    events += acc.finish()
    calls = acc.tool_calls
    message = acc.message()
    acc.snapshot()
    assert message["role"] == "assistant"
    assert all(isinstance(call.id, str) and call.id for call in calls)
    for wire in message.get("tool_calls", []):
        json.loads(wire["function"]["arguments"])  # F3: what is replayed is valid JSON
    done = [e.call for e in events if isinstance(e, ToolCallDone)]
    assert done == (calls if acc.error is None else [])
    assert sum(isinstance(e, StreamError) for e in events) <= 1


@settings(max_examples=200, deadline=None)
@given(hostile_chunks)
def test_hostile_completion_bodies_raise_only_provider_errors(body: Any) -> None:
    try:
        message, calls, _finish, _usage = message_from_completion(body)
    except ProviderError:
        return
    assert message["role"] == "assistant"
    assert [c["id"] for c in message.get("tool_calls", [])] == [c.id for c in calls]


def test_an_id_reused_for_a_different_call_is_not_shared() -> None:
    acc, _ = run(
        [
            chunk(calls_delta(tc(id="dup", name="a", arguments='{"x":1}'))),
            chunk(calls_delta(tc(id="dup", name="b", arguments='{"y":2}'))),
            chunk({}, "tool_calls"),
        ],
        id_factory=counter_ids(),
    )
    assert [(c.id, c.name) for c in acc.tool_calls] == [("dup", "a"), ("call_gen0", "b")]
    body = completion(
        {
            "tool_calls": [
                {"id": "dup", "function": {"name": "a"}},
                {"id": "dup", "function": {"name": "b"}},
            ]
        },
        "tool_calls",
    )
    _, calls, _, _ = message_from_completion(body, id_factory=counter_ids())
    assert [c.id for c in calls] == ["dup", "call_gen0"]
