"""Each step of the manager's call path, as the model and the calling program see it."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from tamma_tools.events import CallRecord
from tamma_tools.manager import FunctionCallingManager, ManagerConfig, Policy
from tamma_tools.types import CallerContext, RateLimit, ResourceLimits, ToolDefinition

FORECAST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "enum": ["Paris", "Oslo", "Lima"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 14},
        "units": {"type": "boolean"},
    },
    "required": ["city", "days"],
    "additionalProperties": False,
}


def definition(
    name: str = "get_forecast", schema: dict[str, Any] | None = None, **meta: Any
) -> ToolDefinition:
    meta.setdefault("isolation", "in_process")
    return ToolDefinition.model_validate(
        {
            "type": "function",
            "function": {
                "name": name,
                "description": "Forecast.",
                "parameters": schema or FORECAST_SCHEMA,
            },
            "metadata": meta,
        }
    )


def call(args: Any, name: str = "get_forecast", call_id: str = "call_1") -> dict[str, Any]:
    raw = args if isinstance(args, str) else orjson.dumps(args).decode()
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": raw}}


async def forecast(city: str, days: int, units: bool = False) -> dict[str, Any]:
    return {"city": city, "days": days}


@pytest.fixture
def manager() -> FunctionCallingManager:
    mgr = FunctionCallingManager()
    mgr.register_tool(definition(), forecast)
    return mgr


async def test_success_returns_result_and_tool_message(manager: FunctionCallingManager) -> None:
    result = await manager.execute_function_call(call({"city": "Oslo", "days": 3}))
    assert result.success and result.result == {"city": "Oslo", "days": 3}
    assert result.to_message() == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": '{"city":"Oslo","days":3}',
    }


async def test_unknown_tool_names_the_closest_tools(manager: FunctionCallingManager) -> None:
    result = await manager.execute_function_call(call({}, name="get_forcast"))
    assert not result.success and result.error_code == "unknown_tool"
    assert "get_forecast" in (result.error or "")


async def test_disabled_tool_is_refused(manager: FunctionCallingManager) -> None:
    manager.registry.disable("get_forecast")
    result = await manager.execute_function_call(call({"city": "Oslo", "days": 3}))
    assert result.error_code == "tool_disabled"
    assert manager.get_available_tools() == []


async def test_duplicate_keys_are_refused_not_last_wins(manager: FunctionCallingManager) -> None:
    result = await manager.execute_function_call(call('{"city":"Oslo","city":"Paris","days":1}'))
    assert result.error_code == "invalid_json"
    assert "city" in (result.error or "")


async def test_schema_errors_list_every_violation_with_path(
    manager: FunctionCallingManager,
) -> None:
    result = await manager.execute_function_call(call({"city": "Rome", "days": 99, "extra": 1}))
    assert result.error_code == "schema_violation"
    paths = {issue["path"] for issue in result.details["issues"]}
    assert {"city", "days"} <= paths and len(result.details["issues"]) >= 3


async def test_no_coercion_of_string_booleans(manager: FunctionCallingManager) -> None:
    result = await manager.execute_function_call(
        call({"city": "Oslo", "days": 2, "units": "false"})
    )
    assert result.error_code == "schema_violation"
    assert result.details["issues"][0]["path"] == "units"


async def test_empty_arguments_mean_empty_object_for_parameterless_tool() -> None:
    mgr = FunctionCallingManager()

    async def ping() -> str:
        return "pong"

    mgr.register_tool(definition("ping", {"type": "object", "properties": {}}), ping)
    result = await mgr.execute_function_call(call("", name="ping"))
    assert result.success and result.result == "pong"


async def test_permissions_deny_by_default_and_roles_grant() -> None:
    mgr = FunctionCallingManager(policy=Policy({"reader": ["file:read"], "admin": ["file:*"]}))
    ran: list[str] = []

    async def read(path: str) -> str:
        ran.append(path)
        return "data"

    schema = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
    mgr.register_tool(definition("read", schema, permissions=["file:read"]), read)
    denied = await mgr.execute_function_call(call({"path": "a"}, name="read"))
    assert denied.error_code == "permission_denied" and "file:read" in (denied.error or "")
    assert ran == []
    for ctx in (CallerContext(roles=frozenset({"reader"})), CallerContext(roles={"admin"})):  # type: ignore[arg-type]
        ok = await mgr.execute_function_call(call({"path": "a"}, name="read"), ctx)
        assert ok.success
    # The model only sees tools the caller may call.
    assert mgr.get_available_tools(CallerContext()) == []
    assert len(mgr.get_available_tools(CallerContext(permissions=frozenset({"file:read"})))) == 1


def test_caller_context_is_immutable() -> None:
    ctx = CallerContext(permissions=frozenset({"a"}))
    with pytest.raises(AttributeError):
        ctx.permissions = frozenset({"*"})  # type: ignore[misc]


async def test_approval_pending_then_approved_runs_once() -> None:
    mgr = FunctionCallingManager()
    ran: list[int] = []

    async def delete(n: int) -> str:
        ran.append(n)
        return "deleted"

    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    mgr.register_tool(definition("delete", schema, requires_approval=True), delete)
    pending = await mgr.execute_function_call(call({"n": 1}, name="delete", call_id="c9"))
    assert pending.error_code == "approval_pending" and pending.pending and ran == []
    assert [p.call.id for p in mgr.pending_approvals()] == ["c9"]
    done = await mgr.approve("c9", approver="alice")
    assert done.success and ran == [1]
    outcomes = [(r.outcome, r.approver) for r in mgr.history]
    assert ("approved", "alice") in outcomes and outcomes[-1][0] == "executed"


async def test_rejected_call_still_yields_a_tool_message() -> None:
    mgr = FunctionCallingManager()

    async def delete(n: int) -> str:
        raise AssertionError("must not run")

    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    mgr.register_tool(definition("delete", schema, requires_approval=True), delete)
    await mgr.execute_function_call(call({"n": 1}, name="delete", call_id="c9"))
    rejected = mgr.reject("c9", "not today", approver="bob")
    assert rejected.error_code == "approval_rejected"
    message = rejected.to_message()
    assert message["tool_call_id"] == "c9" and "not today" in message["content"]
    assert mgr.history[-1].outcome == "rejected" and mgr.history[-1].approver == "bob"


async def test_rate_limited_call_tells_the_model_when_to_retry() -> None:
    mgr = FunctionCallingManager()
    mgr.register_tool(definition(rate_limit=RateLimit(calls_per_minute=2)), forecast)
    results = [
        await mgr.execute_function_call(call({"city": "Oslo", "days": i + 1})) for i in range(3)
    ]
    assert [r.success for r in results] == [True, True, False]
    assert results[2].error_code == "rate_limited" and "retry after" in (results[2].error or "")
    assert 0 < results[2].details["retry_after_s"] <= 60
    # Limits are per caller: another user still has its own budget.
    other = await mgr.execute_function_call(
        call({"city": "Oslo", "days": 1}), CallerContext(user_id="u2")
    )
    assert other.success


async def test_dry_run_checks_everything_but_runs_nothing() -> None:
    mgr = FunctionCallingManager()
    ran: list[int] = []

    async def tool(days: int) -> int:
        ran.append(days)
        return days

    schema = {"type": "object", "properties": {"days": {"type": "integer"}}, "required": ["days"]}
    mgr.register_tool(definition("t", schema, permissions=["x"]), tool)
    ctx = CallerContext(permissions=frozenset({"x"}))
    ok = await mgr.execute_function_call(call({"days": 1}, name="t"), ctx, dry_run=True)
    assert ok.success and ok.result["dry_run"] is True and ran == []
    bad = await mgr.execute_function_call(call({"days": "1"}, name="t"), ctx, dry_run=True)
    assert bad.error_code == "schema_violation"
    denied = await mgr.execute_function_call(call({"days": 1}, name="t"), dry_run=True)
    assert denied.error_code == "permission_denied"


async def test_tool_exception_becomes_tool_error() -> None:
    mgr = FunctionCallingManager()

    def boom() -> None:
        raise KeyError("missing thing")

    mgr.register_tool(definition("boom", {"type": "object", "properties": {}}), boom)
    result = await mgr.execute_function_call(call({}, name="boom"))
    assert result.error_code == "tool_error" and "KeyError" in (result.error or "")


async def test_result_must_be_json_serialisable() -> None:
    mgr = FunctionCallingManager()

    async def weird() -> object:
        return object()

    mgr.register_tool(definition("weird", {"type": "object", "properties": {}}), weird)
    result = await mgr.execute_function_call(call({}, name="weird"))
    assert result.error_code == "output_not_serializable"


async def test_output_cap_keeps_head_and_tail_with_marker() -> None:
    mgr = FunctionCallingManager()

    async def big() -> str:
        return "H" * 5000 + "T" * 5000

    mgr.register_tool(
        definition("big", {"type": "object", "properties": {}}, max_output_bytes=1000), big
    )
    result = await mgr.execute_function_call(call({}, name="big"))
    content = result.to_message()["content"]
    assert result.success and len(content.encode()) <= 1000
    assert content.startswith("H") and content.endswith("T") and "truncated" in content
    assert result.truncated_bytes > 9000 - 1000


async def test_caller_resource_limit_shortens_the_timeout() -> None:
    mgr = FunctionCallingManager()

    async def slow() -> str:
        await asyncio.sleep(5)
        return "late"

    mgr.register_tool(definition("slow", {"type": "object", "properties": {}}, timeout_s=10), slow)
    ctx = CallerContext(resource_limits=ResourceLimits(timeout_s=0.05))
    result = await mgr.execute_function_call(call({}, name="slow"), ctx)
    assert result.error_code == "timeout" and result.execution_time_ms < 2000


async def test_context_parameter_is_injected() -> None:
    mgr = FunctionCallingManager()
    seen: list[CallerContext] = []

    async def whoami(ctx: CallerContext) -> str:
        seen.append(ctx)
        return ctx.user_id

    from tamma_tools.function_tool import tool

    mgr.register_tool(tool(isolation="in_process")(whoami))
    result = await mgr.execute_function_call(call({}, name="whoami"), CallerContext(user_id="ann"))
    assert result.success and result.result == "ann" and seen[0].user_id == "ann"


async def test_safe_repair_is_recorded_on_the_result() -> None:
    mgr = FunctionCallingManager(config=ManagerConfig(repair="safe"))
    mgr.register_tool(definition(), forecast)
    result = await mgr.execute_function_call(call("```json\n{'city': 'Oslo', 'days': 2,}\n```"))
    assert result.success and result.repairs
    assert any(r.outcome == "repaired" for r in mgr.history)
    strict = FunctionCallingManager()
    strict.register_tool(definition(), forecast)
    refused = await strict.execute_function_call(call("{'city': 'Oslo', 'days': 2}"))
    assert refused.error_code == "invalid_json"


async def test_retry_budget_then_final_stop_message(manager: FunctionCallingManager) -> None:
    ctx = CallerContext(session_id="s1")
    codes = [
        (await manager.execute_function_call(call({"days": 1}), ctx)).error_code for _ in range(3)
    ]
    assert codes == ["schema_violation", "schema_violation", "retry_budget_exhausted"]
    last = await manager.execute_function_call(call({"days": 1}), ctx)
    assert "stop calling it" in (last.error or "")
    # A good call still runs, and other conversations are not affected.
    assert (await manager.execute_function_call(call({"city": "Oslo", "days": 1}), ctx)).success
    other = await manager.execute_function_call(call({"days": 1}), CallerContext(session_id="s2"))
    assert other.error_code == "schema_violation"


async def test_loop_detection_refuses_the_nth_identical_call() -> None:
    mgr = FunctionCallingManager(config=ManagerConfig(loop_threshold=3))
    mgr.register_tool(definition(), forecast)
    ctx = CallerContext(session_id="loop")
    args = {"city": "Oslo", "days": 2}
    outcomes = [(await mgr.execute_function_call(call(args), ctx)).error_code for _ in range(3)]
    assert outcomes == [None, None, "loop_detected"]
    # Same arguments in a different key order are the same call.
    again = await mgr.execute_function_call(call('{"days": 2, "city": "Oslo"}'), ctx)
    assert again.error_code == "loop_detected"
    assert (await mgr.execute_function_call(call({"city": "Oslo", "days": 3}), ctx)).success


async def test_events_history_and_observers_see_every_decision(
    manager: FunctionCallingManager,
) -> None:
    seen: list[str] = []
    finished: list[CallRecord] = []

    class Observer:
        def on_call_started(self, call_id: str, tool: str, context: CallerContext) -> None:
            seen.append(f"start:{call_id}")

        def on_call_finished(self, record: CallRecord) -> None:
            finished.append(record)

    manager.add_observer(Observer())
    failures: list[CallRecord] = []
    unsubscribe = manager.on("invalid_arguments", failures.append)
    await manager.execute_function_call(call({"city": "Oslo", "days": 1}, call_id="a"))
    await manager.execute_function_call(call("{", call_id="b"))
    unsubscribe()
    await manager.execute_function_call(call("{", call_id="c"))
    assert seen == ["start:a"]
    assert [(r.call_id, r.outcome) for r in finished] == [
        ("a", "executed"),
        ("b", "invalid_arguments"),
        ("c", "invalid_arguments"),
    ]
    assert [r.call_id for r in failures] == ["b"]
    assert finished[0].arguments == '{"city":"Oslo","days":1}' and finished[0].result_size > 0


async def test_history_is_a_bounded_ring_buffer() -> None:
    mgr = FunctionCallingManager(config=ManagerConfig(history_size=5))
    mgr.register_tool(definition(), forecast)
    for i in range(20):
        await mgr.execute_function_call(call({"city": "Oslo", "days": 1}, call_id=f"c{i}"))
    assert [r.call_id for r in mgr.history] == [f"c{i}" for i in range(15, 20)]


async def test_a_raising_observer_does_not_break_the_call(manager: FunctionCallingManager) -> None:
    class Broken:
        def on_call_started(self, call_id: str, tool: str, context: CallerContext) -> None:
            raise RuntimeError("observer bug")

        def on_call_finished(self, record: CallRecord) -> None:
            raise RuntimeError("observer bug")

    manager.add_observer(Broken())
    result = await manager.execute_function_call(call({"city": "Oslo", "days": 1}))
    assert result.success


async def test_malformed_call_objects_are_answered(manager: FunctionCallingManager) -> None:
    for bad in (
        {"id": "x"},
        {"id": "x", "function": {"arguments": "{}"}},
        {"function": {"name": 5}},
    ):
        result = await manager.execute_function_call(bad)
        assert not result.success and result.error_code == "invalid_arguments"


def test_sync_wrappers_work_without_an_event_loop(manager: FunctionCallingManager) -> None:
    result = manager.execute_function_call_sync(call({"city": "Lima", "days": 1}))
    assert result.success
    batch = manager.process_function_calls_sync(
        {
            "role": "assistant",
            "tool_calls": [call({"city": "Lima", "days": 1}, call_id=f"k{i}") for i in range(3)],
        }
    )
    assert [r.tool_call_id for r in batch] == ["k0", "k1", "k2"]
    manager.close()


async def test_sync_wrapper_inside_a_loop_says_what_to_do(manager: FunctionCallingManager) -> None:
    with pytest.raises(RuntimeError, match="await the async method"):
        manager.execute_function_call_sync(call({"city": "Lima", "days": 1}))


async def test_strict_tools_accept_omitted_nullable_fields_as_null() -> None:
    # Servers that ignore ``strict`` (Ollama, vLLM) leave optional fields out; a strict model
    # would have sent null for them, so the manager fills them in.
    mgr = FunctionCallingManager()
    seen: list[dict[str, Any]] = []

    async def read(path: str, max_bytes: int | None) -> str:
        seen.append({"path": path, "max_bytes": max_bytes})
        return "ok"

    schema = {
        "type": "object",
        "properties": {"path": {"type": "string"}, "max_bytes": {"type": ["integer", "null"]}},
        "required": ["path", "max_bytes"],
        "additionalProperties": False,
    }
    defn = ToolDefinition.model_validate(
        {"function": {"name": "read", "parameters": schema, "strict": True},
         "metadata": {"isolation": "in_process"}}
    )  # fmt: skip
    mgr.register_tool(defn, read)
    assert (await mgr.execute_function_call(call({"path": "a"}, name="read"))).success
    assert seen == [{"path": "a", "max_bytes": None}]
    # A missing non-nullable field is still an error.
    missing = await mgr.execute_function_call(call({"max_bytes": 1}, name="read"))
    assert missing.error_code == "schema_violation" and "path" in (missing.error or "")
