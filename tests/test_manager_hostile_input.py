"""Nothing a model sends can make ``execute_function_call`` raise or run a tool with bad input."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tamma_tools.manager import FunctionCallingManager, ManagerConfig
from tamma_tools.types import ToolDefinition

SCHEMA = {
    "type": "object",
    "properties": {"path": {"type": "string", "maxLength": 50}, "n": {"type": "integer"}},
    "required": ["path"],
    "additionalProperties": False,
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def make_manager(repair: str) -> tuple[FunctionCallingManager, list[dict[str, Any]]]:
    ran: list[dict[str, Any]] = []

    async def read(path: str, n: int = 0) -> str:
        ran.append({"path": path, "n": n})
        return path

    mgr = FunctionCallingManager(config=ManagerConfig(repair=repair, history_size=0))  # type: ignore[arg-type]
    mgr.register_tool(
        ToolDefinition.model_validate(
            {
                "function": {"name": "read", "parameters": SCHEMA},
                "metadata": {"isolation": "in_process"},
            }
        ),
        read,
    )
    return mgr, ran


def check(
    mgr: FunctionCallingManager, ran: list[dict[str, Any]], raw: Any, name: Any = "read"
) -> None:
    before = len(ran)
    result = mgr.execute_function_call_sync(
        {"id": "h", "function": {"name": name, "arguments": raw}}
    )
    assert result.tool_call_id == "h"
    message = result.to_message()
    assert message["role"] == "tool" and isinstance(message["content"], str)
    if result.success:
        # Whatever ran had arguments matching the schema.
        assert len(ran) == before + 1
        args = ran[-1]
        assert isinstance(args["path"], str) and len(args["path"]) <= 50
        assert isinstance(args["n"], int)
    else:
        assert len(ran) == before and result.error_code


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.text(max_size=200))
def test_arbitrary_text_never_raises(raw: str) -> None:
    for repair in ("off", "safe"):
        mgr, ran = make_manager(repair)
        check(mgr, ran, raw)
        mgr.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values)
def test_arbitrary_json_values_never_raise(value: Any) -> None:
    mgr, ran = make_manager("off")
    check(mgr, ran, json.dumps(value))
    check(mgr, ran, value)  # arguments as a non-string, as some servers send them
    mgr.close()


@settings(max_examples=100, deadline=None)
@given(name=st.one_of(st.text(max_size=70), st.none(), st.integers()))
def test_arbitrary_tool_names_never_raise(name: Any) -> None:
    mgr, ran = make_manager("off")
    check(mgr, ran, '{"path": "x"}', name=name)
    mgr.close()
