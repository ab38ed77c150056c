"""Recorded provider traffic accumulates to what the conformance manifests say.

Every stream (``.sse`` bytes fed line by line, ``.jsonl`` chunks wrapped as ``data:`` lines) and
every JSON body in ``openai-recorded`` and ``provider-quirks`` is checked against the
``expected`` block of its manifest entry.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tamma_tools.errors import ProviderError
from tamma_tools.provider.accumulator import (
    ERROR_EVENT,
    StreamAccumulator,
    message_from_completion,
)
from tamma_tools.provider.events import StreamError, ToolCallDone

from .conftest import CONFORMANCE_DIR

OPENAI_DIR = CONFORMANCE_DIR / "openai-recorded"
QUIRKS_DIR = CONFORMANCE_DIR / "provider-quirks"
GENERATED_ID = re.compile(r"^call_[0-9a-f]{24}$")


def _entries(folder: Path) -> list[dict[str, Any]]:
    manifest = json.loads((folder / "MANIFEST.json").read_text(encoding="utf-8"))
    return list(manifest["entries"])


OPENAI_ENTRIES = _entries(OPENAI_DIR)
QUIRK_ENTRIES = _entries(QUIRKS_DIR)


def _replay(path: Path, entry: dict[str, Any]) -> tuple[StreamAccumulator, list[Any]]:
    """Feed a recorded stream the way the provider would, one line at a time."""
    accumulator = StreamAccumulator()
    events: list[Any] = []
    raw = path.read_bytes()
    if path.suffix == ".jsonl":
        # The capture kept parsed chunks only; TGI sent them as "data:" without a space (A2).
        prefix = b"data:" if "without a space" in entry.get("transcription_note", "") else b"data: "
        lines = []
        for chunk in raw.splitlines():
            if chunk.strip():
                lines += [prefix + chunk, b""]
    else:
        lines = raw.split(b"\n")
    for line in lines:
        events += accumulator.feed_line(line)
    if entry.get("stream_complete", True):
        events += accumulator.finish()
    return accumulator, events


def _check_calls(calls: list[Any], expected_calls: list[dict[str, Any]]) -> None:
    assert [call.name for call in calls] == [c["name"] for c in expected_calls]
    for call, expected in zip(calls, expected_calls, strict=True):
        if expected["id"]:
            assert call.id == expected["id"]
        else:  # C5, C6: the server sent no usable id, so one is made up.
            assert GENERATED_ID.match(call.id)
        want = expected["arguments"] if expected["arguments"] is not None else "{}"
        assert json.loads(call.arguments) == json.loads(want)
        assert call.model_extra == (expected.get("extra") or {})


@pytest.mark.parametrize(
    "entry", [e for e in OPENAI_ENTRIES if e["streaming"]], ids=lambda e: e["file"]
)
def test_openai_recorded_stream(entry: dict[str, Any]) -> None:
    accumulator, events = _replay(OPENAI_DIR / entry["file"], entry)
    assert accumulator.error is None
    assert accumulator.done
    got = accumulator.snapshot()["choices"]
    expected = entry["expected"]["choices"]
    assert len(got) == len(expected)
    for have, want in zip(got, expected, strict=True):
        assert have["index"] == want["index"]
        assert have["content"] == want["content"]
        assert have["refusal"] == want["refusal"]
        assert have["finish_reason"] == want["finish_reason"]
        assert [
            {k: c[k] for k in ("index", "id", "type", "name", "arguments")}
            for c in have["tool_calls"]
        ] == want["tool_calls"]
    primary = expected[0]
    assert accumulator.finish_reason == primary["finish_reason"]
    done = [e.call for e in events if isinstance(e, ToolCallDone)]
    assert done == accumulator.tool_calls
    _check_calls(done, primary["tool_calls"])
    assert accumulator.usage is not None  # every recorded OpenAI stream ends with usage (A5)
    message = accumulator.message()
    assert message["role"] == "assistant"
    assert message["content"] == primary["content"]
    assert message.get("refusal") == primary["refusal"]
    assert [c["id"] for c in message.get("tool_calls", [])] == [c.id for c in done]


@pytest.mark.parametrize(
    "entry", [e for e in OPENAI_ENTRIES if not e["streaming"]], ids=lambda e: e["file"]
)
def test_openai_recorded_json(entry: dict[str, Any]) -> None:
    body = json.loads((OPENAI_DIR / entry["file"]).read_text(encoding="utf-8"))
    for want in entry["expected"]["choices"]:
        message, calls, finish_reason, usage = message_from_completion(
            body, choice_index=want["index"]
        )
        assert message["content"] == want["content"]
        assert message.get("refusal") == want["refusal"]
        assert finish_reason == want["finish_reason"]
        assert usage is not None
        _check_calls(calls, want["tool_calls"])
        assert [c["function"]["arguments"] for c in message.get("tool_calls", [])] == [
            c["arguments"] for c in want["tool_calls"]
        ]


@pytest.mark.parametrize(
    "entry", [e for e in QUIRK_ENTRIES if e["streaming"]], ids=lambda e: e["file"]
)
def test_quirk_stream(entry: dict[str, Any]) -> None:
    accumulator, events = _replay(QUIRKS_DIR / entry["file"], entry)
    expected = entry["expected"]
    got = accumulator.snapshot()["choices"]
    assert len(got) == len(expected["choices"])
    for have, want in zip(got, expected["choices"], strict=True):
        assert have == want
    errors = [e for e in events if isinstance(e, StreamError)]
    if entry.get("error_events"):
        # A3, A4: an error inside a 200 stream fails the turn, with the server's error object.
        assert len(errors) == 1
        assert errors[0].code == ERROR_EVENT
        assert errors[0].data == entry["error_events"][-1]
        assert accumulator.error is errors[0]
        assert not any(isinstance(e, ToolCallDone) for e in events)
        return
    assert errors == []
    primaries = [c for c in expected["choices"] if c["index"] == 0]
    if not entry.get("stream_complete", True) or not primaries:
        return  # partial excerpts, and TGI's per-token choice numbering (B5, see the unit tests)
    primary = primaries[0]
    assert accumulator.finish_reason == primary["effective_finish_reason"]
    done = [e.call for e in events if isinstance(e, ToolCallDone)]
    _check_calls(done, primary["tool_calls"])
    message = accumulator.message()
    assert message["content"] == primary["content"]
    assert [c["id"] for c in message.get("tool_calls", [])] == [c.id for c in done]


@pytest.mark.parametrize(
    "entry", [e for e in QUIRK_ENTRIES if not e["streaming"]], ids=lambda e: e["file"]
)
def test_quirk_json(entry: dict[str, Any]) -> None:
    body = json.loads((QUIRKS_DIR / entry["file"]).read_text(encoding="utf-8"))
    expected = entry["expected"]
    if "error" in expected:
        with pytest.raises(ProviderError) as caught:
            message_from_completion(body)
        assert caught.value.details["error"] == expected["error"]
        return
    (want,) = expected["choices"]
    message, calls, finish_reason, _usage = message_from_completion(body)
    assert finish_reason == want["effective_finish_reason"]
    assert message["content"] == (want["content"] or None)
    assert message.get("refusal") == (want["refusal"] or None)  # B9: "" is no refusal
    _check_calls(calls, want["tool_calls"])
    # What goes back into the history is valid JSON with the same ids (F3, F5).
    for wire, call in zip(message.get("tool_calls", []), calls, strict=True):
        assert wire["id"] == call.id
        json.loads(wire["function"]["arguments"])
    assert "function_call" not in message  # E6: Snowflake's empty stub is not a call


def test_every_manifest_file_is_covered() -> None:
    """A new recording added to a manifest is picked up by the tests above (nothing skipped)."""
    for folder, entries in ((OPENAI_DIR, OPENAI_ENTRIES), (QUIRKS_DIR, QUIRK_ENTRIES)):
        for entry in entries:
            assert (folder / entry["file"]).is_file(), entry["file"]
    assert len(OPENAI_ENTRIES) == 26
    assert len(QUIRK_ENTRIES) == 50
