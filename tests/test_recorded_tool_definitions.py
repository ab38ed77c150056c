"""Every tool the live OpenAI API accepted in the recorded requests validates and round-trips.

The requests in ``openai-recorded/**/*.request.json`` were answered with 200, so any error we
report for them would be a false alarm that blocks a working tool.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tamma_tools.schema.definition import validate_tool_definition, validate_tool_list
from tamma_tools.schema.strict import to_strict_schema
from tamma_tools.schema.validator import compile_validator
from tamma_tools.types import ToolDefinition
from tests.conftest import CONFORMANCE_DIR

RECORDED = CONFORMANCE_DIR / "openai-recorded"


def _requests_with_tools() -> list[Any]:
    out = []
    for path in sorted(RECORDED.glob("**/*.request.json")):
        body = json.loads(path.read_text(encoding="utf-8"))
        if body.get("tools"):
            out.append(pytest.param(body["tools"], id=str(path.relative_to(RECORDED))))
    return out


def _tools() -> list[Any]:
    out = []
    for param in _requests_with_tools():
        (tools,) = param.values
        for i, defn in enumerate(tools):
            out.append(pytest.param(defn, id=f"{param.id}[{i}]"))
    return out


def test_recordings_hold_strict_and_non_strict_tools() -> None:
    tools = [p.values[0] for p in _tools()]
    assert len(tools) >= 10
    assert any(t["function"].get("strict") for t in tools)
    assert any(not t["function"].get("strict") for t in tools)


@pytest.mark.parametrize("defn", _tools())
def test_recorded_tool_validates(defn: dict[str, Any]) -> None:
    result = validate_tool_definition(defn)
    assert result.valid, result.summary()
    # The only warning allowed is pydantic's ``default`` under strict, which the API accepted here.
    assert {w.code for w in result.warnings} <= {"strict_default"}


@pytest.mark.parametrize("defn", _tools())
def test_recorded_tool_round_trips(defn: dict[str, Any]) -> None:
    original = copy.deepcopy(defn)
    model = ToolDefinition.model_validate(defn)
    assert model.to_openai() == defn
    # Same bytes, not only the same value: the caller's key order survives the round trip.
    assert json.dumps(model.to_openai()) == json.dumps(defn)
    assert defn == original


@pytest.mark.parametrize("tools", _requests_with_tools())
def test_recorded_tool_list_validates(tools: list[dict[str, Any]]) -> None:
    assert validate_tool_list(tools).valid


@pytest.mark.parametrize("defn", [p for p in _tools() if p.values[0]["function"].get("strict")])
def test_recorded_strict_schema_needs_at_most_default_dropped(defn: dict[str, Any]) -> None:
    params = defn["function"]["parameters"]
    out, report = to_strict_schema(params)
    assert report.converted
    assert {c.code for c in report.changes} <= {"dropped_default"}
    compile_validator(out)  # still a usable schema
